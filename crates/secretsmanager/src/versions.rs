//! Secret versions and staging labels: GetSecretValue, BatchGetSecretValue, PutSecretValue,
//! UpdateSecretVersionStage and ListSecretVersionIds, plus the version bookkeeping CreateSecret
//! and UpdateSecret share ([`add_version`]).
//!
//! Rules (AWS Secrets Manager API Reference of each operation):
//! - a staging label sits on at most one version; moving AWSCURRENT drags AWSPREVIOUS to the
//!   version it left; the first version always gets AWSCURRENT;
//! - a ClientRequestToken that names an existing version is a replay: same value → success
//!   without change, other value → `ResourceExistsException`; a label-only placeholder
//!   (rotation's AWSPENDING) is filled instead;
//! - versions without labels are deprecated: hidden, and removed once there are more than 100
//!   versions, but never before they are 24 hours old; a secret that cannot make room is at
//!   its version quota (`LimitExceededException`).

use crate::errors::SecretsManagerError;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tresor_core::{RequestCtx, Services, record};
use tresor_crypto::{SecretBytes, SecretString};
use tresor_store::{ReadTxn, WriteTxn};
use tresor_wire::json::epoch_seconds;
use tresor_wire::validate::Validator;

use crate::access::{
    self, begin_authorized_write, load_authorized, load_live, load_live_shared, refuse_replica,
    save, save_changed,
};
use crate::errors::{self, OrInternal};
use crate::listing::{Filter, ListQuery, list_page, validate_filters};
use crate::model::{AWSCURRENT, SecretRecord, ValueKind, ValueRecord, VersionMeta, day_of, keys};
use crate::shapes;
use crate::validate::{self, NewValue};

/// Versions kept per secret before deprecated ones are removed (quotas page).
pub const MAX_VERSIONS: usize = 100;
/// Labels per version (model `SecretVersionStagesType`, max 20).
pub const MAX_LABELS_PER_VERSION: usize = 20;

#[derive(Debug, PartialEq, Eq)]
pub enum AddOutcome {
    Created,
    Filled,
    Replayed,
}

/// Adds version `token` holding `value` to `rec` (in `txn`), attaching `stages` (default:
/// AWSCURRENT). The caller writes `rec` back.
pub fn add_version(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    rec: &mut SecretRecord,
    token: &str,
    value: &NewValue,
    stages: Option<&[String]>,
) -> Result<AddOutcome, SecretsManagerError> {
    let value_key = keys::value(&rec.account, &rec.region, &rec.arn, token);
    let outcome = match rec.versions.get(token) {
        Some(meta) if meta.has_value => {
            let stored: Option<ValueRecord> = record::get(&*txn, &value_key).or_internal()?;
            let Some(stored) = stored else {
                tracing::error!(secret = %rec.arn, version_id = token, "version without its value record");
                return Err(errors::internal(tresor_core::error::ServiceError::Corrupt(
                    "missing value".into(),
                )));
            };
            let plain = crate::envelope::open(services, &*txn, ctx, rec, token, &stored)?;
            if crate::envelope::same_value(&plain, stored.kind, value.bytes.expose(), value.kind) {
                return Ok(AddOutcome::Replayed);
            }
            // Moto's wording (unconfirmed).
            return Err(SecretsManagerError::ResourceExists(format!(
                "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {}.",
                rec.arn
            )));
        }
        Some(_) => AddOutcome::Filled,
        None => {
            make_room(txn, rec, ctx.now)?;
            AddOutcome::Created
        }
    };
    let (sealed, key_arn) = crate::envelope::seal(
        services,
        txn,
        ctx,
        rec,
        None,
        token,
        (value.kind, value.bytes.expose()),
    )?;
    record::put(txn, &value_key, &sealed).or_internal()?;
    let meta = rec
        .versions
        .entry(token.to_string())
        .or_insert_with(|| VersionMeta {
            stages: Vec::new(),
            created: ctx.now,
            last_accessed: None,
            kms_key_arn: None,
            default_key: true,
            has_value: true,
        });
    meta.has_value = true;
    meta.kms_key_arn = Some(key_arn);
    meta.default_key = rec.kms_key_id.is_none();
    let default = [AWSCURRENT.to_string()];
    let stages = stages.unwrap_or(&default);
    attach_all(rec, stages, token)?;
    if rec.holder_of(AWSCURRENT).is_none() {
        rec.attach_label(AWSCURRENT, token);
    }
    rec.last_changed = ctx.now;
    Ok(outcome)
}

fn attach_all(
    rec: &mut SecretRecord,
    stages: &[String],
    to: &str,
) -> Result<(), SecretsManagerError> {
    let current = rec
        .versions
        .get(to)
        .map(|m| m.stages.clone())
        .unwrap_or_default();
    let mut total = current.len();
    for s in stages {
        if !current.contains(s) {
            total += 1;
        }
    }
    if total > MAX_LABELS_PER_VERSION {
        // Unconfirmed: the model caps a request's labels at 20; AWS's code and text for a version
        // that would end up with more are not documented.
        return Err(SecretsManagerError::LimitExceeded(format!(
            "A version can have at most {MAX_LABELS_PER_VERSION} staging labels."
        )));
    }
    for s in stages {
        rec.attach_label(s, to);
    }
    Ok(())
}

/// Removes deprecated versions (no label) older than 24 hours, oldest first, until there is
/// room for one more version; fails at the quota when that is not possible.
fn make_room(
    txn: &mut dyn WriteTxn,
    rec: &mut SecretRecord,
    now: OffsetDateTime,
) -> Result<(), SecretsManagerError> {
    if rec.versions.len() < MAX_VERSIONS {
        return Ok(());
    }
    let mut deprecated: Vec<(OffsetDateTime, String)> = rec
        .versions
        .iter()
        .filter(|(_, m)| m.stages.is_empty() && m.created + Duration::hours(24) <= now)
        .map(|(id, m)| (m.created, id.clone()))
        .collect();
    deprecated.sort();
    for (_, id) in deprecated {
        if rec.versions.len() < MAX_VERSIONS {
            break;
        }
        if let Some(m) = rec.versions.remove(&id)
            && m.has_value
        {
            txn.delete(&keys::value(&rec.account, &rec.region, &rec.arn, &id))
                .or_internal()?;
        }
    }
    if rec.versions.len() >= MAX_VERSIONS {
        // AWS Secrets Manager User Guide, "Secrets Manager quotas": updating more often than
        // Secrets Manager removes versions "will reach the quota for secret versions"; the text
        // is unconfirmed.
        return Err(SecretsManagerError::LimitExceeded(format!(
            "You have exceeded the maximum number of versions ({MAX_VERSIONS}) allowed for secret {}. Versions without staging labels are removed after 24 hours.",
            rec.name
        )));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// GetSecretValue

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetSecretValueInput {
    pub secret_id: String,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretValueOut {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub version_id: String,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "tresor_wire::blob::option"
    )]
    pub secret_binary: Option<SecretBytes>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "shapes::ser_secret_string"
    )]
    pub secret_string: Option<SecretString>,
    pub version_stages: Vec<String>,
    #[serde(with = "epoch_seconds")]
    pub created_date: OffsetDateTime,
}

/// A read that should move the secret's and version's `LastAccessedDate`.
struct Access {
    account: String,
    region: String,
    name: String,
    arn: String,
    version_id: String,
}

/// The GetSecretValue logic, shared with BatchGetSecretValue.
fn read_value(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    secret_id: &str,
    version_id: Option<&str>,
    version_stage: Option<&str>,
) -> Result<(SecretValueOut, Option<Access>), SecretsManagerError> {
    let mut context = Vec::new();
    if let Some(id) = version_id {
        context.push(("secretsmanager:VersionId".to_string(), id.to_string()));
    }
    if let Some(stage) = version_stage {
        context.push(("secretsmanager:VersionStage".to_string(), stage.to_string()));
    }
    let rec = load_live_shared(
        services,
        txn,
        ctx,
        "secretsmanager:GetSecretValue",
        secret_id,
        context,
    )?;
    let (id, meta) = match (version_id, version_stage) {
        (Some(id), stage) => {
            let Some(meta) = rec.versions.get(id) else {
                return Err(errors::value_not_found_for_version(id));
            };
            if let Some(stage) = stage
                && !meta.stages.iter().any(|s| s == stage)
            {
                // Moto's wording (unconfirmed).
                return Err(errors::invalid_request(
                    "You provided a VersionStage that is not associated to the provided VersionId.",
                ));
            }
            if !meta.has_value {
                return Err(match stage {
                    Some(stage) => errors::value_not_found_for_stage(stage),
                    None => errors::value_not_found_for_version(id),
                });
            }
            (id.to_string(), meta)
        }
        (None, stage) => {
            let stage = stage.unwrap_or(AWSCURRENT);
            let Some(id) = rec.holder_of(stage) else {
                return Err(errors::value_not_found_for_stage(stage));
            };
            let Some(meta) = rec.versions.get(id).filter(|m| m.has_value) else {
                return Err(errors::value_not_found_for_stage(stage));
            };
            (id.to_string(), meta)
        }
    };
    // Sealed, as the store holds it: decoded once per snapshot generation (the record cache).
    let stored = services
        .records()
        .get::<ValueRecord>(txn, &keys::value(&rec.account, &rec.region, &rec.arn, &id))
        .or_internal()?;
    let Some(stored) = stored else {
        return Err(errors::value_not_found_for_version(&id));
    };
    let plain = crate::envelope::open(services, txn, ctx, &rec, &id, &stored)?;
    let (secret_string, secret_binary) = match stored.kind {
        ValueKind::String => {
            let s = SecretString::from_utf8(plain).map_err(errors::internal)?;
            (Some(s), None)
        }
        ValueKind::Binary => (None, Some(plain)),
    };
    ctx.audit.secret_read(&rec.arn, &id, &meta.stages);
    let today = day_of(ctx.now);
    let access =
        (rec.last_accessed != Some(today) || meta.last_accessed != Some(today)).then(|| Access {
            account: rec.account.clone(),
            region: rec.region.clone(),
            name: rec.name.clone(),
            arn: rec.arn.clone(),
            version_id: id.clone(),
        });
    Ok((
        SecretValueOut {
            arn: rec.arn.clone(),
            name: rec.name.clone(),
            version_id: id,
            secret_binary,
            secret_string,
            version_stages: meta.stages.clone(),
            created_date: meta.created,
        },
        access,
    ))
}

/// Moves `LastAccessedDate` (day resolution) of the secrets and versions just read. Only the
/// first read of a day writes; a failure here does not fail the read.
fn record_access(ctx: &RequestCtx, accesses: Vec<Access>) {
    if accesses.is_empty() {
        return;
    }
    let today = day_of(ctx.now);
    ctx.deferred.push(Box::new(move |services: &Services| {
        write_access(services, today, accesses);
    }));
}

fn write_access(services: &Services, today: OffsetDateTime, accesses: Vec<Access>) {
    let result = (|| -> Result<(), SecretsManagerError> {
        let mut txn = services.store().begin_write().or_internal()?;
        for a in accesses {
            let key = keys::secret(&a.account, &a.region, &a.name);
            let Some(mut rec) = record::get::<SecretRecord>(&*txn, &key).or_internal()? else {
                continue;
            };
            if rec.arn != a.arn {
                continue;
            }
            rec.last_accessed = Some(today);
            if let Some(m) = rec.versions.get_mut(&a.version_id) {
                m.last_accessed = Some(today);
            }
            record::put(&mut *txn, &key, &rec).or_internal()?;
        }
        txn.commit().or_internal()
    })();
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record LastAccessedDate");
    }
}

fn validate_selectors(v: &mut Validator, version_id: Option<&str>, version_stage: Option<&str>) {
    validate::version_id(v, "VersionId", version_id);
    validate::version_stage(v, "VersionStage", version_stage);
}

pub fn get_secret_value(
    services: &Services,
    ctx: &RequestCtx,
    input: GetSecretValueInput,
) -> Result<SecretValueOut, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate_selectors(
        &mut v,
        input.version_id.as_deref(),
        input.version_stage.as_deref(),
    );
    validate::finish(v)?;
    let (out, access) = {
        // Lazy: a read served from the record cache runs no SQL.
        let txn = services.store().begin_read_lazy().or_internal()?;
        read_value(
            services,
            &*txn,
            ctx,
            &input.secret_id,
            input.version_id.as_deref(),
            input.version_stage.as_deref(),
        )?
    };
    record_access(ctx, access.into_iter().collect());
    Ok(out)
}

/// A secret's value as Secrets Manager returns it: ARN, name, version id, stages, creation
/// date and the value (in zeroizing buffers; never `Debug`).
pub type SecretValue = SecretValueOut;

/// The typed GetSecretValue for other services (Parameter Store's
/// `/aws/reference/secretsmanager/…`): the same validation, Authorizer questions (with the
/// caller of `ctx` as principal), KMS calls and `LastAccessedDate` bookkeeping as the
/// operation itself.
pub fn read_secret_value(
    services: &Services,
    ctx: &RequestCtx,
    secret_id: &str,
    version_id: Option<&str>,
    version_stage: Option<&str>,
) -> Result<SecretValue, SecretsManagerError> {
    get_secret_value(
        services,
        ctx,
        GetSecretValueInput {
            secret_id: secret_id.to_string(),
            version_id: version_id.map(str::to_string),
            version_stage: version_stage.map(str::to_string),
        },
    )
}

// ---------------------------------------------------------------------------------------
// BatchGetSecretValue

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetSecretValueInput {
    pub secret_id_list: Option<Vec<String>>,
    pub filters: Option<Vec<Filter>>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiError {
    pub secret_id: String,
    pub error_code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetSecretValueOutput {
    pub secret_values: Vec<SecretValueOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub errors: Vec<ApiError>,
}

pub fn batch_get_secret_value(
    services: &Services,
    ctx: &RequestCtx,
    input: BatchGetSecretValueInput,
) -> Result<BatchGetSecretValueOutput, SecretsManagerError> {
    let mut v = Validator::new();
    if let Some(list) = &input.secret_id_list {
        if list.is_empty() || list.len() > 20 {
            v.fail(
                "SecretIdList",
                None,
                "Member must have length between 1 and 20",
            );
        }
        for (i, id) in list.iter().enumerate() {
            v.length(&format!("SecretIdList.{}.member", i + 1), Some(id), 1, 2048);
        }
    }
    if let Some(filters) = &input.filters {
        validate_filters(&mut v, filters)?;
    }
    v.range("MaxResults", input.max_results, 1, 20);
    v.length("NextToken", input.next_token.as_deref(), 1, 4096);
    validate::finish(v)?;
    // Exactly one of SecretIdList and Filters; MaxResults/NextToken only with Filters
    // (BatchGetSecretValue API reference).
    match (&input.secret_id_list, &input.filters) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(errors::invalid_parameter(
                "You must include Filters or SecretIdList, but not both.",
            ));
        }
        (Some(_), None) if input.max_results.is_some() || input.next_token.is_some() => {
            return Err(errors::invalid_parameter(
                "MaxResults and NextToken can be used only with Filters.",
            ));
        }
        _ => {}
    }
    let mut values = Vec::new();
    let mut failures = Vec::new();
    let mut accesses = Vec::new();
    let next_token;
    {
        let txn = services.store().begin_read().or_internal()?;
        access::authorize_star(services, ctx, "secretsmanager:BatchGetSecretValue")?;
        let ids: Vec<String> = match (&input.secret_id_list, &input.filters) {
            (Some(list), _) => {
                next_token = None;
                list.clone()
            }
            (None, Some(filters)) => {
                access::authorize_star(services, ctx, "secretsmanager:ListSecrets")?;
                let limit = usize::try_from(input.max_results.unwrap_or(20)).unwrap_or(20);
                let query = ListQuery {
                    filters,
                    include_deleted: false,
                    sort_by: "created-date",
                    descending: false,
                    next_token: input.next_token.as_deref(),
                    limit,
                };
                let (page, token) = list_page(&*txn, ctx, &query)?;
                next_token = token;
                page.into_iter().map(|r| r.arn).collect()
            }
            (None, None) => {
                next_token = None;
                Vec::new()
            }
        };
        for id in ids {
            match read_value(services, &*txn, ctx, &id, None, None) {
                Ok((out, access)) => {
                    values.push(out);
                    accesses.extend(access);
                }
                Err(e) if e.is_internal() => return Err(e),
                Err(e) => failures.push(ApiError {
                    secret_id: id,
                    error_code: e.code().to_string(),
                    message: e.message().map(str::to_string),
                }),
            }
        }
    }
    record_access(ctx, accesses);
    Ok(BatchGetSecretValueOutput {
        secret_values: values,
        next_token,
        errors: failures,
    })
}

// ---------------------------------------------------------------------------------------
// PutSecretValue

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutSecretValueInput {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    #[serde(default, with = "tresor_wire::blob::option")]
    pub secret_binary: Option<SecretBytes>,
    #[serde(default, deserialize_with = "shapes::secret_string")]
    pub secret_string: Option<SecretString>,
    pub version_stages: Option<Vec<String>>,
    #[serde(default, deserialize_with = "shapes::secret_string")]
    pub rotation_token: Option<SecretString>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct PutSecretValueOutput {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub version_stages: Vec<String>,
}

fn validate_stages(v: &mut Validator, stages: Option<&[String]>) {
    if let Some(stages) = stages {
        if stages.is_empty() || stages.len() > MAX_LABELS_PER_VERSION {
            v.fail(
                "VersionStages",
                None,
                "Member must have length between 1 and 20",
            );
        }
        for (i, s) in stages.iter().enumerate() {
            validate::version_stage(v, &format!("VersionStages.{}.member", i + 1), Some(s));
        }
    }
}

pub fn put_secret_value(
    services: &Services,
    ctx: &RequestCtx,
    input: PutSecretValueInput,
) -> Result<PutSecretValueOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::client_request_token(&mut v, input.client_request_token.as_deref());
    validate_stages(&mut v, input.version_stages.as_deref());
    if let Some(t) = &input.rotation_token {
        let t = t.expose();
        if t.len() < 36
            || t.len() > 256
            || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            v.fail(
                "RotationToken",
                None,
                "Member must satisfy regular expression pattern: ^[a-zA-Z0-9\\-]+$",
            );
        }
    }
    let value = validate::new_value(&mut v, input.secret_string, input.secret_binary, true)?;
    validate::finish(v)?;
    let Some(value) = value else {
        return Err(errors::invalid_parameter(
            "You must provide either SecretString or SecretBinary.",
        ));
    };
    let token = input
        .client_request_token
        .unwrap_or_else(tresor_crypto::ids::uuid_v4);
    let mut context = Vec::new();
    for s in input.version_stages.iter().flatten() {
        context.push(("secretsmanager:VersionStage".to_string(), s.clone()));
    }
    let (mut txn, mut rec) = begin_authorized_write(services, |txn| {
        load_live(
            services,
            txn,
            ctx,
            "secretsmanager:PutSecretValue",
            &input.secret_id,
            context.clone(),
        )
    })?;
    refuse_replica(&rec)?;
    let outcome = add_version(
        services,
        &mut *txn,
        ctx,
        &mut rec,
        &token,
        &value,
        input.version_stages.as_deref(),
    )?;
    let stages = rec
        .versions
        .get(&token)
        .map(|m| m.stages.clone())
        .unwrap_or_default();
    if outcome != AddOutcome::Replayed {
        if stages.iter().any(|s| s == AWSCURRENT) {
            crate::rotation::value_changed_by_hand(&mut *txn, &mut rec, ctx.now)?;
        }
        save(&mut *txn, &rec)?;
        txn.commit().or_internal()?;
        crate::replication_outbox::committed(&rec);
    }
    Ok(PutSecretValueOutput {
        arn: rec.arn,
        name: rec.name,
        version_id: token,
        version_stages: stages,
    })
}

// ---------------------------------------------------------------------------------------
// UpdateSecretVersionStage

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateSecretVersionStageInput {
    pub secret_id: String,
    pub version_stage: String,
    pub remove_from_version_id: Option<String>,
    pub move_to_version_id: Option<String>,
}

pub fn update_secret_version_stage(
    services: &Services,
    ctx: &RequestCtx,
    input: UpdateSecretVersionStageInput,
) -> Result<crate::shapes::ArnNameOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::version_stage(&mut v, "VersionStage", Some(&input.version_stage));
    validate::version_id(
        &mut v,
        "RemoveFromVersionId",
        input.remove_from_version_id.as_deref(),
    );
    validate::version_id(
        &mut v,
        "MoveToVersionId",
        input.move_to_version_id.as_deref(),
    );
    validate::finish(v)?;
    let label = input.version_stage.as_str();
    let context = vec![("secretsmanager:VersionStage".to_string(), label.to_string())];
    let (txn, mut rec) = begin_authorized_write(services, |txn| {
        load_live(
            services,
            txn,
            ctx,
            "secretsmanager:UpdateSecretVersionStage",
            &input.secret_id,
            context.clone(),
        )
    })?;
    refuse_replica(&rec)?;
    let holder = rec.holder_of(label).map(str::to_string);
    match (&input.move_to_version_id, &input.remove_from_version_id) {
        (Some(to), remove) => {
            if !rec.versions.contains_key(to.as_str()) {
                // Unconfirmed: AWS's code and text for an unknown MoveToVersionId.
                return Err(errors::invalid_parameter(format!(
                    "Secrets Manager can't find the specified version {to} of secret {}.",
                    rec.name
                )));
            }
            if let Some(h) = &holder
                && h != to
                && remove.as_deref() != Some(h.as_str())
            {
                // The message AWS returns when the label sits elsewhere, as moto has it
                // (unconfirmed); the rule itself is documented (UpdateSecretVersionStage).
                return Err(errors::invalid_parameter(match remove {
                    None => format!(
                        "The parameter RemoveFromVersionId can't be empty. Staging label {label} is currently attached to version {h}, so you must explicitly reference that version in RemoveFromVersionId."
                    ),
                    Some(r) => format!(
                        "The parameter RemoveFromVersionId doesn't match. Staging label {label} is currently attached to version {h}, not version {r}."
                    ),
                }));
            }
            if holder.is_none()
                && let Some(r) = remove
            {
                return Err(errors::invalid_parameter(format!(
                    "Staging label {label} is not attached to version {r}, so it can't be removed from it."
                )));
            }
            if holder.as_deref() != Some(to.as_str()) {
                attach_all(&mut rec, std::slice::from_ref(&input.version_stage), to)?;
            }
        }
        (None, Some(from)) => {
            if holder.as_deref() != Some(from.as_str()) {
                return Err(errors::invalid_parameter(format!(
                    "Staging label {label} is not attached to version {from}, so it can't be removed from it."
                )));
            }
            if label == AWSCURRENT {
                // Unconfirmed: a secret always has a current version, so tresor refuses; move
                // AWSCURRENT instead.
                return Err(errors::invalid_parameter(
                    "You can't remove the staging label AWSCURRENT from a version. Move it to another version with MoveToVersionId instead.",
                ));
            }
            rec.detach_label(label, from);
        }
        (None, None) => {
            return Err(errors::invalid_parameter(
                "You must specify MoveToVersionId, RemoveFromVersionId, or both.",
            ));
        }
    }
    save_changed(txn, &mut rec, ctx.now)?;
    Ok(crate::shapes::ArnNameOutput {
        arn: rec.arn,
        name: rec.name,
    })
}

// ---------------------------------------------------------------------------------------
// ListSecretVersionIds

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretVersionIdsInput {
    pub secret_id: String,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub include_deprecated: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionEntry {
    pub version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_stages: Option<Vec<String>>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub last_accessed_date: Option<OffsetDateTime>,
    #[serde(with = "epoch_seconds")]
    pub created_date: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_ids: Option<Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretVersionIdsOutput {
    pub versions: Vec<VersionEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
}

pub fn list_secret_version_ids(
    services: &Services,
    ctx: &RequestCtx,
    input: ListSecretVersionIdsInput,
) -> Result<ListSecretVersionIdsOutput, SecretsManagerError> {
    use base64::Engine;
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    v.range("MaxResults", input.max_results, 1, 100);
    v.length("NextToken", input.next_token.as_deref(), 1, 4096);
    validate::finish(v)?;
    let txn = services.store().begin_read().or_internal()?;
    let rec = load_authorized(
        services,
        &*txn,
        ctx,
        "secretsmanager:ListSecretVersionIds",
        &input.secret_id,
        vec![],
    )?;
    let include_deprecated = input.include_deprecated.unwrap_or(false);
    // Only versions that hold a value (API reference note), oldest first, by id on ties.
    let mut versions: Vec<(&String, &VersionMeta)> = rec
        .versions
        .iter()
        .filter(|(_, m)| m.has_value && (include_deprecated || !m.stages.is_empty()))
        .collect();
    versions.sort_by(|a, b| (a.1.created, a.0).cmp(&(b.1.created, b.0)));
    let start = match &input.next_token {
        None => 0,
        Some(t) => {
            let after = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(errors::invalid_next_token)?;
            versions
                .iter()
                .position(|(id, _)| **id == after)
                .map(|p| p + 1)
                .ok_or_else(errors::invalid_next_token)?
        }
    };
    let limit = usize::try_from(input.max_results.unwrap_or(100)).unwrap_or(100);
    let page: Vec<&(&String, &VersionMeta)> = versions.iter().skip(start).take(limit).collect();
    let next_token = (start + page.len() < versions.len())
        .then(|| {
            page.last().map(|(id, _)| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
            })
        })
        .flatten();
    Ok(ListSecretVersionIdsOutput {
        versions: page
            .iter()
            .map(|(id, m)| VersionEntry {
                version_id: (*id).clone(),
                version_stages: (!m.stages.is_empty()).then(|| m.stages.clone()),
                last_accessed_date: m.last_accessed,
                created_date: m.created,
                // AWS lists the managed key as `DefaultEncryptionKey`.
                kms_key_ids: if m.default_key {
                    Some(vec!["DefaultEncryptionKey".to_string()])
                } else {
                    m.kms_key_arn.clone().map(|k| vec![k])
                },
            })
            .collect(),
        next_token,
        arn: rec.arn.clone(),
        name: rec.name.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // a panic is a failed test

    use std::sync::Arc;

    use tresor_core::Caller;
    use tresor_crypto::RootKey;
    use tresor_store::MemoryStore;

    use super::*;

    fn ctx(now: OffsetDateTime) -> RequestCtx {
        RequestCtx {
            request_id: "test".into(),
            region: "eu-west-1".into(),
            now,
            source_ip: None,
            secure_transport: true,
            caller: std::sync::Arc::new(Caller::root("111122223333", "AKIAEXAMPLE")),
            deferred: Default::default(),
            audit: Default::default(),
        }
    }

    fn put(
        s: &Services,
        now: OffsetDateTime,
        value: &str,
    ) -> Result<PutSecretValueOutput, SecretsManagerError> {
        let input =
            serde_json::from_value(serde_json::json!({"SecretId": "v", "SecretString": value}))
                .expect("input");
        put_secret_value(s, &ctx(now), input)
    }

    #[test]
    fn deprecated_versions_are_removed_only_after_a_day_and_the_quota_holds() {
        let root = RootKey::from_bytes(&[9u8; 32]).expect("root key");
        let s = Services::new(
            Arc::new(MemoryStore::new()),
            Arc::new(root),
            Arc::new(tresor_iam::IamDirectory),
        );
        let t0 = OffsetDateTime::now_utc();
        let input = serde_json::from_value(serde_json::json!({"Name": "v", "SecretString": "0"}))
            .expect("input");
        crate::secrets::create_secret(&s, &ctx(t0), input).expect("create");
        for i in 1..MAX_VERSIONS {
            put(&s, t0, &i.to_string()).expect("put");
        }
        let err = put(&s, t0, "one too many")
            .err()
            .map(|e| e.code().to_string());
        assert_eq!(err.as_deref(), Some("LimitExceededException"));
        // A day later the oldest deprecated version makes room.
        let later = t0 + Duration::hours(25);
        let out = put(&s, later, "fits").expect("put after a day");
        let got = get_secret_value(
            &s,
            &ctx(later),
            serde_json::from_value(serde_json::json!({"SecretId": "v"})).expect("input"),
        )
        .expect("get");
        assert_eq!(got.version_id, out.version_id);
        assert_eq!(
            got.secret_string
                .as_ref()
                .map(|v| v.expose().to_string())
                .as_deref(),
            Some("fits")
        );
        let txn = s.store().begin_read().expect("read");
        let rec: SecretRecord = record::get(&*txn, &keys::secret("111122223333", "eu-west-1", "v"))
            .expect("get")
            .expect("rec");
        assert_eq!(rec.versions.len(), MAX_VERSIONS);
        assert_eq!(
            rec.holder_of("AWSPREVIOUS")
                .map(|v| rec.versions[v].created),
            Some(t0)
        );
    }
}
