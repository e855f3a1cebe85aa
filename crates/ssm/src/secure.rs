//! SecureString encryption (spec §3.2, DESIGN.md §4): each version gets a fresh data key
//! from KMS `GenerateDataKey` under the parameter's key — asked *as the caller*, via
//! `ssm.<region>.amazonaws.com`, with the encryption context AWS uses,
//! `{"PARAMETER_ARN": "<parameter ARN>"}` (Systems Manager User Guide, "How Parameter Store
//! uses AWS KMS") — and the value is sealed locally with AES-256-GCM. Reads call KMS
//! `Decrypt` as the caller. KMS decides access; this module only maps its errors to the
//! ones Parameter Store returns.
//!
//! Without `WithDecryption` AWS returns the ciphertext, base64-encoded, instead of the value
//! (spec §3.2). Advanced parameters on AWS use envelope encryption too, so their ciphertext
//! is an encryption-SDK message rather than a bare KMS blob; tresor always uses the envelope,
//! and [`ciphertext_text`] renders it as `base64(0x01 ‖ u32 len ‖ data-key blob ‖ sealed)`.
//! Unlike a standard-tier value on AWS it cannot be passed to KMS `Decrypt` directly.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tresor_core::{RequestCtx, Services, envelope};
use tresor_store::{ReadTxn, WriteTxn};
use tresor_wire::AwsError;
use zeroize::Zeroizing;

use crate::errors;
use crate::model::{StoredValue, value_aad};

/// The `via` name KMS turns into `kms:ViaService`.
const VIA: &str = "ssm";

/// The key named when a SecureString has no `KeyId` (shown as such in DescribeParameters).
pub const DEFAULT_KEY_ID: &str = "alias/aws/ssm";

fn encryption_context(arn: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("PARAMETER_ARN".to_string(), arn.to_string())])
}

/// KMS → Parameter Store: a refused caller stays `AccessDeniedException`, an unusable or
/// unknown key is `InvalidKeyId`, both with KMS's text and the `(Service: AWSKMS; …)` suffix
/// AWS appends [O] (spec §3.2).
fn map_kms_error(ctx: &RequestCtx, e: AwsError) -> AwsError {
    if e.is_server_fault() {
        return e;
    }
    let text = format!(
        "{} (Service: AWSKMS; Status Code: 400; Error Code: {}; Request ID: {}; Proxy: null)",
        e.message.as_deref().unwrap_or_default(),
        e.code,
        ctx.request_id
    );
    match &*e.code {
        "AccessDeniedException" => AwsError::client("AccessDeniedException", text),
        _ => AwsError::client("InvalidKeyId", text),
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
) -> Result<StoredValue, AwsError> {
    let data_key = tresor_kms::envelope::generate_data_key(
        services,
        txn,
        ctx,
        key_id,
        VIA,
        &encryption_context(arn),
    )
    .map_err(|e| map_kms_error(ctx, e))?;
    let sealed = envelope::seal(
        &data_key.plaintext,
        plaintext,
        &value_aad(&ctx.caller.account, &ctx.region, arn, version),
    )
    .map_err(errors::internal)?;
    Ok(StoredValue::Sealed {
        data_key: data_key.ciphertext_blob,
        sealed,
    })
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
) -> Result<Zeroizing<String>, AwsError> {
    let (data_key, sealed) = match value {
        StoredValue::Plain(s) => return Ok(Zeroizing::new(s.clone())),
        StoredValue::Sealed { data_key, sealed } => (data_key, sealed),
    };
    let (key, _key_arn) =
        tresor_kms::envelope::decrypt(services, txn, ctx, data_key, VIA, &encryption_context(arn))
            .map_err(|e| map_kms_error(ctx, e))?;
    let plain = envelope::open(
        &key,
        sealed,
        &value_aad(&ctx.caller.account, &ctx.region, arn, version),
    )
    .map_err(errors::internal)?
    .ok_or_else(|| {
        tracing::error!(parameter = %arn, version, "a sealed parameter value does not open");
        AwsError::internal(tresor_wire::Protocol::AwsJson11)
    })?;
    let text = String::from_utf8(plain.expose().to_vec()).map_err(|_| {
        tracing::error!(parameter = %arn, version, "a sealed parameter value is not UTF-8");
        AwsError::internal(tresor_wire::Protocol::AwsJson11)
    })?;
    Ok(Zeroizing::new(text))
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
