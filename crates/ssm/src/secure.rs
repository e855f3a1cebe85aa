//! SecureString encryption: each version gets a fresh data key
//! from KMS `GenerateDataKey` under the parameter's key — asked *as the caller*, via
//! `ssm.<region>.amazonaws.com`, with the encryption context AWS uses,
//! `{"PARAMETER_ARN": "<parameter ARN>"}` (Systems Manager User Guide, "How Parameter Store
//! uses AWS KMS") — and the value is sealed locally with AES-256-GCM. Reads call KMS
//! `Decrypt` as the caller, both through the one sealing API of [`tresor_kms::envelope`].
//! KMS decides access; this module only maps its errors to the
//! ones Parameter Store returns.
//!
//! Without `WithDecryption` AWS returns the ciphertext, base64-encoded, instead of the value
//! (observed behavior). Advanced parameters on AWS use envelope encryption too, so their ciphertext
//! is an encryption-SDK message rather than a bare KMS blob; tresor always uses the envelope,
//! and [`ciphertext_text`] renders it as `base64(0x01 ‖ u32 len ‖ data-key blob ‖ sealed)`.
//! Unlike a standard-tier value on AWS it cannot be passed to KMS `Decrypt` directly.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tresor_core::{RequestCtx, Services};
use tresor_crypto::Zeroizing;
use tresor_kms::KmsError;
use tresor_kms::envelope::{Binding, DeferredNote, Via};
use tresor_store::{ReadTxn, WriteTxn};

use crate::errors::SsmError;
use crate::model::{StoredValue, value_aad};

/// The key named when a SecureString has no `KeyId` (shown as such in DescribeParameters).
pub const DEFAULT_KEY_ID: &str = "alias/aws/ssm";

fn binding(ctx: &RequestCtx, arn: &str, version: i64) -> Binding {
    Binding {
        via: Via::Ssm,
        encryption_context: BTreeMap::from([("PARAMETER_ARN".to_string(), arn.to_string())]),
        aad: value_aad(&ctx.caller.account, &ctx.region, arn, version),
    }
}

/// KMS → Parameter Store: a refused caller stays `AccessDeniedException`, an unusable or
/// unknown key is `InvalidKeyId`, both with KMS's text and the `(Service: AWSKMS; …)` suffix
/// AWS appends (quoted from AWS responses).
fn map_kms_error(ctx: &RequestCtx, e: KmsError) -> SsmError {
    if e.is_internal() {
        return SsmError::Internal;
    }
    let text = format!(
        "{} (Service: AWSKMS; Status Code: 400; Error Code: {}; Request ID: {}; Proxy: null)",
        e.message().unwrap_or_default(),
        e.code(),
        ctx.request_id
    );
    match e {
        KmsError::AccessDenied(_) => SsmError::AccessDenied(text),
        _ => SsmError::InvalidKeyId(text),
    }
}

/// Seals `plaintext` as version `version` of the parameter `arn` under `key_id` (`None` =
/// `alias/aws/ssm`, created on first use).
pub fn seal(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    arn: &str,
    version: i64,
    key_id: Option<&str>,
    plaintext: &[u8],
) -> Result<StoredValue, SsmError> {
    let sealed = tresor_kms::envelope::seal(
        services,
        txn,
        ctx,
        key_id,
        &binding(ctx, arn, version),
        plaintext,
    )
    .map_err(|e| map_kms_error(ctx, e))?;
    Ok(StoredValue::Sealed {
        data_key: sealed.data_key,
        sealed: sealed.sealed,
    })
}

/// [`seal`] on a read snapshot, for a write prepared before it takes the store's writer (see
/// [`tresor_kms::envelope::seal_on_snapshot`]). `None` when only a write transaction can seal
/// (the AWS-managed key does not exist yet) or when sealing failed: the write transaction
/// then seals again and its error, if any, is the answer.
pub fn seal_on_snapshot(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    arn: &str,
    version: i64,
    key_id: Option<&str>,
    plaintext: &[u8],
) -> Option<(StoredValue, DeferredNote)> {
    let (sealed, note) = tresor_kms::envelope::seal_on_snapshot(
        services,
        txn,
        ctx,
        key_id,
        &binding(ctx, arn, version),
        plaintext,
    )
    .ok()??;
    Some((
        StoredValue::Sealed {
            data_key: sealed.data_key,
            sealed: sealed.sealed,
        },
        note,
    ))
}

/// The value of a stored version of a parameter of the caller's account and region,
/// decrypted as the caller when it is sealed.
pub fn open(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    arn: &str,
    version: i64,
    value: &StoredValue,
) -> Result<Zeroizing<String>, SsmError> {
    let (data_key, sealed) = match value {
        StoredValue::Plain(s) => return Ok(Zeroizing::new(s.clone())),
        StoredValue::Sealed { data_key, sealed } => (data_key, sealed),
    };
    let plain = tresor_kms::envelope::open(
        services,
        txn,
        ctx,
        &binding(ctx, arn, version),
        data_key,
        sealed,
    )
    .map_err(|e| map_kms_error(ctx, e))?
    .ok_or_else(|| {
        tracing::error!(parameter = %arn, version, "a sealed parameter value does not open");
        SsmError::Internal
    })?;
    let text = tresor_crypto::SecretString::from_utf8(plain).map_err(|_| {
        tracing::error!(parameter = %arn, version, "a sealed parameter value is not UTF-8");
        SsmError::Internal
    })?;
    let mut out = Zeroizing::new(String::with_capacity(text.len()));
    out.push_str(text.expose());
    Ok(out)
}

/// What a SecureString read without `WithDecryption` shows: the ciphertext (module docs).
pub fn ciphertext_text(value: &StoredValue) -> String {
    match value {
        StoredValue::Plain(s) => s.clone(),
        StoredValue::Sealed { data_key, sealed } => {
            let len = u32::try_from(data_key.len()).unwrap_or(u32::MAX);
            let mut out = Vec::with_capacity(5 + data_key.len() + sealed.len());
            out.push(1u8);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(data_key);
            out.extend_from_slice(sealed);
            STANDARD.encode(out)
        }
    }
}
