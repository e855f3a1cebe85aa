//! The service-to-service API: Secrets Manager and Parameter Store ask KMS for data keys and
//! to decrypt them *as the original caller*, "via" their service (DESIGN.md §2). Every call
//! goes through the same key resolution, Authorizer and key-state rules as the HTTP
//! operations, with `kms:ViaService = <via>.<region>.amazonaws.com`, `kms:CallerAccount` and
//! the encryption-context condition keys — there is no back door.
//!
//! The calling service owns the transaction: these functions never begin or commit one.

use std::collections::BTreeMap;

use tresor_core::{RequestCtx, Services};
use tresor_crypto::SecretBytes;
use tresor_store::{ReadTxn, WriteTxn};
use tresor_wire::AwsError;

use crate::errors::internal;
use crate::keys::{self, MANAGED_SERVICES};

/// Length of the data keys this API hands out (AES-256).
pub const DATA_KEY_LEN: usize = 32;

/// A fresh data key: its plaintext (zeroized on drop, `[redacted]` in Debug), the KMS blob
/// that wraps it, and the ARN of the KMS key that wrapped it.
#[derive(Debug)]
pub struct DataKey {
    pub plaintext: SecretBytes,
    pub ciphertext_blob: Vec<u8>,
    pub key_arn: String,
}

fn managed_service(via: &str) -> Result<&'static str, AwsError> {
    MANAGED_SERVICES
        .iter()
        .copied()
        .find(|s| *s == via)
        .ok_or_else(|| {
            tracing::error!(
                via,
                "envelope API called for a service without a managed key"
            );
            AwsError::internal(tresor_wire::Protocol::AwsJson11)
        })
}

fn resolve_for(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    key_id: Option<&str>,
    via: &str,
) -> Result<keys::Resolved, AwsError> {
    match key_id {
        Some(input) => keys::resolve_creating(services, txn, ctx, input, true),
        None => {
            let service = managed_service(via)?;
            let key = keys::ensure_managed_key(
                services,
                txn,
                &ctx.caller.account,
                &ctx.region,
                service,
                ctx.now,
            )?;
            Ok(keys::Resolved {
                key,
                request_alias: None,
            })
        }
    }
}

/// Generates a data key *as the caller* via `via` ("secretsmanager" | "ssm"): authorizes
/// kms:GenerateDataKey on the key with kms:ViaService = "<via>.<region>.amazonaws.com",
/// kms:CallerAccount and the encryption-context keys. `key_id` None = the AWS-managed key
/// alias/aws/<via> (created in `txn` on first use). Errors are KMS errors (NotFoundException,
/// DisabledException, KMSInvalidStateException, AccessDeniedException …).
pub fn generate_data_key(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    key_id: Option<&str>,
    via: &str,
    encryption_context: &BTreeMap<String, String>,
) -> Result<DataKey, AwsError> {
    let resolved = resolve_for(services, txn, ctx, key_id, via)?;
    let key = &resolved.key;
    keys::authorize_key(
        services,
        ctx,
        "kms:GenerateDataKey",
        key,
        resolved.request_alias.as_deref(),
        Some(via),
        keys::context_conditions(encryption_context),
    )?;
    keys::require_usable(key)?;
    let plaintext = SecretBytes::from(tresor_crypto::random_bytes(DATA_KEY_LEN).map_err(internal)?);
    let (ciphertext_blob, _) =
        keys::encrypt_under(services, key, plaintext.expose(), encryption_context)?;
    Ok(DataKey {
        plaintext,
        ciphertext_blob,
        key_arn: key.arn.clone(),
    })
}

/// Decrypts a data key blob *as the caller* via `via` (kms:Decrypt with the same context
/// keys). Returns the plaintext and the ARN of the key that wrapped it.
pub fn decrypt(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    ciphertext_blob: &[u8],
    via: &str,
    encryption_context: &BTreeMap<String, String>,
) -> Result<(SecretBytes, String), AwsError> {
    let opened = keys::decrypt_blob(
        services,
        txn,
        ctx,
        "kms:Decrypt",
        ciphertext_blob,
        encryption_context,
        None,
        Some(via),
        Vec::new(),
    )?;
    Ok((SecretBytes::from(opened.plaintext), opened.key.arn))
}

/// Resolves a KeyId/alias/ARN to the key ARN (NotFoundException if none). `None` = the
/// managed key alias/aws/<via> (created in txn if missing). Does not authorize: the caller's
/// use of the key is checked by [`generate_data_key`] / [`decrypt`].
pub fn resolve_key_arn(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    key_id: Option<&str>,
    via: &str,
) -> Result<String, AwsError> {
    resolve_for(services, txn, ctx, key_id, via).map(|r| r.key.arn)
}
