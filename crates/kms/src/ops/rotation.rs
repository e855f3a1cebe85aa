//! Key rotation: EnableKeyRotation, DisableKeyRotation, GetKeyRotationStatus,
//! RotateKeyOnDemand, ListKeyRotations. Rotation adds a new generation of key material;
//! every older generation stays, so every older ciphertext still decrypts (the blob names its
//! material).

use crate::errors::KmsError;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tresor_core::{RequestCtx, Services};
use tresor_wire::json::epoch_seconds;
use tresor_wire::validate::Validator;

use super::keys::{KeyIdInput, KeyIdOutput};
use super::{
    Empty, authorized_key, finish, page_limit, read, save_and_commit, validate_key_page,
    write_authorized,
};
use super::{refuse_aws_managed, validate_key_id};
use crate::errors;
use crate::keys::{self as k, require_usable};
use crate::model::{self, JobKind, KeyRecord};

/// `RotationPeriodInDays` default (KMS API reference, EnableKeyRotation).
const DEFAULT_ROTATION_DAYS: i64 = 365;
/// On-demand rotations per key (KMS API reference, RotateKeyOnDemand: "up to 10 times").
const MAX_ON_DEMAND_ROTATIONS: usize = 10;

fn with_key(
    services: &Services,
    ctx: &RequestCtx,
    key_id: &str,
    action: &str,
    change: impl FnOnce(&mut dyn tresor_store::WriteTxn, &mut KeyRecord) -> Result<(), KmsError>,
) -> Result<KeyRecord, KmsError> {
    let mut v = Validator::new();
    validate_key_id(&mut v, "KeyId", Some(key_id));
    finish(v)?;
    let (mut txn, mut key) = write_authorized(services, |txn| {
        authorized_key(services, txn, ctx, key_id, action, Vec::new())
    })?;
    refuse_aws_managed(&key)?;
    // Rotation settings need an enabled key: Disabled → DisabledException, PendingDeletion →
    // KMSInvalidStateException (KMS Developer Guide, "Key states").
    require_usable(&key)?;
    change(&mut *txn, &mut key)?;
    save_and_commit(txn, &key)?;
    Ok(key)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EnableKeyRotationInput {
    pub key_id: String,
    pub rotation_period_in_days: Option<i64>,
}

pub fn enable_key_rotation(
    services: &Services,
    ctx: &RequestCtx,
    input: EnableKeyRotationInput,
) -> Result<Empty, KmsError> {
    let mut v = Validator::new();
    v.range(
        "RotationPeriodInDays",
        input.rotation_period_in_days,
        90,
        2560,
    );
    finish(v)?;
    let days = input
        .rotation_period_in_days
        .unwrap_or(DEFAULT_ROTATION_DAYS);
    with_key(
        services,
        ctx,
        &input.key_id,
        "kms:EnableKeyRotation",
        |txn, key| k::schedule_rotation(txn, key, days, ctx.now),
    )?;
    Ok(Empty {})
}

pub fn disable_key_rotation(
    services: &Services,
    ctx: &RequestCtx,
    input: KeyIdInput,
) -> Result<Empty, KmsError> {
    with_key(
        services,
        ctx,
        &input.key_id,
        "kms:DisableKeyRotation",
        |txn, key| {
            if let Some(next) = key.rotation.next_rotation.take() {
                model::delete_job(txn, next, key, JobKind::RotateKey)?;
            }
            key.rotation.enabled = false;
            Ok(())
        },
    )?;
    Ok(Empty {})
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetKeyRotationStatusOutput {
    pub key_rotation_enabled: bool,
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_period_in_days: Option<i64>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub next_rotation_date: Option<OffsetDateTime>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        with = "epoch_seconds::option"
    )]
    pub on_demand_rotation_start_date: Option<OffsetDateTime>,
}

pub fn get_key_rotation_status(
    services: &Services,
    ctx: &RequestCtx,
    input: KeyIdInput,
) -> Result<GetKeyRotationStatusOutput, KmsError> {
    let mut v = Validator::new();
    validate_key_id(&mut v, "KeyId", Some(&input.key_id));
    finish(v)?;
    let txn = read(services)?;
    let key = authorized_key(
        services,
        &*txn,
        ctx,
        &input.key_id,
        "kms:GetKeyRotationStatus",
        Vec::new(),
    )?;
    let enabled = key.rotation.enabled;
    Ok(GetKeyRotationStatusOutput {
        key_rotation_enabled: enabled,
        key_id: key.arn,
        rotation_period_in_days: key.rotation.period_days.filter(|_| enabled),
        next_rotation_date: key.rotation.next_rotation.filter(|_| enabled),
        on_demand_rotation_start_date: key.rotation.on_demand_started,
    })
}

pub fn rotate_key_on_demand(
    services: &Services,
    ctx: &RequestCtx,
    input: KeyIdInput,
) -> Result<KeyIdOutput, KmsError> {
    let key = with_key(
        services,
        ctx,
        &input.key_id,
        "kms:RotateKeyOnDemand",
        |_, key| {
            let done = key
                .materials
                .iter()
                .filter(|m| m.rotation_type.as_deref() == Some("ON_DEMAND"))
                .count();
            if done >= MAX_ON_DEMAND_ROTATIONS {
                return Err(errors::limit_exceeded(format!(
                    "{} has reached the maximum number of on-demand rotations ({MAX_ON_DEMAND_ROTATIONS}).",
                    key.arn
                )));
            }
            k::add_material(services, key, ctx.now, "ON_DEMAND")?;
            key.rotation.on_demand_started = Some(ctx.now);
            Ok(())
        },
    )?;
    tracing::info!(key = %key.arn, "rotated key material on demand");
    Ok(KeyIdOutput { key_id: key.arn })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyRotationsInput {
    pub key_id: String,
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RotationsListEntry {
    pub key_id: String,
    pub key_material_id: String,
    #[serde(with = "epoch_seconds")]
    pub rotation_date: OffsetDateTime,
    pub rotation_type: String,
    pub key_material_state: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeyRotationsOutput {
    pub rotations: Vec<RotationsListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

pub fn list_key_rotations(
    services: &Services,
    ctx: &RequestCtx,
    input: ListKeyRotationsInput,
) -> Result<ListKeyRotationsOutput, KmsError> {
    validate_key_page(&input.key_id, input.limit, input.marker.as_deref())?;
    let limit = page_limit(input.limit, 100, 1000);
    let txn = read(services)?;
    let key = authorized_key(
        services,
        &*txn,
        ctx,
        &input.key_id,
        "kms:ListKeyRotations",
        Vec::new(),
    )?;
    let current = key.materials.last().map(|m| m.id.clone());
    let rotated: Vec<_> = key
        .materials
        .iter()
        .filter(|m| m.rotation_type.is_some())
        .collect();
    let start = match &input.marker {
        None => 0,
        Some(m) => rotated
            .iter()
            .position(|r| &r.id == m)
            .map(|i| i + 1)
            .ok_or_else(errors::invalid_marker)?,
    };
    let rest = &rotated[start.min(rotated.len())..];
    let truncated = rest.len() > limit;
    let rotations: Vec<RotationsListEntry> = rest
        .iter()
        .take(limit)
        .map(|m| RotationsListEntry {
            key_id: key.arn.clone(),
            key_material_id: m.id.clone(),
            rotation_date: m.created,
            rotation_type: m.rotation_type.clone().unwrap_or_default(),
            key_material_state: if current.as_deref() == Some(m.id.as_str()) {
                "CURRENT"
            } else {
                "NON_CURRENT"
            },
        })
        .collect();
    let next_marker = truncated
        .then(|| rotations.last().map(|r| r.key_material_id.clone()))
        .flatten();
    Ok(ListKeyRotationsOutput {
        rotations,
        next_marker,
        truncated,
    })
}
