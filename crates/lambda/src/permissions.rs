//! The function's resource policy: AddPermission, RemovePermission, GetPolicy, and the
//! decision whether an AWS service principal may invoke a function (the check Lambda makes
//! when, e.g., Secrets Manager invokes a rotation function).
//!
//! Statements have AWS's form (Lambda Developer Guide, "Viewing resource-based IAM policies
//! in Lambda"): `{"Sid", "Effect": "Allow", "Principal": {"Service": …} | {"AWS": …},
//! "Action", "Resource", "Condition": {"StringEquals": {"AWS:SourceAccount": …}, "ArnLike":
//! {"AWS:SourceArn": …}}}`.

use serde_json::{Value, json};
use tresor_core::{RequestCtx, Services, record};
use tresor_policy::{Policy, PolicyKind};

use crate::errors::{LambdaError, invalid_parameter};
use crate::functions::{check_revision, load, load_checked, policy_document};
use crate::model::{self, FunctionRecord, keys};
use crate::shapes::*;

/// The `Principal` element for AddPermission's `Principal`: a service
/// (`secretsmanager.amazonaws.com`), an account id, an IAM ARN, or `*`.
fn principal_element(principal: &str) -> Result<Value, LambdaError> {
    if principal == "*" {
        return Ok(json!("*"));
    }
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(
            json!({ "AWS": format!("arn:{}:iam::{principal}:root", tresor_policy::arn::partition()) }),
        );
    }
    if tresor_policy::arn::strip_service_prefix(principal, "iam").is_some()
        || tresor_policy::arn::strip_service_prefix(principal, "sts").is_some()
    {
        return Ok(json!({ "AWS": principal }));
    }
    if principal.ends_with(".amazonaws.com") || principal.ends_with(".amazonaws.com.cn") {
        return Ok(json!({ "Service": principal }));
    }
    // Lambda's answer to a principal it cannot read (observed behavior).
    Err(invalid_parameter(
        "The provided principal was invalid. Please check the principal and try again.",
    ))
}

/// One statement in AWS's form.
pub fn statement(
    sid: &str,
    principal: &str,
    action: &str,
    resource: &str,
    source_account: Option<&str>,
    source_arn: Option<&str>,
) -> Result<Value, LambdaError> {
    let mut s = json!({
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal_element(principal)?,
        "Action": action,
        "Resource": resource,
    });
    let mut condition = serde_json::Map::new();
    if let Some(a) = source_account {
        condition.insert("StringEquals".into(), json!({ "AWS:SourceAccount": a }));
    }
    if let Some(a) = source_arn {
        condition.insert("ArnLike".into(), json!({ "AWS:SourceArn": a }));
    }
    if !condition.is_empty() {
        s["Condition"] = Value::Object(condition);
    }
    Ok(s)
}

fn check_statement_id(sid: &str) -> Result<(), LambdaError> {
    let ok = !sid.is_empty()
        && sid.len() <= 100
        && sid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(model::pattern_error("statementId", sid))
    }
}

fn sid_of(s: &Value) -> Option<&str> {
    s.get("Sid").and_then(Value::as_str)
}

fn write_policy(
    services: &Services,
    f: &model::FunctionRef,
    edit: impl FnOnce(&mut FunctionRecord) -> Result<(), LambdaError>,
) -> Result<FunctionRecord, LambdaError> {
    let mut txn = services.store().begin_write()?;
    let key = keys::function(&f.account, &f.region, &f.name);
    let mut record: FunctionRecord =
        record::get(&*txn, &key)?.ok_or_else(|| crate::errors::function_not_found(&f.arn()))?;
    edit(&mut record)?;
    record.revision_id = uuid::Uuid::new_v4().to_string();
    record::put(&mut *txn, &key, &record)?;
    txn.commit()?;
    Ok(record)
}

/// `AddPermission` (201): appends a statement; a `StatementId` in use is
/// `ResourceConflictException`.
pub fn add_permission(
    services: &Services,
    ctx: &RequestCtx,
    input: AddPermissionInput,
) -> Result<AddPermissionOutput, LambdaError> {
    let f = load_checked(
        services,
        ctx,
        "lambda:AddPermission",
        &input.function_name,
        input.qualifier.as_deref(),
    )?
    .0;
    check_statement_id(&input.statement_id)?;
    let action = input.action.as_str();
    let action_ok = action == "*"
        || action == "lambda:*"
        || action
            .strip_prefix("lambda:")
            .is_some_and(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphabetic()));
    if !action_ok {
        return Err(model::pattern_error("action", action));
    }
    if input.event_source_token.is_some()
        || input.principal_org_id.is_some()
        || input.function_url_auth_type.is_some()
    {
        return Err(invalid_parameter(
            "tresor supports SourceArn and SourceAccount conditions only.",
        ));
    }
    if let Some(a) = input.source_account.as_deref()
        && (a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(LambdaError::Validation(format!(
            "1 validation error detected: Value '{a}' at 'sourceAccount' failed to satisfy constraint: Member must satisfy regular expression pattern: \\d{{12}}"
        )));
    }
    let resource = f.arn();
    let stmt = statement(
        &input.statement_id,
        &input.principal,
        action,
        &resource,
        input.source_account.as_deref(),
        input.source_arn.as_deref(),
    )?;
    let sid = input.statement_id.clone();
    let expected_revision = input.revision_id.clone();
    let added = stmt.clone();
    write_policy(services, &f, move |record| {
        check_revision(record, expected_revision.as_deref(), "GetPolicy")?;
        if record
            .policy
            .iter()
            .any(|s| sid_of(s) == Some(sid.as_str()))
        {
            return Err(LambdaError::ResourceConflict(format!(
                "The statement id ({sid}) provided already exists. Please provide a new statement id, or remove the existing statement."
            )));
        }
        record.policy.push(added);
        // The document must stay one the policy engine reads.
        Policy::parse(&policy_document(&record.policy), PolicyKind::Resource)
            .map_err(|e| invalid_parameter(format!("The resulting policy is invalid: {e}")))?;
        Ok(())
    })?;
    Ok(AddPermissionOutput {
        statement: stmt.to_string(),
    })
}

/// `RemovePermission` (204).
pub fn remove_permission(
    services: &Services,
    ctx: &RequestCtx,
    input: RemovePermissionInput,
) -> Result<Empty, LambdaError> {
    let f = load_checked(
        services,
        ctx,
        "lambda:RemovePermission",
        &input.function_name,
        input.qualifier.as_deref(),
    )?
    .0;
    let sid = input.statement_id.clone();
    let expected_revision = input.revision_id.clone();
    write_policy(services, &f, move |record| {
        check_revision(record, expected_revision.as_deref(), "GetPolicy")?;
        let before = record.policy.len();
        record.policy.retain(|s| sid_of(s) != Some(sid.as_str()));
        if record.policy.len() == before {
            return Err(LambdaError::ResourceNotFound(
                "No policy is associated with the given resource.".into(),
            ));
        }
        Ok(())
    })?;
    Ok(Empty {})
}

/// `GetPolicy`: the document, or `ResourceNotFoundException` when it has no statement.
pub fn get_policy(
    services: &Services,
    ctx: &RequestCtx,
    input: GetPolicyInput,
) -> Result<GetPolicyOutput, LambdaError> {
    let txn = services.store().begin_read()?;
    let (_, record) = load(
        services,
        &*txn,
        ctx,
        "lambda:GetPolicy",
        &input.function_name,
        input.qualifier.as_deref(),
    )?;
    if record.policy.is_empty() {
        return Err(LambdaError::ResourceNotFound(
            "The resource you requested does not exist.".into(),
        ));
    }
    Ok(GetPolicyOutput {
        policy: policy_document(&record.policy),
        revision_id: record.revision_id,
    })
}

/// Whether the function's resource policy lets `service_principal` call
/// `lambda:InvokeFunction`, with `aws:SourceAccount` and `aws:SourceArn` in the context.
/// Service principals have no identity policies: only the resource policy can allow.
pub fn service_may_invoke(
    services: &Services,
    record: &FunctionRecord,
    service_principal: &str,
    source_account: &str,
    source_arn: &str,
    now: time::OffsetDateTime,
) -> bool {
    if record.policy.is_empty() {
        return false;
    }
    let doc = policy_document(&record.policy);
    let Some(policy) = services.policy_cache().get(PolicyKind::Resource, &doc) else {
        tracing::error!(function = %record.arn, "a stored function policy does not parse");
        return false;
    };
    let principal = tresor_policy::Principal::service(service_principal);
    let context = tresor_policy::Context::new()
        .with_current_time(now)
        .with("aws:SourceAccount", source_account.to_string())
        .with("aws:SourceArn", source_arn.to_string())
        .with("aws:SourceOwner", source_account.to_string());
    let set = tresor_policy::PolicySet {
        resource: Some((
            tresor_policy::PolicySource {
                id: &record.arn,
                source_type: tresor_policy::SourcePolicyType::Resource,
            },
            policy.as_ref(),
        )),
        resource_kind: tresor_policy::ResourceKind::Generic,
        ..tresor_policy::PolicySet::default()
    };
    let request = tresor_policy::Request {
        principal: &principal,
        action: "lambda:InvokeFunction",
        resource: &record.arn,
        resource_account: Some(&record.account),
        context: &context,
    };
    tresor_policy::evaluate(&request, &set).allowed
}
