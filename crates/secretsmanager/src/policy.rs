//! Secret resource policies: PutResourcePolicy, GetResourcePolicy, DeleteResourcePolicy,
//! ValidateResourcePolicy.
//!
//! Principal capture (IAM User Guide, "AWS JSON policy elements: Principal"): when
//! a policy is saved, each `AWS` principal naming an existing IAM user or role is replaced by
//! the entity's unique id (`AIDA…`/`AROA…`), and the policy engine matches that id. Reading
//! the policy shows the ARN again while the entity exists, and the bare id once it is gone —
//! so a deleted and re-created role (new id) is denied until the policy is saved again, as
//! the Buildkite Elastic CI Stack guide warns. Account principals, `*`, services and session
//! ARNs are kept as written.

use crate::errors::SecretsManagerError;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tresor_core::{RequestCtx, Services};
use tresor_iam::{arn_for_unique_id, unique_id_for_arn};
use tresor_policy::{Policy, PolicyError, PolicyKind, map_aws_principals};
use tresor_store::ReadTxn;
use tresor_wire::validate::Validator;

use crate::access::{
    self, begin_authorized_write, load_authorized, load_live, refuse_replica, save_changed,
};
use crate::errors::{self, OrInternal};
use crate::model::SecretRecord;
use crate::validate;

const DEFAULT_POLICY_NAME: &str = "default";

fn check_policy_name(v: &mut Validator, name: Option<&str>) -> Result<(), SecretsManagerError> {
    v.length("PolicyName", name, 1, 64);
    match name {
        None | Some(DEFAULT_POLICY_NAME) => Ok(()),
        // The only policy a secret can have is `default` (PutResourcePolicy PolicyName).
        Some(_) => Err(errors::invalid_parameter(
            "You can only attach the resource policy named default.",
        )),
    }
}

fn malformed(message: impl Into<String>) -> SecretsManagerError {
    SecretsManagerError::MalformedPolicyDocument(message.into())
}

/// Parses `text` as a resource policy (grammar, size).
fn parse(text: &str) -> Result<Policy, SecretsManagerError> {
    Policy::parse(text, PolicyKind::Resource).map_err(|e| match e {
        PolicyError::Malformed(m) => malformed(m),
        PolicyError::TooLarge { .. } => {
            malformed("The resource policy exceeds the maximum size of 20480 characters.")
        }
    })
}

/// Whether a user or role ARN (the kinds IAM captures); `arn:aws:iam::<acct>:root` is not.
fn is_capturable(principal: &str) -> bool {
    principal.starts_with("arn:") && {
        let resource = principal.splitn(6, ':').nth(5).unwrap_or_default();
        resource.starts_with("user/") || resource.starts_with("role/")
    }
}

/// The stored form of `text`: user/role ARNs replaced by unique ids, and the id → ARN map.
pub(crate) fn capture(
    txn: &dyn ReadTxn,
    text: &str,
) -> Result<(String, std::collections::BTreeMap<String, String>), SecretsManagerError> {
    capture_with(txn, text, false)
}

/// [`capture`], for a policy replicated from another deployment: a principal this
/// deployment's IAM does not know is kept by its ARN instead of refusing the policy.
pub(crate) fn capture_replicated(
    txn: &dyn ReadTxn,
    text: &str,
) -> Result<(String, std::collections::BTreeMap<String, String>), SecretsManagerError> {
    capture_with(txn, text, true)
}

fn capture_with(
    txn: &dyn ReadTxn,
    text: &str,
    keep_unknown: bool,
) -> Result<(String, std::collections::BTreeMap<String, String>), SecretsManagerError> {
    let mut captured = std::collections::BTreeMap::new();
    let mut missing: Option<String> = None;
    let mut failure: Option<SecretsManagerError> = None;
    let stored = map_aws_principals(text, |p| {
        if !is_capturable(p) {
            return None;
        }
        match unique_id_for_arn(txn, p) {
            Ok(Some(id)) => {
                captured.insert(id.clone(), p.to_string());
                Some(id)
            }
            Ok(None) => {
                missing.get_or_insert_with(|| p.to_string());
                None
            }
            Err(e) => {
                failure.get_or_insert_with(|| errors::internal(e));
                None
            }
        }
    })
    .map_err(|e| malformed(e.to_string()))?;
    if let Some(e) = failure {
        return Err(e);
    }
    if missing.is_some() && !keep_unknown {
        // A principal that does not exist (IAM calls it "Invalid principal in policy");
        // Secrets Manager's code is documented (PutResourcePolicy), its text is unconfirmed.
        return Err(malformed(
            "This resource policy contains an unsupported principal.",
        ));
    }
    Ok((stored, captured))
}

/// The policy as GetResourcePolicy shows it: unique ids of existing entities back to ARNs.
pub(crate) fn render(
    txn: &dyn ReadTxn,
    rec: &SecretRecord,
) -> Result<Option<String>, SecretsManagerError> {
    let Some(stored) = &rec.policy else {
        return Ok(None);
    };
    let mut failure: Option<SecretsManagerError> = None;
    let shown = map_aws_principals(stored, |p| {
        let original = rec.policy_principals.get(p)?;
        let account = original.split(':').nth(4).unwrap_or_default();
        match arn_for_unique_id(txn, account, p) {
            Ok(arn) => arn,
            Err(e) => {
                failure.get_or_insert_with(|| errors::internal(e));
                None
            }
        }
    })
    .map_err(errors::internal_policy)?;
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Some(shown))
}

/// Broad access (BlockPublicPolicy, ValidateResourcePolicy): an Allow statement whose
/// principal is everyone (`"*"` or `{"AWS": "*"}`) and that no condition narrows.
fn grants_public_access(text: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<Value>(text) else {
        return false;
    };
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => return false,
    };
    statements.iter().any(|s| {
        let allow = s.get("Effect").and_then(Value::as_str) == Some("Allow");
        let conditioned = s
            .get("Condition")
            .is_some_and(|c| c.as_object().is_some_and(|o| !o.is_empty()));
        let everyone = |v: &Value| match v {
            Value::String(s) => s == "*",
            Value::Array(a) => a.iter().any(|x| x.as_str() == Some("*")),
            _ => false,
        };
        let principal_public = match s.get("Principal") {
            Some(p @ Value::String(_)) => everyone(p),
            Some(Value::Object(o)) => o.get("AWS").is_some_and(everyone),
            _ => false,
        };
        // A NotPrincipal with Allow grants everyone else.
        allow && !conditioned && (principal_public || s.get("NotPrincipal").is_some())
    })
}

fn public_policy_error() -> SecretsManagerError {
    // PublicPolicyException's documentation in the botocore model; AWS's text is unconfirmed.
    SecretsManagerError::PublicPolicy("The BlockPublicPolicy parameter is set to true, and the resource policy did not prevent broad access to the secret.".into(),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutResourcePolicyInput {
    pub secret_id: String,
    pub resource_policy: String,
    pub policy_name: Option<String>,
    pub block_public_policy: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyOutput {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<String>,
    pub policy_name: String,
}

impl PolicyOutput {
    /// The answer about `rec`'s (only) policy.
    fn of(rec: SecretRecord, resource_policy: Option<String>) -> Self {
        PolicyOutput {
            arn: rec.arn,
            name: rec.name,
            resource_policy,
            policy_name: DEFAULT_POLICY_NAME.into(),
        }
    }
}

pub fn put_resource_policy(
    services: &Services,
    ctx: &RequestCtx,
    input: PutResourcePolicyInput,
) -> Result<PolicyOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    v.length(
        "ResourcePolicy",
        Some(&input.resource_policy),
        1,
        tresor_policy::SECRET_RESOURCE_POLICY_MAX_SIZE,
    );
    check_policy_name(&mut v, input.policy_name.as_deref())?;
    validate::finish(v)?;
    let block = input.block_public_policy.unwrap_or(false);
    let context = vec![(
        "secretsmanager:BlockPublicPolicy".to_string(),
        block.to_string(),
    )];
    let (txn, mut rec) = begin_authorized_write(services, |txn| {
        load_live(
            services,
            txn,
            ctx,
            "secretsmanager:PutResourcePolicy",
            &input.secret_id,
            context.clone(),
        )
    })?;
    refuse_replica(&rec)?;
    parse(&input.resource_policy)?;
    if block && grants_public_access(&input.resource_policy) {
        return Err(public_policy_error());
    }
    let (stored, captured) = capture(&*txn, &input.resource_policy)?;
    rec.policy = Some(stored);
    rec.policy_principals = captured;
    save_changed(txn, &mut rec, ctx.now)?;
    Ok(PolicyOutput::of(rec, None))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PolicyRefInput {
    pub secret_id: String,
    pub policy_name: Option<String>,
}

pub fn get_resource_policy(
    services: &Services,
    ctx: &RequestCtx,
    input: PolicyRefInput,
) -> Result<PolicyOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    v.length("PolicyName", input.policy_name.as_deref(), 1, 64);
    validate::finish(v)?;
    let txn = services.store().begin_read().or_internal()?;
    let rec = load_authorized(
        services,
        &*txn,
        ctx,
        "secretsmanager:GetResourcePolicy",
        &input.secret_id,
        vec![],
    )?;
    if input
        .policy_name
        .as_deref()
        .is_some_and(|n| n != DEFAULT_POLICY_NAME)
    {
        return Err(SecretsManagerError::ResourceNotFound(
            "Secrets Manager can't find the specified resource policy.".into(),
        ));
    }
    let shown = render(&*txn, &rec)?;
    Ok(PolicyOutput::of(rec, shown))
}

pub fn delete_resource_policy(
    services: &Services,
    ctx: &RequestCtx,
    input: PolicyRefInput,
) -> Result<PolicyOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    check_policy_name(&mut v, input.policy_name.as_deref())?;
    validate::finish(v)?;
    let (txn, mut rec) = begin_authorized_write(services, |txn| {
        load_live(
            services,
            txn,
            ctx,
            "secretsmanager:DeleteResourcePolicy",
            &input.secret_id,
            vec![],
        )
    })?;
    refuse_replica(&rec)?;
    if rec.policy.take().is_some() {
        rec.policy_principals.clear();
        save_changed(txn, &mut rec, ctx.now)?;
    }
    Ok(PolicyOutput::of(rec, None))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidateResourcePolicyInput {
    pub secret_id: Option<String>,
    pub resource_policy: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidationEntry {
    pub check_name: String,
    pub error_message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidateResourcePolicyOutput {
    pub policy_validation_passed: bool,
    pub validation_errors: Vec<ValidationEntry>,
}

/// Checks syntax, principals and broad access; needs ValidateResourcePolicy and
/// PutResourcePolicy (API reference). The check names are ours (unconfirmed): AWS does not
/// document them.
pub fn validate_resource_policy(
    services: &Services,
    ctx: &RequestCtx,
    input: ValidateResourcePolicyInput,
) -> Result<ValidateResourcePolicyOutput, SecretsManagerError> {
    let mut v = Validator::new();
    if let Some(id) = &input.secret_id {
        validate::secret_id(&mut v, id);
    }
    v.length(
        "ResourcePolicy",
        Some(&input.resource_policy),
        1,
        tresor_policy::SECRET_RESOURCE_POLICY_MAX_SIZE,
    );
    validate::finish(v)?;
    let txn = services.store().begin_read().or_internal()?;
    match &input.secret_id {
        Some(id) => {
            load_authorized(
                services,
                &*txn,
                ctx,
                "secretsmanager:ValidateResourcePolicy",
                id,
                vec![],
            )?;
            load_authorized(
                services,
                &*txn,
                ctx,
                "secretsmanager:PutResourcePolicy",
                id,
                vec![],
            )?;
        }
        None => {
            access::authorize_star(services, ctx, "secretsmanager:ValidateResourcePolicy")?;
        }
    }
    let mut errors_out = Vec::new();
    if let Err(e) = parse(&input.resource_policy) {
        errors_out.push(ValidationEntry {
            check_name: "SYNTAX_CHECK".into(),
            error_message: e.message().unwrap_or_default().to_string(),
        });
    } else {
        if let Err(e) = capture(&*txn, &input.resource_policy) {
            errors_out.push(ValidationEntry {
                check_name: "PRINCIPAL_CHECK".into(),
                error_message: e.message().unwrap_or_default().to_string(),
            });
        }
        if grants_public_access(&input.resource_policy) {
            errors_out.push(ValidationEntry {
                check_name: "PUBLIC_ACCESS_CHECK".into(),
                error_message: "The resource policy grants broad access to the secret.".into(),
            });
        }
    }
    Ok(ValidateResourcePolicyOutput {
        policy_validation_passed: errors_out.is_empty(),
        validation_errors: errors_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_principal_without_condition_is_public() {
        let p = |principal: &str, condition: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{principal},"Action":"secretsmanager:GetSecretValue","Resource":"*"{condition}}}]}}"#
            )
        };
        assert!(grants_public_access(&p(r#""*""#, "")));
        assert!(grants_public_access(&p(r#"{"AWS":"*"}"#, "")));
        assert!(grants_public_access(&p(
            r#"{"AWS":["arn:aws:iam::111122223333:root","*"]}"#,
            ""
        )));
        assert!(!grants_public_access(&p(
            r#"{"AWS":"*"}"#,
            r#","Condition":{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#
        )));
        assert!(!grants_public_access(&p(
            r#"{"AWS":"arn:aws:iam::111122223333:role/ci"}"#,
            ""
        )));
    }

    #[test]
    fn only_user_and_role_arns_are_captured() {
        assert!(is_capturable("arn:aws:iam::111122223333:role/ci"));
        assert!(is_capturable("arn:aws:iam::111122223333:user/path/alice"));
        assert!(!is_capturable("arn:aws:iam::111122223333:root"));
        assert!(!is_capturable(
            "arn:aws:sts::111122223333:assumed-role/ci/s"
        ));
        assert!(!is_capturable("111122223333"));
        assert!(!is_capturable("*"));
    }
}
