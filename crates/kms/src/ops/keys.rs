//! Key lifecycle: CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey,
//! ScheduleKeyDeletion, CancelKeyDeletion, UpdateKeyDescription.

use crate::errors::KmsError;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tresor_core::{RequestCtx, Services};
use tresor_wire::json::epoch_seconds;
use tresor_wire::validate::Validator;

use super::{
    Empty, KeyMetadata, authorized_key, authorized_key_or_alias, check_enum, check_policy_text,
    finish, key_metadata, page_limit, read, save_and_commit, write_authorized,
};
use super::{refuse_aws_managed, validate_key_id};
use crate::errors::{self, internal};
use crate::keys::{self as k, authorize_identity, require_not_pending};
use crate::model::{self, JobKind, JobRecord, KeyManager, KeyState, RECORD_VERSION};
use crate::ops::policy::check_new_policy;
use crate::ops::tags::{TagInput, apply_tags, validate_tags};

const KEY_USAGES: [&str; 5] = [
    "SIGN_VERIFY",
    "ENCRYPT_DECRYPT",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
    "ENCAPSULATE_DECAPSULATE",
];
const CMK_SPECS: [&str; 13] = [
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
];
const KEY_SPECS: [&str; 20] = [
    "RSA_2048",
    "RSA_3072",
    "RSA_4096",
    "ECC_NIST_P256",
    "ECC_NIST_P384",
    "ECC_NIST_P521",
    "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT",
    "HMAC_224",
    "HMAC_256",
    "HMAC_384",
    "HMAC_512",
    "SM2",
    "ML_DSA_44",
    "ML_DSA_65",
    "ML_DSA_87",
    "ECC_NIST_EDWARDS25519",
    "ML_KEM_512",
    "ML_KEM_768",
    "ML_KEM_1024",
];
const ORIGINS: [&str; 4] = ["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"];

/// `PendingWindowInDays`: 7–30, default 30 (KMS API reference, ScheduleKeyDeletion; the
/// model's 1–365 is wider than what the service accepts).
const MIN_PENDING_DAYS: i64 = 7;
const MAX_PENDING_DAYS: i64 = 30;
const DEFAULT_PENDING_DAYS: i64 = 30;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateKeyInput {
    pub policy: Option<String>,
    pub description: Option<String>,
    pub key_usage: Option<String>,
    pub customer_master_key_spec: Option<String>,
    pub key_spec: Option<String>,
    pub origin: Option<String>,
    pub custom_key_store_id: Option<String>,
    pub bypass_policy_lockout_safety_check: Option<bool>,
    pub tags: Option<Vec<TagInput>>,
    pub multi_region: Option<bool>,
    pub xks_key_id: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyMetadataOutput {
    pub key_metadata: KeyMetadata,
}

pub fn create_key(
    services: &Services,
    ctx: &RequestCtx,
    input: CreateKeyInput,
) -> Result<KeyMetadataOutput, KmsError> {
    let mut v = Validator::new();
    check_policy_text(&mut v, "Policy", input.policy.as_deref());
    v.length("Description", input.description.as_deref(), 0, 8192);
    check_enum(&mut v, "KeyUsage", input.key_usage.as_deref(), &KEY_USAGES);
    check_enum(
        &mut v,
        "CustomerMasterKeySpec",
        input.customer_master_key_spec.as_deref(),
        &CMK_SPECS,
    );
    check_enum(&mut v, "KeySpec", input.key_spec.as_deref(), &KEY_SPECS);
    check_enum(&mut v, "Origin", input.origin.as_deref(), &ORIGINS);
    v.length(
        "CustomKeyStoreId",
        input.custom_key_store_id.as_deref(),
        1,
        64,
    );
    v.length("XksKeyId", input.xks_key_id.as_deref(), 1, 128);
    let tags = input.tags.unwrap_or_default();
    validate_tags(&mut v, &tags)?;
    finish(v)?;
    if input.key_spec.is_some() && input.customer_master_key_spec.is_some() {
        return Err(errors::validation(
            "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. CustomerMasterKeySpec parameter is deprecated. Use KeySpec only.",
        ));
    }
    // tresor implements symmetric encryption keys only (deviation, reported).
    let spec = input
        .key_spec
        .as_deref()
        .or(input.customer_master_key_spec.as_deref())
        .unwrap_or(super::SYMMETRIC_DEFAULT);
    let usage = input.key_usage.as_deref().unwrap_or(super::ENCRYPT_DECRYPT);
    if spec != super::SYMMETRIC_DEFAULT || usage != super::ENCRYPT_DECRYPT {
        return Err(errors::unsupported(format!(
            "tresor supports only SYMMETRIC_DEFAULT ENCRYPT_DECRYPT keys, not {spec} {usage}."
        )));
    }
    if input.origin.as_deref().is_some_and(|o| o != "AWS_KMS")
        || input.custom_key_store_id.is_some()
        || input.xks_key_id.is_some()
    {
        return Err(errors::unsupported(
            "tresor supports only keys with Origin AWS_KMS.",
        ));
    }
    if input.multi_region == Some(true) {
        return Err(errors::unsupported(
            "tresor does not support multi-Region keys.",
        ));
    }
    let bypass = input.bypass_policy_lockout_safety_check.unwrap_or(false);

    let mut conditions = vec![
        ("kms:KeySpec".to_string(), spec.to_string()),
        ("kms:KeyUsage".to_string(), usage.to_string()),
        ("kms:KeyOrigin".to_string(), "AWS_KMS".to_string()),
        ("kms:MultiRegion".to_string(), "false".to_string()),
    ];
    if input.bypass_policy_lockout_safety_check.is_some() {
        conditions.push((
            "kms:BypassPolicyLockoutSafetyCheck".to_string(),
            bypass.to_string(),
        ));
    }
    let account = ctx.caller.account.as_str();
    let policy = input
        .policy
        .clone()
        .unwrap_or_else(|| k::default_key_policy(account));
    // Made before the write transaction (it needs none), so both authorization runs name
    // the same key ARN.
    let mut key = k::new_key(
        services,
        account,
        &ctx.region,
        ctx.now,
        input.description.unwrap_or_default(),
        KeyManager::Customer,
        policy,
    )?;
    let (txn, ()) = write_authorized(services, |_| {
        authorize_identity(
            services,
            ctx,
            "kms:CreateKey",
            "*",
            tresor_core::owned_conditions(conditions.clone()),
        )?;
        if !tags.is_empty() {
            // CreateKey with Tags also needs kms:TagResource in an IAM policy (KMS API
            // reference).
            authorize_identity(services, ctx, "kms:TagResource", &key.arn, Vec::new())?;
        }
        Ok(())
    })?;
    if !tags.is_empty() {
        apply_tags(&mut key, &tags)?;
    }
    if input.policy.is_some() {
        check_new_policy(services, &*txn, ctx, &key, bypass)?;
    }
    save_and_commit(txn, &key)?;
    tracing::info!(key = %key.arn, "created KMS key");
    Ok(KeyMetadataOutput {
        key_metadata: key_metadata(&key),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyIdInput {
    pub key_id: String,
}

pub fn describe_key(
    services: &Services,
    ctx: &RequestCtx,
    input: KeyIdInput,
) -> Result<KeyMetadataOutput, KmsError> {
    let mut v = Validator::new();
    validate_key_id(&mut v, "KeyId", Some(&input.key_id));
    finish(v)?;
    k::prepare_predefined(services, ctx, Some(&input.key_id))?;
    let txn = read(services)?;
    let key = authorized_key_or_alias(
        services,
        &*txn,
        ctx,
        &input.key_id,
        "kms:DescribeKey",
        Vec::new(),
    )?;
    Ok(KeyMetadataOutput {
        key_metadata: key_metadata(&key),
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysInput {
    pub limit: Option<i64>,
    pub marker: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyListEntry {
    pub key_id: String,
    pub key_arn: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListKeysOutput {
    pub keys: Vec<KeyListEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_marker: Option<String>,
    pub truncated: bool,
}

pub fn list_keys(
    services: &Services,
    ctx: &RequestCtx,
    input: ListKeysInput,
) -> Result<ListKeysOutput, KmsError> {
    let mut v = Validator::new();
    v.range("Limit", input.limit, 1, 1000);
    v.length("Marker", input.marker.as_deref(), 1, 1024);
    finish(v)?;
    if input
        .marker
        .as_deref()
        .is_some_and(|m| !crate::blob::is_key_id(m))
    {
        return Err(errors::invalid_marker());
    }
    let limit = page_limit(input.limit, 100, 1000);
    let txn = read(services)?;
    authorize_identity(services, ctx, "kms:ListKeys", "*", Vec::new())?;
    let prefix = model::key_prefix(&ctx.caller.account, &ctx.region);
    let start = input.marker.as_deref().map(|m| format!("{prefix}{m}"));
    let rows = txn
        .scan(&prefix, start.as_deref(), limit + 1)
        .map_err(internal)?;
    let truncated = rows.len() > limit;
    let keys: Vec<KeyListEntry> = rows
        .iter()
        .take(limit)
        .filter_map(|(key, _)| key.strip_prefix(&prefix))
        .map(|id| KeyListEntry {
            key_id: id.to_string(),
            key_arn: model::key_arn(&ctx.region, &ctx.caller.account, id),
        })
        .collect();
    let next_marker = truncated
        .then(|| keys.last().map(|e| e.key_id.clone()))
        .flatten();
    Ok(ListKeysOutput {
        keys,
        next_marker,
        truncated,
    })
}

/// Shared by the operations that take a key id or key ARN only and write the key record.
fn update_key(
    services: &Services,
    ctx: &RequestCtx,
    key_id: &str,
    action: &str,
    extra: Vec<(String, String)>,
    change: impl FnOnce(&mut dyn tresor_store::WriteTxn, &mut model::KeyRecord) -> Result<(), KmsError>,
) -> Result<model::KeyRecord, KmsError> {
    let mut v = Validator::new();
    validate_key_id(&mut v, "KeyId", Some(key_id));
    finish(v)?;
    let (mut txn, mut key) = write_authorized(services, |txn| {
        authorized_key(
            services,
            txn,
            ctx,
            key_id,
            action,
            tresor_core::owned_conditions(extra.clone()),
        )
    })?;
    change(&mut *txn, &mut key)?;
    save_and_commit(txn, &key)?;
    // A state change (disable, deletion scheduled, ...) zeroizes the data keys unwrapped under
    // the key at once (reads check the state before the cache anyway).
    services.data_keys().forget(&key.arn);
    Ok(key)
}

pub fn enable_key(
    services: &Services,
    ctx: &RequestCtx,
    input: KeyIdInput,
) -> Result<Empty, KmsError> {
    update_key(
        services,
        ctx,
        &input.key_id,
        "kms:EnableKey",
        Vec::new(),
        |_, key| {
            refuse_aws_managed(key)?;
            require_not_pending(key)?;
            key.state = KeyState::Enabled;
            Ok(())
        },
    )?;
    Ok(Empty {})
}

pub fn disable_key(
    services: &Services,
    ctx: &RequestCtx,
    input: KeyIdInput,
) -> Result<Empty, KmsError> {
    update_key(
        services,
        ctx,
        &input.key_id,
        "kms:DisableKey",
        Vec::new(),
        |_, key| {
            refuse_aws_managed(key)?;
            require_not_pending(key)?;
            key.state = KeyState::Disabled;
            Ok(())
        },
    )?;
    Ok(Empty {})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleKeyDeletionInput {
    pub key_id: String,
    pub pending_window_in_days: Option<i64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScheduleKeyDeletionOutput {
    pub key_id: String,
    #[serde(with = "epoch_seconds")]
    pub deletion_date: OffsetDateTime,
    pub key_state: &'static str,
    pub pending_window_in_days: i64,
}

pub fn schedule_key_deletion(
    services: &Services,
    ctx: &RequestCtx,
    input: ScheduleKeyDeletionInput,
) -> Result<ScheduleKeyDeletionOutput, KmsError> {
    let mut v = Validator::new();
    v.range(
        "PendingWindowInDays",
        input.pending_window_in_days,
        MIN_PENDING_DAYS,
        MAX_PENDING_DAYS,
    );
    finish(v)?;
    let days = input.pending_window_in_days.unwrap_or(DEFAULT_PENDING_DAYS);
    let extra = vec![(
        "kms:ScheduleKeyDeletionPendingWindowInDays".to_string(),
        days.to_string(),
    )];
    let key = update_key(
        services,
        ctx,
        &input.key_id,
        "kms:ScheduleKeyDeletion",
        extra,
        |txn, key| {
            refuse_aws_managed(key)?;
            require_not_pending(key)?;
            let due = ctx.now + Duration::days(days);
            key.state = KeyState::PendingDeletion;
            key.deletion_date = Some(due);
            key.pending_window_days = Some(days);
            // The outbox: the deletion job is written in the same transaction as the new state.
            model::put_job(
                txn,
                &JobRecord {
                    v: RECORD_VERSION,
                    kind: JobKind::DeleteKey,
                    account: key.account.clone(),
                    region: key.region.clone(),
                    key_id: key.key_id.clone(),
                    due,
                },
            )
        },
    )?;
    Ok(ScheduleKeyDeletionOutput {
        key_id: key.arn.clone(),
        deletion_date: key.deletion_date.unwrap_or(ctx.now),
        key_state: key.state.as_str(),
        pending_window_in_days: days,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyIdOutput {
    pub key_id: String,
}

pub fn cancel_key_deletion(
    services: &Services,
    ctx: &RequestCtx,
    input: KeyIdInput,
) -> Result<KeyIdOutput, KmsError> {
    let key = update_key(
        services,
        ctx,
        &input.key_id,
        "kms:CancelKeyDeletion",
        Vec::new(),
        |txn, key| {
            if key.state != KeyState::PendingDeletion {
                return Err(errors::invalid_state(format!(
                    "{} is not pending deletion (or pending replica deletion).",
                    key.arn
                )));
            }
            if let Some(due) = key.deletion_date.take() {
                model::delete_job(txn, due, key, JobKind::DeleteKey)?;
            }
            // The key comes back Disabled, not Enabled (KMS API reference, CancelKeyDeletion).
            key.state = KeyState::Disabled;
            key.pending_window_days = None;
            Ok(())
        },
    )?;
    Ok(KeyIdOutput { key_id: key.arn })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UpdateKeyDescriptionInput {
    pub key_id: String,
    pub description: String,
}

pub fn update_key_description(
    services: &Services,
    ctx: &RequestCtx,
    input: UpdateKeyDescriptionInput,
) -> Result<Empty, KmsError> {
    let mut v = Validator::new();
    v.length("Description", Some(&input.description), 0, 8192);
    finish(v)?;
    update_key(
        services,
        ctx,
        &input.key_id,
        "kms:UpdateKeyDescription",
        Vec::new(),
        |_, key| {
            refuse_aws_managed(key)?;
            require_not_pending(key)?;
            key.description = input.description;
            Ok(())
        },
    )?;
    Ok(Empty {})
}
