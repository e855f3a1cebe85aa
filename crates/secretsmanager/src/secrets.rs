//! Secret lifecycle: CreateSecret, DescribeSecret, UpdateSecret, DeleteSecret, RestoreSecret,
//! TagResource, UntagResource and ListSecrets.
//!
//! Every write is one store transaction, including the KMS data-key generation and the
//! purge-job outbox record of DeleteSecret.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tresor_core::authz::AuthzRequest;
use tresor_core::{RequestCtx, Services, record};
use tresor_crypto::{SecretBytes, SecretString};
use tresor_store::{ReadTxn, WriteTxn};
use tresor_wire::AwsError;
use tresor_wire::json::epoch_seconds;
use tresor_wire::validate::Validator;

use crate::access::{self, authorize, load_authorized, load_live, save, save_changed};
use crate::errors::{self, OrInternal};
use crate::model::{
    AWSCURRENT, AWSPENDING, AWSPREVIOUS, PurgeJob, RECORD_VERSION, SecretRecord, ValueRecord, keys,
};
use crate::shapes::{self, SecretDescription, Tag};
use crate::validate;
use crate::versions::{AddOutcome, add_version};

/// Recovery window bounds and default (DeleteSecret API reference).
const MIN_RECOVERY_DAYS: i64 = 7;
const MAX_RECOVERY_DAYS: i64 = 30;
const DEFAULT_RECOVERY_DAYS: i64 = 30;

// ---------------------------------------------------------------------------------------
// CreateSecret

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecretInput {
    name: String,
    client_request_token: Option<String>,
    description: Option<String>,
    kms_key_id: Option<String>,
    #[serde(default, deserialize_with = "shapes::secret_binary")]
    secret_binary: Option<SecretBytes>,
    #[serde(default, deserialize_with = "shapes::secret_string")]
    secret_string: Option<SecretString>,
    tags: Option<Vec<Tag>>,
    add_replica_regions: Option<Vec<serde_json::Value>>,
    #[allow(dead_code)]
    force_overwrite_replica_secret: Option<bool>,
    r#type: Option<String>,
    #[serde(rename = "CrossAccountPrimaryARN")]
    cross_account_primary_arn: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateSecretOutput {
    #[serde(rename = "ARN")]
    arn: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_id: Option<String>,
}

fn request_tag_context(tags: &[Tag]) -> Vec<(String, String)> {
    let mut c = Vec::new();
    for t in tags {
        c.push((format!("aws:RequestTag/{}", t.key), t.value.clone()));
        c.push(("aws:TagKeys".to_string(), t.key.clone()));
    }
    c
}

pub fn create_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: CreateSecretInput,
) -> Result<CreateSecretOutput, AwsError> {
    let mut v = Validator::new();
    validate::name(&mut v, &input.name)?;
    validate::client_request_token(&mut v, input.client_request_token.as_deref());
    validate::description(&mut v, input.description.as_deref());
    validate::kms_key_id(&mut v, input.kms_key_id.as_deref());
    v.length("Type", input.r#type.as_deref(), 0, 256);
    let tags = input.tags.unwrap_or_default();
    validate::tags(&mut v, &tags)?;
    let value = validate::new_value(&mut v, input.secret_string, input.secret_binary, false)?;
    validate::finish(v)?;
    if tags.len() > validate::MAX_TAGS {
        return Err(errors::invalid_parameter(
            "Number of tags exceeds Secrets Manager limit of 50.",
        ));
    }
    if input.add_replica_regions.is_some() || input.cross_account_primary_arn.is_some() {
        // Replication arrives with its own issue; refusing is better than silently ignoring.
        return Err(errors::invalid_request(
            "Replication to other Regions isn't available on this server yet.",
        ));
    }
    let token = input
        .client_request_token
        .unwrap_or_else(tresor_crypto::ids::uuid_v4);
    let account = ctx.caller.account.clone();
    let region = ctx.region.clone();

    let mut txn = services.store().begin_write().or_internal()?;
    let key = keys::secret(&account, &region, &input.name);
    let existing: Option<SecretRecord> = record::get(&*txn, &key).or_internal()?;
    let arn = match &existing {
        Some(rec) => rec.arn.clone(),
        None => format!(
            "arn:aws:secretsmanager:{region}:{account}:secret:{}-{}",
            input.name,
            tresor_crypto::ids::secret_suffix()
        ),
    };
    let mut context = vec![
        ("secretsmanager:Name".to_string(), input.name.clone()),
        ("secretsmanager:SecretId".to_string(), arn.clone()),
    ];
    if let Some(d) = &input.description {
        context.push(("secretsmanager:Description".to_string(), d.clone()));
    }
    if let Some(k) = &input.kms_key_id {
        context.push(("secretsmanager:KmsKeyId".to_string(), k.clone()));
    }
    context.extend(request_tag_context(&tags));
    services.authorize(
        ctx,
        &AuthzRequest {
            action: "secretsmanager:CreateSecret",
            resource: &arn,
            context: context.clone(),
            resource_policy: None,
        },
    )?;
    if !tags.is_empty() {
        // Tags on create need TagResource too (CreateSecret API reference).
        services.authorize(
            ctx,
            &AuthzRequest {
                action: "secretsmanager:TagResource",
                resource: &arn,
                context,
                resource_policy: None,
            },
        )?;
    }

    if let Some(mut rec) = existing {
        if rec.is_scheduled_for_deletion() {
            // [O]
            return Err(errors::invalid_request(
                "You can't create this secret because a secret with this name is already scheduled for deletion.",
            ));
        }
        // A replayed request (same token, same value) returns the existing secret
        // (CreateSecret ClientRequestToken: "the request is ignored").
        if let Some(value) = &value
            && rec.versions.get(&token).is_some_and(|m| m.has_value)
        {
            let outcome = add_version(services, &mut *txn, ctx, &mut rec, &token, value, None)?;
            if outcome == AddOutcome::Replayed {
                return Ok(CreateSecretOutput {
                    arn: rec.arn,
                    name: rec.name,
                    version_id: Some(token),
                });
            }
        }
        // [E]
        return Err(AwsError::client(
            "ResourceExistsException",
            format!(
                "The operation failed because the secret {} already exists.",
                input.name
            ),
        ));
    }

    let now = ctx.now;
    let mut rec = SecretRecord {
        v: RECORD_VERSION,
        account: account.clone(),
        region: region.clone(),
        name: input.name.clone(),
        arn: arn.clone(),
        description: input.description.filter(|d| !d.is_empty()),
        kms_key_id: input.kms_key_id.filter(|k| !k.is_empty()),
        secret_type: input.r#type.filter(|t| !t.is_empty()),
        tags: Vec::new(),
        policy: None,
        policy_principals: BTreeMap::new(),
        created: now,
        last_changed: now,
        last_accessed: None,
        deleted: None,
        deletion_due: None,
        rotation_enabled: None,
        rotation_lambda_arn: None,
        rotation_rules: None,
        last_rotated: None,
        next_rotation: None,
        owning_service: None,
        primary_region: None,
        replication_status: Vec::new(),
        versions: BTreeMap::new(),
    };
    set_tags(&mut rec.tags, &tags);
    let version_id = match &value {
        Some(value) => {
            add_version(services, &mut *txn, ctx, &mut rec, &token, value, None)?;
            Some(token)
        }
        None => {
            if rec.kms_key_id.is_some() {
                // Setting a key validates access to it (spec §5.2).
                crate::envelope::resolve_key(services, &mut *txn, ctx, rec.kms_key_id.as_deref())?;
            }
            None
        }
    };
    record::put(&mut *txn, &key, &rec).or_internal()?;
    txn.commit().or_internal()?;
    Ok(CreateSecretOutput {
        arn,
        name: rec.name,
        version_id,
    })
}

/// Upserts tags: same key overwrites, order of first appearance kept.
fn set_tags(current: &mut Vec<(String, String)>, new: &[Tag]) {
    for t in new {
        match current.iter_mut().find(|(k, _)| *k == t.key) {
            Some(slot) => slot.1 = t.value.clone(),
            None => current.push((t.key.clone(), t.value.clone())),
        }
    }
}

// ---------------------------------------------------------------------------------------
// DescribeSecret

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretIdInput {
    secret_id: String,
}

pub fn describe_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: SecretIdInput,
) -> Result<SecretDescription, AwsError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::finish(v)?;
    let txn = services.store().begin_read().or_internal()?;
    // DescribeSecret works on a secret scheduled for deletion and shows DeletedDate.
    let rec = load_authorized(
        services,
        &*txn,
        ctx,
        "secretsmanager:DescribeSecret",
        &input.secret_id,
        vec![],
    )?;
    Ok(SecretDescription::of(&rec, false))
}

// ---------------------------------------------------------------------------------------
// UpdateSecret

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSecretInput {
    secret_id: String,
    client_request_token: Option<String>,
    description: Option<String>,
    kms_key_id: Option<String>,
    #[serde(default, deserialize_with = "shapes::secret_binary")]
    secret_binary: Option<SecretBytes>,
    #[serde(default, deserialize_with = "shapes::secret_string")]
    secret_string: Option<SecretString>,
    r#type: Option<String>,
}

pub fn update_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: UpdateSecretInput,
) -> Result<CreateSecretOutput, AwsError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::client_request_token(&mut v, input.client_request_token.as_deref());
    validate::description(&mut v, input.description.as_deref());
    validate::kms_key_id(&mut v, input.kms_key_id.as_deref());
    v.length("Type", input.r#type.as_deref(), 0, 256);
    let value = validate::new_value(&mut v, input.secret_string, input.secret_binary, false)?;
    validate::finish(v)?;
    let token = input
        .client_request_token
        .unwrap_or_else(tresor_crypto::ids::uuid_v4);

    let mut txn = services.store().begin_write().or_internal()?;
    let mut context = Vec::new();
    if let Some(d) = &input.description {
        context.push(("secretsmanager:Description".to_string(), d.clone()));
    }
    if let Some(k) = &input.kms_key_id {
        context.push(("secretsmanager:KmsKeyId".to_string(), k.clone()));
    }
    let mut rec = load_live(
        services,
        &*txn,
        ctx,
        "secretsmanager:UpdateSecret",
        &input.secret_id,
        context,
    )?;
    if rec.primary_region.is_some() {
        return Err(errors::invalid_request(
            "Operation not permitted on a replica secret. Call must be made in primary secret's region.",
        ));
    }
    if let Some(d) = input.description {
        rec.description = (!d.is_empty()).then_some(d);
    }
    if let Some(t) = input.r#type {
        rec.secret_type = (!t.is_empty()).then_some(t);
    }
    if let Some(k) = input.kms_key_id {
        let new_key = (!k.is_empty()).then_some(k);
        if new_key != rec.kms_key_id {
            change_key(services, &mut *txn, ctx, &mut rec, new_key)?;
        }
    }
    let mut version_id = None;
    if let Some(value) = &value {
        add_version(services, &mut *txn, ctx, &mut rec, &token, value, None)?;
        version_id = Some(token);
    }
    save_changed(txn, &mut rec, ctx.now)?;
    Ok(CreateSecretOutput {
        arn: rec.arn,
        name: rec.name,
        version_id,
    })
}

/// Switches the secret to `new_key` and re-encrypts the versions labelled AWSCURRENT,
/// AWSPENDING or AWSPREVIOUS under it — unless the caller may not use the new key for
/// encryption, in which case existing versions stay as they are (UpdateSecret `KmsKeyId`).
fn change_key(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    rec: &mut SecretRecord,
    new_key: Option<String>,
) -> Result<(), AwsError> {
    // Validate the new key first: a key that does not exist or is unusable is an error.
    if new_key.is_some() {
        crate::envelope::resolve_key(services, txn, ctx, new_key.as_deref())?;
    }
    let labelled: Vec<String> = rec
        .versions
        .iter()
        .filter(|(_, m)| {
            m.has_value
                && m.stages
                    .iter()
                    .any(|s| s == AWSCURRENT || s == AWSPENDING || s == AWSPREVIOUS)
        })
        .map(|(id, _)| id.clone())
        .collect();
    for version_id in labelled {
        let key = keys::value(&rec.account, &rec.region, &rec.arn, &version_id);
        let Some(stored) = record::get::<ValueRecord>(&*txn, &key).or_internal()? else {
            continue;
        };
        let plain = crate::envelope::open(services, &*txn, ctx, rec, &version_id, &stored)?;
        match crate::envelope::seal(
            services,
            txn,
            ctx,
            rec,
            Some(new_key.as_deref()),
            &version_id,
            (stored.kind, plain.expose()),
        ) {
            Ok((sealed, key_arn)) => {
                record::put(txn, &key, &sealed).or_internal()?;
                if let Some(m) = rec.versions.get_mut(&version_id) {
                    m.kms_key_arn = Some(key_arn);
                    m.default_key = new_key.is_none();
                }
            }
            Err(e) if e.code == "AccessDeniedException" => {
                tracing::info!(secret = %rec.arn, "caller may not encrypt under the new key; existing versions keep their key");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    rec.kms_key_id = new_key;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// DeleteSecret / RestoreSecret

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSecretInput {
    secret_id: String,
    recovery_window_in_days: Option<i64>,
    force_delete_without_recovery: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSecretOutput {
    #[serde(rename = "ARN")]
    arn: String,
    name: String,
    #[serde(with = "epoch_seconds")]
    deletion_date: OffsetDateTime,
}

pub fn delete_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: DeleteSecretInput,
) -> Result<DeleteSecretOutput, AwsError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::finish(v)?;
    let force = input.force_delete_without_recovery.unwrap_or(false);
    if force && input.recovery_window_in_days.is_some() {
        // [E] (moto); the model documents that both together are an error.
        return Err(errors::invalid_parameter(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        ));
    }
    let days = input
        .recovery_window_in_days
        .unwrap_or(DEFAULT_RECOVERY_DAYS);
    if !force && !(MIN_RECOVERY_DAYS..=MAX_RECOVERY_DAYS).contains(&days) {
        // [E]
        return Err(errors::invalid_parameter(
            "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
        ));
    }
    let mut context = vec![(
        "secretsmanager:ForceDeleteWithoutRecovery".to_string(),
        force.to_string(),
    )];
    if let Some(d) = input.recovery_window_in_days {
        context.push((
            "secretsmanager:RecoveryWindowInDays".to_string(),
            d.to_string(),
        ));
    }
    let mut txn = services.store().begin_write().or_internal()?;
    let rec = match load_authorized(
        services,
        &*txn,
        ctx,
        "secretsmanager:DeleteSecret",
        &input.secret_id,
        context,
    ) {
        Ok(rec) => rec,
        // A forced delete of a secret that does not exist is not ResourceNotFoundException
        // (DeleteSecret API reference, ForceDeleteWithoutRecovery).
        Err(e) if force && e.code == "ResourceNotFoundException" => {
            let t = access::target(ctx, &input.secret_id);
            let name = t
                .shown_arn
                .rsplit_once(":secret:")
                .map_or(input.secret_id.clone(), |(_, n)| n.to_string());
            return Ok(DeleteSecretOutput {
                arn: t.shown_arn,
                name,
                deletion_date: ctx.now,
            });
        }
        Err(e) => return Err(e),
    };
    if rec.primary_region.is_some() {
        return Err(errors::invalid_request(
            "Operation not permitted on a replica secret. Call must be made in primary secret's region.",
        ));
    }
    if !rec.replication_status.is_empty() {
        // [M] a primary with replicas cannot be deleted.
        let regions: Vec<&str> = rec
            .replication_status
            .iter()
            .map(|r| r.region.as_str())
            .collect();
        return Err(errors::invalid_request(format!(
            "You can't delete secret {} that still has replica regions [{}]",
            rec.name,
            regions.join(", ")
        )));
    }
    if force {
        let (arn, name) = (rec.arn.clone(), rec.name.clone());
        purge(&mut *txn, &rec)?;
        txn.commit().or_internal()?;
        return Ok(DeleteSecretOutput {
            arn,
            name,
            deletion_date: ctx.now,
        });
    }
    if rec.is_scheduled_for_deletion() {
        return Err(errors::marked_for_deletion());
    }
    let mut rec = rec;
    let due = ctx.now + Duration::days(days);
    rec.deleted = Some(ctx.now);
    rec.deletion_due = Some(due);
    let job = PurgeJob {
        v: RECORD_VERSION,
        account: rec.account.clone(),
        region: rec.region.clone(),
        name: rec.name.clone(),
        arn: rec.arn.clone(),
        attempts: 0,
        retry_after: None,
    };
    record::put(
        &mut *txn,
        &keys::purge_job(due.unix_timestamp(), &rec.account, &rec.region, &rec.name),
        &job,
    )
    .or_internal()?;
    save(&mut *txn, &rec)?;
    txn.commit().or_internal()?;
    Ok(DeleteSecretOutput {
        arn: rec.arn,
        name: rec.name,
        deletion_date: due,
    })
}

/// Removes a secret, its values and its pending purge job, inside `txn`.
pub(crate) fn purge(txn: &mut dyn WriteTxn, rec: &SecretRecord) -> Result<(), AwsError> {
    for (version_id, meta) in &rec.versions {
        if meta.has_value {
            txn.delete(&keys::value(
                &rec.account,
                &rec.region,
                &rec.arn,
                version_id,
            ))
            .or_internal()?;
        }
    }
    if let Some(due) = rec.deletion_due {
        txn.delete(&keys::purge_job(
            due.unix_timestamp(),
            &rec.account,
            &rec.region,
            &rec.name,
        ))
        .or_internal()?;
    }
    txn.delete(&keys::secret(&rec.account, &rec.region, &rec.name))
        .or_internal()?;
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ArnNameOutput {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
}

pub fn restore_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: SecretIdInput,
) -> Result<ArnNameOutput, AwsError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::finish(v)?;
    let mut txn = services.store().begin_write().or_internal()?;
    let mut rec = load_authorized(
        services,
        &*txn,
        ctx,
        "secretsmanager:RestoreSecret",
        &input.secret_id,
        vec![],
    )?;
    if let Some(due) = rec.deletion_due.take() {
        txn.delete(&keys::purge_job(
            due.unix_timestamp(),
            &rec.account,
            &rec.region,
            &rec.name,
        ))
        .or_internal()?;
        rec.deleted = None;
        save_changed(txn, &mut rec, ctx.now)?;
    }
    Ok(ArnNameOutput {
        arn: rec.arn,
        name: rec.name,
    })
}

// ---------------------------------------------------------------------------------------
// TagResource / UntagResource

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagResourceInput {
    secret_id: String,
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UntagResourceInput {
    secret_id: String,
    tag_keys: Vec<String>,
}

#[derive(Serialize)]
pub struct Empty {}

pub fn tag_resource(
    services: &Services,
    ctx: &RequestCtx,
    input: TagResourceInput,
) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::tags(&mut v, &input.tags)?;
    validate::finish(v)?;
    let context = request_tag_context(&input.tags);
    let txn = services.store().begin_write().or_internal()?;
    let mut rec = load_live(
        services,
        &*txn,
        ctx,
        "secretsmanager:TagResource",
        &input.secret_id,
        context.clone(),
    )?;
    set_tags(&mut rec.tags, &input.tags);
    if rec.tags.len() > validate::MAX_TAGS {
        return Err(errors::invalid_parameter(
            "Number of tags exceeds Secrets Manager limit of 50.",
        ));
    }
    // A change that would lock the caller out is refused with AccessDenied (TagResource API
    // reference): ask again with the tags as they would be.
    authorize(services, ctx, "secretsmanager:TagResource", &rec, context)?;
    save_changed(txn, &mut rec, ctx.now)?;
    Ok(Empty {})
}

pub fn untag_resource(
    services: &Services,
    ctx: &RequestCtx,
    input: UntagResourceInput,
) -> Result<Empty, AwsError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    for (i, k) in input.tag_keys.iter().enumerate() {
        v.length(&format!("TagKeys.{}.member", i + 1), Some(k), 1, 128);
    }
    validate::finish(v)?;
    let context: Vec<(String, String)> = input
        .tag_keys
        .iter()
        .map(|k| ("aws:TagKeys".to_string(), k.clone()))
        .collect();
    let txn = services.store().begin_write().or_internal()?;
    let mut rec = load_live(
        services,
        &*txn,
        ctx,
        "secretsmanager:UntagResource",
        &input.secret_id,
        context.clone(),
    )?;
    let before = rec.tags.len();
    rec.tags.retain(|(k, _)| !input.tag_keys.contains(k));
    if rec.tags.len() != before {
        authorize(services, ctx, "secretsmanager:UntagResource", &rec, context)?;
        save_changed(txn, &mut rec, ctx.now)?;
    }
    Ok(Empty {})
}

// ---------------------------------------------------------------------------------------
// ListSecrets

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub key: Option<String>,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsInput {
    include_planned_deletion: Option<bool>,
    max_results: Option<i64>,
    next_token: Option<String>,
    filters: Option<Vec<Filter>>,
    sort_order: Option<String>,
    sort_by: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsOutput {
    secret_list: Vec<SecretDescription>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_token: Option<String>,
}

const FILTER_KEYS: [&str; 7] = [
    "description",
    "name",
    "tag-key",
    "tag-value",
    "primary-region",
    "owning-service",
    "all",
];

pub fn validate_filters(v: &mut Validator, filters: &[Filter]) -> Result<(), AwsError> {
    if filters.len() > 10 {
        v.fail(
            "Filters",
            None,
            "Member must have length less than or equal to 10",
        );
    }
    for (i, f) in filters.iter().enumerate() {
        let i = i + 1;
        match f.key.as_deref() {
            Some(k) if FILTER_KEYS.contains(&k) => {}
            other => v.fail(
                &format!("Filters.{i}.member.key"),
                other,
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    FILTER_KEYS.join(", ")
                ),
            ),
        }
        if f.values.is_empty() || f.values.len() > 10 {
            v.fail(
                &format!("Filters.{i}.member.values"),
                None,
                "Member must have length between 1 and 10",
            );
        }
        for (j, value) in f.values.iter().enumerate() {
            let member = format!("Filters.{i}.member.values.{}.member", j + 1);
            v.length(&member, Some(value), 0, 512);
            // Pattern ^\!?[a-zA-Z0-9 :_@\/\+\=\.\-\!]*$ (FilterValueStringType).
            if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c))
            {
                v.fail(&member, Some(value), "Member must satisfy regular expression pattern: ^\\!?[a-zA-Z0-9 :_@\\/\\+\\=\\.\\-\\!]*$");
            }
        }
    }
    Ok(())
}

/// Whether `rec` passes every filter (filters AND, values within a filter OR; a leading `!`
/// negates a value). Matching per the model's `Filter.Key` documentation: prefix matches,
/// case-insensitive for `description` and `all`, case-sensitive otherwise; `all` splits the
/// value into words and searches every attribute.
pub fn matches(rec: &SecretRecord, filters: &[Filter]) -> bool {
    filters.iter().all(|f| {
        let key = f.key.as_deref().unwrap_or_default();
        let (negated, positive): (Vec<&String>, Vec<&String>) =
            f.values.iter().partition(|v| v.starts_with('!'));
        let hit = |value: &str| filter_hit(rec, key, value);
        let positive_ok = positive.is_empty() || positive.iter().any(|v| hit(v));
        let negated_ok = negated.iter().all(|v| !hit(&v[1..]));
        positive_ok && negated_ok
    })
}

fn filter_hit(rec: &SecretRecord, key: &str, value: &str) -> bool {
    let primary = rec
        .primary_region
        .clone()
        .unwrap_or_else(|| rec.region.clone());
    match key {
        "name" => rec.name.starts_with(value),
        "description" => rec
            .description
            .as_deref()
            .is_some_and(|d| d.to_lowercase().starts_with(&value.to_lowercase())),
        "tag-key" => rec.tags.iter().any(|(k, _)| k.starts_with(value)),
        "tag-value" => rec.tags.iter().any(|(_, v)| v.starts_with(value)),
        "primary-region" => primary.starts_with(value),
        "owning-service" => rec
            .owning_service
            .as_deref()
            .is_some_and(|o| o.starts_with(value)),
        "all" => {
            let mut attributes: Vec<String> = vec![rec.name.clone(), primary];
            attributes.extend(rec.description.clone());
            attributes.extend(rec.owning_service.clone());
            for (k, v) in &rec.tags {
                attributes.push(k.clone());
                attributes.push(v.clone());
            }
            let attributes: Vec<String> = attributes.iter().map(|a| a.to_lowercase()).collect();
            value.split_whitespace().all(|word| {
                let word = word.to_lowercase();
                attributes.iter().any(|a| {
                    a.starts_with(&word)
                        || a.split(|c: char| !c.is_ascii_alphanumeric())
                            .any(|w| w.starts_with(&word))
                })
            })
        }
        _ => false,
    }
}

/// The sort key of `rec` under `sort_by`, as an order-preserving string.
fn sort_key(rec: &SecretRecord, sort_by: &str) -> String {
    let t = |d: Option<OffsetDateTime>| {
        format!("{:040}", d.map_or(0, |d| d.unix_timestamp_nanos().max(0)))
    };
    match sort_by {
        "name" => rec.name.clone(),
        "last-accessed-date" => t(rec.last_accessed),
        "last-changed-date" => t(Some(rec.last_changed)),
        _ => t(Some(rec.created)),
    }
}

/// What to list: filters, sort and page.
#[derive(Clone, Copy)]
pub struct ListQuery<'a> {
    pub filters: &'a [Filter],
    pub include_deleted: bool,
    pub sort_by: &'a str,
    pub descending: bool,
    pub next_token: Option<&'a str>,
    pub limit: usize,
}

/// Every secret of the request's region that passes `filters`, sorted; used by ListSecrets
/// and BatchGetSecretValue. Returns one page and the token of the next.
pub fn list_page(
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    query: &ListQuery<'_>,
) -> Result<(Vec<SecretRecord>, Option<String>), AwsError> {
    let ListQuery {
        filters,
        include_deleted,
        sort_by,
        descending,
        next_token,
        limit,
    } = *query;
    let prefix = keys::secret_prefix(&ctx.caller.account, &ctx.region);
    let mut all: Vec<(String, SecretRecord)> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let batch =
            record::scan::<SecretRecord>(txn, &prefix, after.as_deref(), 1000).or_internal()?;
        let done = batch.len() < 1000;
        after = batch.last().map(|(k, _)| k.clone());
        for (_, rec) in batch {
            if (include_deleted || !rec.is_scheduled_for_deletion()) && matches(&rec, filters) {
                all.push((format!("{}\0{}", sort_key(&rec, sort_by), rec.name), rec));
            }
        }
        if done {
            break;
        }
    }
    all.sort_by(|a, b| a.0.cmp(&b.0));
    if descending {
        all.reverse();
    }
    let start = match next_token {
        None => 0,
        Some(token) => {
            let position = decode_token(token)?;
            all.iter()
                .position(|(k, _)| {
                    if descending {
                        *k < position
                    } else {
                        *k > position
                    }
                })
                .unwrap_or(all.len())
        }
    };
    let page: Vec<(String, SecretRecord)> = all.into_iter().skip(start).take(limit + 1).collect();
    let more = page.len() > limit;
    let page: Vec<(String, SecretRecord)> = page.into_iter().take(limit).collect();
    let token = if more {
        page.last().map(|(k, _)| encode_token(k))
    } else {
        None
    };
    Ok((page.into_iter().map(|(_, r)| r).collect(), token))
}

fn encode_token(position: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1\0{position}"))
}

fn decode_token(token: &str) -> Result<String, AwsError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.as_bytes())
        .map_err(|_| errors::invalid_next_token())?;
    let text = String::from_utf8(bytes).map_err(|_| errors::invalid_next_token())?;
    text.strip_prefix("v1\0")
        .map(str::to_string)
        .ok_or_else(errors::invalid_next_token)
}

pub fn list_secrets(
    services: &Services,
    ctx: &RequestCtx,
    input: ListSecretsInput,
) -> Result<ListSecretsOutput, AwsError> {
    let mut v = Validator::new();
    v.range("MaxResults", input.max_results, 1, 100);
    v.length("NextToken", input.next_token.as_deref(), 1, 4096);
    let filters = input.filters.unwrap_or_default();
    validate_filters(&mut v, &filters)?;
    if let Some(o) = input.sort_order.as_deref()
        && o != "asc"
        && o != "desc"
    {
        v.fail(
            "SortOrder",
            Some(o),
            "Member must satisfy enum value set: [asc, desc]",
        );
    }
    let sort_by = input.sort_by.as_deref().unwrap_or("created-date");
    if ![
        "created-date",
        "last-accessed-date",
        "last-changed-date",
        "name",
    ]
    .contains(&sort_by)
    {
        v.fail(
            "SortBy",
            Some(sort_by),
            "Member must satisfy enum value set: [created-date, last-accessed-date, last-changed-date, name]",
        );
    }
    validate::finish(v)?;
    let txn = services.store().begin_read().or_internal()?;
    access::authorize_star(services, ctx, "secretsmanager:ListSecrets")?;
    let limit = usize::try_from(input.max_results.unwrap_or(100)).unwrap_or(100);
    let query = ListQuery {
        filters: &filters,
        include_deleted: input.include_planned_deletion.unwrap_or(false),
        sort_by,
        descending: input.sort_order.as_deref() == Some("desc"),
        next_token: input.next_token.as_deref(),
        limit,
    };
    let (page, next_token) = list_page(&*txn, ctx, &query)?;
    Ok(ListSecretsOutput {
        secret_list: page
            .iter()
            .map(|r| SecretDescription::of(r, true))
            .collect(),
        next_token,
    })
}
