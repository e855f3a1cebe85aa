//! Rotation configuration: RotateSecret and CancelRotateSecret, and the durable rotation jobs
//! they write. The steps themselves run in the background ([`crate::rotation_run`]).
//!
//! RotateSecret (AWS Secrets Manager API Reference, RotateSecret; User Guide, "Rotation by
//! Lambda function"):
//! - the caller needs `secretsmanager:RotateSecret` on the secret (condition key
//!   `secretsmanager:RotationLambdaARN`) and `lambda:InvokeFunction` on the function, and the
//!   function's resource policy must let `secretsmanager.amazonaws.com` invoke it;
//! - in the same transaction that stores the configuration, it creates the new version
//!   (`ClientRequestToken`) holding only the label `AWSPENDING` and no value, and the job that
//!   runs the steps; the call returns at once;
//! - an `AWSPENDING` label on a version other than the `AWSCURRENT` one means a previous
//!   rotation is incomplete: the call fails, and that rotation is re-attempted.
//!
//! No function is invoked while a store transaction is open: the function calls back into
//! tresor's public API.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_core::authz::AuthzRequest;
use tresor_core::{FunctionError, RequestCtx, ServiceInvoke, Services, record};
use tresor_store::WriteTxn;
use tresor_wire::validate::Validator;

use crate::access::{begin_authorized_write, load_live, refuse_replica, save_changed};
use crate::errors::{self, OrInternal, SecretsManagerError};
use crate::model::{
    AWSCURRENT, AWSPENDING, RECORD_VERSION, RotationJob, RotationKind, RotationRules, SecretRecord,
    VersionMeta, keys,
};
use crate::schedule;
use crate::validate;

/// The service principal Secrets Manager invokes rotation functions as.
pub const SERVICE_PRINCIPAL: &str = "secretsmanager.amazonaws.com";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotateSecretInput {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    #[serde(rename = "RotationLambdaARN")]
    pub rotation_lambda_arn: Option<String>,
    pub rotation_rules: Option<RotationRules>,
    pub rotate_immediately: Option<bool>,
    pub external_secret_rotation_metadata: Option<serde_json::Value>,
    pub external_secret_rotation_role_arn: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotateSecretOutput {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
}

/// Quoted from AWS (observed behavior, as infrastructure tools report it).
pub fn previous_rotation_incomplete() -> SecretsManagerError {
    errors::invalid_request(
        "A previous rotation isn't complete. That rotation will be reattempted.",
    )
}

/// Quoted from AWS (observed behavior).
pub fn cannot_invoke() -> SecretsManagerError {
    SecretsManagerError::AccessDenied(
        "Secrets Manager cannot invoke the specified Lambda function. Ensure that the function policy grants access to the principal secretsmanager.amazonaws.com.".into(),
    )
}

/// The version holding `AWSPENDING` when it is not also the current version: an incomplete
/// rotation.
pub(crate) fn incomplete_pending(rec: &SecretRecord) -> Option<String> {
    let pending = rec.holder_of(AWSPENDING)?;
    (rec.holder_of(AWSCURRENT) != Some(pending)).then(|| pending.to_string())
}

/// Adds the rotation placeholder `token`: a version with `AWSPENDING` and no value.
pub(crate) fn add_placeholder(rec: &mut SecretRecord, token: &str, now: OffsetDateTime) {
    let default_key = rec.kms_key_id.is_none();
    rec.versions
        .entry(token.to_string())
        .or_insert(VersionMeta {
            stages: Vec::new(),
            created: now,
            last_accessed: None,
            kms_key_arn: None,
            default_key,
            has_value: false,
        });
    rec.attach_label(AWSPENDING, token);
}

/// Unix milliseconds, the order of job keys.
pub(crate) fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Replaces the secret's rotation job with `job` due at `due` (or removes it), in `txn`; the
/// caller saves `rec`.
pub(crate) fn replace_job(
    txn: &mut dyn WriteTxn,
    rec: &mut SecretRecord,
    job: Option<(OffsetDateTime, RotationJob)>,
) -> Result<(), SecretsManagerError> {
    if let Some(old) = rec.rotation_job.take() {
        txn.delete(&old).or_internal()?;
    }
    if let Some((due, job)) = job {
        let key = keys::rotation_job(unix_ms(due), &rec.account, &rec.region, &rec.name);
        record::put(txn, &key, &job).or_internal()?;
        rec.rotation_job = Some(key);
    }
    Ok(())
}

pub(crate) fn new_job(
    rec: &SecretRecord,
    kind: RotationKind,
    token: Option<String>,
) -> RotationJob {
    RotationJob {
        v: RECORD_VERSION,
        account: rec.account.clone(),
        region: rec.region.clone(),
        name: rec.name.clone(),
        arn: rec.arn.clone(),
        kind,
        token,
        next_step: 0,
        attempts: 0,
        lease: None,
    }
}

/// The secret's schedule as stored (already validated when it was set).
pub(crate) fn stored_schedule(rec: &SecretRecord) -> Option<schedule::Schedule> {
    rec.rotation_rules
        .as_ref()
        .and_then(|r| schedule::parse(r).ok().flatten())
}

/// Schedules the next rotation after `last` in `txn` (or none, when rotation is off or has no
/// schedule) and sets `NextRotationDate`; the caller saves `rec`.
pub(crate) fn schedule_next(
    txn: &mut dyn WriteTxn,
    rec: &mut SecretRecord,
    last: OffsetDateTime,
) -> Result<(), SecretsManagerError> {
    let schedule = stored_schedule(rec).filter(|_| rec.rotation_enabled == Some(true));
    match schedule {
        Some(s) => {
            let window = s.next_window(last);
            rec.next_rotation = Some(window.latest());
            let due = window.start + jitter(window);
            let job = new_job(rec, RotationKind::Scheduled, None);
            replace_job(txn, rec, Some((due, job)))
        }
        None => {
            rec.next_rotation = None;
            replace_job(txn, rec, None)
        }
    }
}

/// AWS starts a rotation at a random time in its window; tresor starts within the first
/// twelfth of it, so a window of an hour starts within five minutes.
fn jitter(w: schedule::Window) -> time::Duration {
    let span = ((w.end - w.start).whole_milliseconds() / 12).max(0);
    let span = u64::try_from(span).unwrap_or(0);
    if span == 0 {
        return time::Duration::ZERO;
    }
    let mut b = [0u8; 8];
    if let Ok(r) = tresor_crypto::random_bytes(8) {
        b.copy_from_slice(&r);
    }
    let ms = u64::from_le_bytes(b) % span;
    time::Duration::milliseconds(i64::try_from(ms).unwrap_or(0))
}

pub fn rotate_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: RotateSecretInput,
) -> Result<RotateSecretOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::client_request_token(&mut v, input.client_request_token.as_deref());
    v.length(
        "RotationLambdaARN",
        input.rotation_lambda_arn.as_deref(),
        0,
        2048,
    );
    v.length(
        "ExternalSecretRotationRoleArn",
        input.external_secret_rotation_role_arn.as_deref(),
        20,
        2048,
    );
    if let Some(r) = &input.rotation_rules {
        schedule::validate_rules(&mut v, r);
    }
    validate::finish(v)?;
    if input.external_secret_rotation_metadata.is_some()
        || input.external_secret_rotation_role_arn.is_some()
    {
        return Err(errors::invalid_request(
            "Managed external secret rotation isn't available on this server.",
        ));
    }
    if let Some(r) = &input.rotation_rules {
        schedule::parse(r)?;
    }
    let requested_lambda = input.rotation_lambda_arn.clone().filter(|a| !a.is_empty());
    let token = input
        .client_request_token
        .clone()
        .unwrap_or_else(tresor_crypto::ids::uuid_v4);
    let mut context = Vec::new();
    if let Some(l) = &requested_lambda {
        context.push(("secretsmanager:RotationLambdaARN".to_string(), l.clone()));
    }
    let load = |txn: &dyn tresor_store::ReadTxn| {
        load_live(
            services,
            txn,
            ctx,
            "secretsmanager:RotateSecret",
            &input.secret_id,
            context.clone(),
        )
    };

    // Checks that need no writer: configuration, the caller's right to invoke the function,
    // the function's policy (Lambda reads its own records; no transaction is held here).
    let rec = {
        let snapshot = services.store().begin_read().or_internal()?;
        load(&*snapshot)?
    };
    refuse_replica(&rec)?;
    let Some(lambda) = requested_lambda.or_else(|| rec.rotation_lambda_arn.clone()) else {
        // Quoted from AWS (observed behavior).
        return Err(errors::invalid_request(
            "No Lambda rotation function ARN is associated with this secret.",
        ));
    };
    // "You also need lambda:InvokeFunction permissions on the rotation function" (API
    // reference, RotateSecret, required permissions).
    services.authorize(ctx, &AuthzRequest::new("lambda:InvokeFunction", &lambda))?;
    check_function(services, &rec, &lambda)?;

    let (mut txn, mut rec) = begin_authorized_write(services, load)?;
    let now = ctx.now;
    if let Some(pending) = incomplete_pending(&rec) {
        if pending == token {
            // A retried request: the rotation it started is already on its way.
            return Ok(RotateSecretOutput {
                arn: rec.arn,
                name: rec.name,
                version_id: Some(token),
            });
        }
        // "That rotation will be reattempted": unless a job for it is already queued, queue
        // one now, then answer the error.
        if rec.rotation_job.is_none() || !rec.rotation_enabled.unwrap_or(false) {
            rec.rotation_lambda_arn = Some(lambda);
            rec.rotation_enabled = Some(true);
            let job = new_job(&rec, RotationKind::Rotate, Some(pending));
            replace_job(&mut *txn, &mut rec, Some((now, job)))?;
            save_changed(txn, &mut rec, now)?;
            services.job_wakeup().wake();
        }
        return Err(previous_rotation_incomplete());
    }
    if let Some(meta) = rec.versions.get(&token) {
        if meta.stages.iter().any(|s| s == AWSPENDING) {
            // A retried request whose rotation already completed.
            return Ok(RotateSecretOutput {
                arn: rec.arn,
                name: rec.name,
                version_id: Some(token),
            });
        }
        // Unconfirmed wording: as PutSecretValue's for a token in use.
        return Err(SecretsManagerError::ResourceExists(format!(
            "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {}.",
            rec.arn
        )));
    }
    rec.rotation_lambda_arn = Some(lambda);
    rec.rotation_enabled = Some(true);
    if let Some(rules) = input.rotation_rules {
        rec.rotation_rules = Some(rules);
    }
    let immediately = input.rotate_immediately.unwrap_or(true);
    add_placeholder(&mut rec, &token, now);
    // NextRotationDate of the schedule as it stands; a completed rotation recomputes it.
    let base = rec.last_rotated.unwrap_or(now);
    rec.next_rotation = stored_schedule(&rec).map(|s| s.next_window(base).latest());
    let kind = if immediately {
        RotationKind::Rotate
    } else {
        RotationKind::TestOnly
    };
    let job = new_job(&rec, kind, Some(token.clone()));
    replace_job(&mut *txn, &mut rec, Some((now, job)))?;
    save_changed(txn, &mut rec, now)?;
    tracing::info!(secret = %rec.arn, version_id = %token, immediately, "rotation requested");
    services.job_wakeup().wake();
    Ok(RotateSecretOutput {
        arn: rec.arn,
        name: rec.name,
        version_id: Some(token),
    })
}

/// Whether Secrets Manager may invoke `lambda` for `rec` (the function's resource policy).
fn check_function(
    services: &Services,
    rec: &SecretRecord,
    lambda: &str,
) -> Result<(), SecretsManagerError> {
    let call = ServiceInvoke {
        function_arn: lambda,
        service_principal: SERVICE_PRINCIPAL,
        source_account: &rec.account,
        source_arn: &rec.arn,
    };
    let functions = services.functions().map_err(|_| {
        errors::invalid_request("Lambda rotation functions aren't available on this server.")
    })?;
    match functions.check_service_invoke(services, &call) {
        Ok(()) => Ok(()),
        // A function that does not exist cannot be invoked either.
        Err(FunctionError::AccessDenied(_) | FunctionError::NotFound(_)) => Err(cannot_invoke()),
        Err(FunctionError::Failed { .. } | FunctionError::Unavailable(_)) => {
            tracing::warn!(secret = %rec.arn, function = lambda, "could not check the rotation function's policy");
            Err(SecretsManagerError::Internal)
        }
    }
}

// ---------------------------------------------------------------------------------------
// CancelRotateSecret

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CancelRotateSecretInput {
    pub secret_id: String,
}

pub fn cancel_rotate_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: CancelRotateSecretInput,
) -> Result<RotateSecretOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::finish(v)?;
    let (mut txn, mut rec) = begin_authorized_write(services, |txn| {
        load_live(
            services,
            txn,
            ctx,
            "secretsmanager:CancelRotateSecret",
            &input.secret_id,
            vec![],
        )
    })?;
    refuse_replica(&rec)?;
    if rec.rotation_lambda_arn.is_none() && rec.rotation_enabled.is_none() {
        // Unconfirmed wording; the refusal itself is what emulators measured.
        return Err(errors::invalid_request(
            "Secrets Manager can't cancel rotation because the secret isn't configured for rotation.",
        ));
    }
    rec.rotation_enabled = Some(false);
    rec.next_rotation = None;
    replace_job(&mut *txn, &mut rec, None)?;
    // The labels stay as they are (API reference, CancelRotateSecret).
    let pending = incomplete_pending(&rec);
    save_changed(txn, &mut rec, ctx.now)?;
    tracing::info!(secret = %rec.arn, "rotation cancelled");
    Ok(RotateSecretOutput {
        arn: rec.arn,
        name: rec.name,
        version_id: pending,
    })
}

/// A value stored by hand (PutSecretValue, UpdateSecret) that became `AWSCURRENT` "is
/// considered a valid rotation" when the next rotation date is computed (User Guide,
/// "Rotation by Lambda function"): a waiting scheduled rotation moves to the window after
/// `now`. A rotation in progress is left alone. The caller saves `rec`.
pub(crate) fn value_changed_by_hand(
    txn: &mut dyn WriteTxn,
    rec: &mut SecretRecord,
    now: OffsetDateTime,
) -> Result<(), SecretsManagerError> {
    if rec.rotation_enabled != Some(true) {
        return Ok(());
    }
    let Some(key) = rec.rotation_job.clone() else {
        return Ok(());
    };
    let job: Option<RotationJob> = record::get(&*txn, &key).or_internal()?;
    if job.is_some_and(|j| j.kind == RotationKind::Scheduled) {
        schedule_next(txn, rec, now)?;
    }
    Ok(())
}

/// DeleteSecret's part: a secret scheduled for deletion or purged has no rotation job.
pub(crate) fn drop_job(
    txn: &mut dyn WriteTxn,
    rec: &mut SecretRecord,
) -> Result<(), SecretsManagerError> {
    replace_job(txn, rec, None)
}
