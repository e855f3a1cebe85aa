//! Deletion lifecycle: DeleteSecret and RestoreSecret, and the purge the durable job runs.
//!
//! A scheduled deletion writes its purge job in the same transaction (the outbox).

use crate::errors::SecretsManagerError;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tresor_core::{RequestCtx, Services, record};
use tresor_wire::json::epoch_seconds;
use tresor_wire::validate::Validator;

use crate::access::{
    self, begin_authorized_write, load_authorized, purge, refuse_replica, save, save_changed,
};
use crate::errors::{self, OrInternal};
use crate::model::{PurgeJob, RECORD_VERSION, keys};
use crate::secrets::SecretIdInput;
use crate::shapes::ArnNameOutput;
use crate::validate;

/// Recovery window bounds and default (DeleteSecret API reference).
const MIN_RECOVERY_DAYS: i64 = 7;
const MAX_RECOVERY_DAYS: i64 = 30;
const DEFAULT_RECOVERY_DAYS: i64 = 30;

// ---------------------------------------------------------------------------------------
// DeleteSecret / RestoreSecret

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSecretInput {
    pub secret_id: String,
    pub recovery_window_in_days: Option<i64>,
    pub force_delete_without_recovery: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteSecretOutput {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(with = "epoch_seconds")]
    pub deletion_date: OffsetDateTime,
}

pub fn delete_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: DeleteSecretInput,
) -> Result<DeleteSecretOutput, SecretsManagerError> {
    let mut v = Validator::new();
    validate::secret_id(&mut v, &input.secret_id);
    validate::finish(v)?;
    let force = input.force_delete_without_recovery.unwrap_or(false);
    if force && input.recovery_window_in_days.is_some() {
        // The API reference documents that both together are an error (AWS Secrets Manager API
        // Reference, DeleteSecret); the wording is moto's (unconfirmed).
        return Err(errors::invalid_parameter(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        ));
    }
    let days = input
        .recovery_window_in_days
        .unwrap_or(DEFAULT_RECOVERY_DAYS);
    if !force && !(MIN_RECOVERY_DAYS..=MAX_RECOVERY_DAYS).contains(&days) {
        // The range is documented (DeleteSecret); the wording is moto's (unconfirmed).
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
    let (mut txn, rec) = match begin_authorized_write(services, |txn| {
        load_authorized(
            services,
            txn,
            ctx,
            "secretsmanager:DeleteSecret",
            &input.secret_id,
            context.clone(),
        )
    }) {
        Ok(found) => found,
        // A forced delete of a secret that does not exist is not ResourceNotFoundException
        // (DeleteSecret API reference, ForceDeleteWithoutRecovery).
        Err(SecretsManagerError::ResourceNotFound(_)) if force => {
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
    refuse_replica(&rec)?;
    if !rec.replication_status.is_empty() {
        // A primary with replicas cannot be deleted (botocore model, DeleteSecret); code and
        // text are observed AWS behavior.
        let regions: Vec<&str> = rec
            .replication_status
            .iter()
            .map(|r| r.region.as_str())
            .collect();
        return Err(errors::invalid_parameter(format!(
            "You can't delete secret {} that still has replica regions [{}].",
            rec.arn,
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
    // No rotation runs on a secret scheduled for deletion.
    crate::rotation::drop_job(&mut *txn, &mut rec)?;
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

pub fn restore_secret(
    services: &Services,
    ctx: &RequestCtx,
    input: SecretIdInput,
) -> Result<ArnNameOutput, SecretsManagerError> {
    let (mut txn, mut rec) = crate::access::begin_write_on(
        services,
        ctx,
        "secretsmanager:RestoreSecret",
        &input.secret_id,
    )?;
    refuse_replica(&rec)?;
    if let Some(due) = rec.deletion_due.take() {
        access::delete_purge_job(&mut *txn, &rec, due)?;
        rec.deleted = None;
        // A restored secret with rotation on gets its next scheduled rotation back.
        let base = rec.last_rotated.unwrap_or(ctx.now).max(ctx.now);
        crate::rotation::schedule_next(&mut *txn, &mut rec, base)?;
        save_changed(txn, &mut rec, ctx.now)?;
    }
    Ok(ArnNameOutput {
        arn: rec.arn,
        name: rec.name,
    })
}
