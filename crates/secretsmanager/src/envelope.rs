//! Envelope encryption of secret values: each version gets a fresh
//! 256-bit data key from KMS `GenerateDataKey` under the secret's key, the value is sealed
//! locally with AES-256-GCM (AAD: account, region, ARN, version id) and only the sealed value
//! and the KMS-encrypted data key are stored. Reads call KMS `Decrypt`.
//!
//! KMS is called through its service-to-service API as the *original caller*, with
//! `kms:ViaService = secretsmanager.<region>.amazonaws.com` and the encryption context AWS
//! uses: `{"SecretARN": <arn>, "SecretVersionId": <version id>}` (AWS Secrets Manager User
//! Guide, "Secret encryption and decryption"), through the one sealing API of
//! [`tresor_kms::envelope`]. KMS decides access; this module only maps KMS's errors to the
//! ones Secrets Manager returns.

use std::collections::BTreeMap;

use tresor_core::{RequestCtx, Services};
use tresor_crypto::SecretBytes;
use tresor_kms::KmsError;
use tresor_kms::envelope::{Binding, Via};
use tresor_store::{ReadTxn, WriteTxn};

use crate::errors::{self, SecretsManagerError};
use crate::model::{RECORD_VERSION, SecretRecord, ValueKind, ValueRecord, value_aad};

fn binding(secret: &SecretRecord, version_id: &str) -> Binding {
    Binding {
        via: Via::SecretsManager,
        encryption_context: BTreeMap::from([
            ("SecretARN".to_string(), secret.arn.clone()),
            ("SecretVersionId".to_string(), version_id.to_string()),
        ]),
        aad: value_aad(&secret.account, &secret.region, &secret.arn, version_id),
    }
}

/// Seals `plaintext` as version `version_id` of `secret`, under the secret's KMS key (or
/// `key_override`). Returns the value record and the ARN of the KMS key used.
pub fn seal(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    secret: &SecretRecord,
    key_override: Option<Option<&str>>,
    version_id: &str,
    (kind, plaintext): (ValueKind, &[u8]),
) -> Result<(ValueRecord, String), SecretsManagerError> {
    let key_id = key_override.unwrap_or(secret.kms_key_id.as_deref());
    // The AWS managed key works only for callers of the secret's own account (API
    // reference, CreateSecret KmsKeyId).
    if key_id.is_none() && ctx.caller.account != secret.account {
        return Err(errors::kms_access_denied());
    }
    let sealed = tresor_kms::envelope::seal(
        services,
        txn,
        ctx,
        key_id,
        &binding(secret, version_id),
        plaintext,
    )
    .map_err(map_encrypt_error)?;
    Ok((
        ValueRecord {
            v: RECORD_VERSION,
            kind,
            data_key: sealed.data_key,
            sealed: sealed.sealed,
        },
        sealed.key_arn,
    ))
}

/// Opens the value of version `version_id` of `secret` (as the caller).
pub fn open(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    secret: &SecretRecord,
    version_id: &str,
    value: &ValueRecord,
) -> Result<SecretBytes, SecretsManagerError> {
    tresor_kms::envelope::open(
        services,
        txn,
        ctx,
        &binding(secret, version_id),
        &value.data_key,
        &value.sealed,
    )
    .map_err(map_decrypt_error)?
    .ok_or_else(|| {
        tracing::error!(secret = %secret.arn, version_id, "a sealed secret value does not open");
        errors::decryption_failure()
    })
}

/// Checks that `key_id` names a usable key for the caller and returns its ARN (the
/// validation calls Secrets Manager makes when a key is set without a value).
pub fn resolve_key(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    key_id: Option<&str>,
) -> Result<String, SecretsManagerError> {
    tresor_kms::envelope::resolve_key_arn(services, txn, ctx, key_id, Via::SecretsManager.as_str())
        .map_err(map_encrypt_error)
}

/// KMS → Secrets Manager, on the write path: a refused caller is `AccessDeniedException:
/// Access to KMS is not allowed` (quoted from AWS); an unusable key (disabled, pending
/// deletion, missing, wrong usage) is `EncryptionFailure` (its model documentation).
fn map_encrypt_error(e: KmsError) -> SecretsManagerError {
    match e {
        KmsError::AccessDenied(_) => errors::kms_access_denied(),
        KmsError::Internal => SecretsManagerError::Internal,
        other => {
            tracing::info!(
                kms_error = other.code(),
                "KMS refused to generate a data key"
            );
            errors::encryption_failure()
        }
    }
}

/// KMS → Secrets Manager, on the read path: `AccessDeniedException` or `DecryptionFailure`
/// (disabled key, pending deletion, tampered blob).
fn map_decrypt_error(e: KmsError) -> SecretsManagerError {
    match e {
        KmsError::AccessDenied(_) => errors::kms_access_denied(),
        KmsError::Internal => SecretsManagerError::Internal,
        other => {
            tracing::info!(
                kms_error = other.code(),
                "KMS refused to decrypt a data key"
            );
            errors::decryption_failure()
        }
    }
}

/// Constant-time comparison of a stored value with a new one (ClientRequestToken replay).
pub fn same_value(
    stored: &SecretBytes,
    stored_kind: ValueKind,
    new: &[u8],
    new_kind: ValueKind,
) -> bool {
    stored_kind == new_kind && tresor_crypto::constant_time_eq(stored.expose(), new)
}
