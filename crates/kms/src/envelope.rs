//! The service-to-service API: Secrets Manager and Parameter Store ask KMS for data keys and
//! to decrypt them *as the original caller*, "via" their service. Every call
//! goes through the same key resolution, Authorizer and key-state rules as the HTTP
//! operations, with `kms:ViaService = <via>.<region>.amazonaws.com`, `kms:CallerAccount` and
//! the encryption-context condition keys — there is no back door.
//!
//! The calling service owns the transaction: these functions never begin or commit one.
//!
//! [`seal`] and [`open`] are the one value-sealing API of Secrets Manager and Parameter
//! Store: a value is sealed locally with AES-256-GCM under the plaintext of a fresh KMS data
//! key, bound to the service's AAD (account, region, resource, version), and stored next to
//! the KMS-encrypted data key. What a value that does not open means stays with each service.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::errors::KmsError;
use tresor_core::{RequestCtx, Services};
use tresor_crypto::{AeadKey, SecretBytes};
use tresor_store::{ReadTxn, WriteTxn};

use crate::errors::{self, internal};
use crate::keys::{self, MANAGED_SERVICES};
use crate::model::{self, AliasRecord, KeyRecord};

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

fn managed_service(via: &str) -> Result<&'static str, KmsError> {
    MANAGED_SERVICES
        .iter()
        .copied()
        .find(|s| *s == via)
        .ok_or_else(|| {
            tracing::error!(
                via,
                "envelope API called for a service without a managed key"
            );
            KmsError::Internal
        })
}

fn resolve_for(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    key_id: Option<&str>,
    via: &str,
) -> Result<keys::Resolved, KmsError> {
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
) -> Result<DataKey, KmsError> {
    let result = generate_data_key_unaudited(services, txn, ctx, key_id, via, encryption_context);
    note_hop(
        ctx,
        "GenerateDataKey",
        via,
        result.as_ref().map(|k| k.key_arn.as_str()),
        key_id,
        encryption_context,
    );
    result
}

fn generate_data_key_unaudited(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    key_id: Option<&str>,
    via: &str,
    encryption_context: &BTreeMap<String, String>,
) -> Result<DataKey, KmsError> {
    let resolved = resolve_for(services, txn, ctx, key_id, via)?;
    generate_under(
        services,
        ctx,
        &resolved.key,
        resolved.request_alias.as_deref(),
        via,
        encryption_context,
    )
}

/// A key found on a read snapshot, and the alias name it was named by.
type ExistingKey = (Arc<KeyRecord>, Option<String>);

/// Like [`resolve_for`] on a read snapshot, through the snapshot-tagged record cache (a
/// key record is decoded once per change, not per write): `Ok(None)` when the key is an
/// AWS-managed key that does not exist yet (only a write transaction can create it).
fn resolve_existing(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    key_id: Option<&str>,
    via: &str,
) -> Result<Option<ExistingKey>, KmsError> {
    let managed = match key_id {
        Some(input) => keys::predefined_alias_service(input, ctx),
        None => Some(managed_service(via)?),
    };
    let (account, region) = (&ctx.caller.account, &ctx.region);
    let load = |key_id: &str| -> Result<Arc<KeyRecord>, KmsError> {
        services
            .records()
            .get::<KeyRecord>(txn, &model::key_key(account, region, key_id))
            .map_err(internal)?
            .ok_or_else(|| errors::key_not_found(&model::key_arn(region, account, key_id)))
    };
    if let Some(service) = managed {
        let alias_name = format!("alias/aws/{service}");
        let Some(alias) = services
            .records()
            .get::<AliasRecord>(txn, &model::alias_key(account, region, &alias_name))
            .map_err(internal)?
        else {
            return Ok(None);
        };
        if key_id.is_none() {
            return Ok(Some((load(&alias.target_key_id)?, None)));
        }
    }
    let resolved = keys::resolve(services, txn, ctx, key_id.unwrap_or_default(), true)?;
    Ok(Some((Arc::new(resolved.key), resolved.request_alias)))
}

/// The part of [`generate_data_key`] after the key is found: authorization, key state, and
/// the fresh data key wrapped under the key.
fn generate_under(
    services: &Services,
    ctx: &RequestCtx,
    key: &KeyRecord,
    request_alias: Option<&str>,
    via: &str,
    encryption_context: &BTreeMap<String, String>,
) -> Result<DataKey, KmsError> {
    keys::authorize_key(
        services,
        ctx,
        "kms:GenerateDataKey",
        key,
        request_alias,
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
) -> Result<(SecretBytes, String), KmsError> {
    let result = keys::decrypt_blob(
        services,
        txn,
        ctx,
        "kms:Decrypt",
        ciphertext_blob,
        encryption_context,
        None,
        Some(via),
        Vec::new(),
    )
    .map(|opened| (SecretBytes::from(opened.plaintext), opened.key.arn.clone()));
    note_hop(
        ctx,
        "Decrypt",
        via,
        result.as_ref().map(|(_, arn)| arn.as_str()),
        None,
        encryption_context,
    );
    result
}

/// Notes a KMS call made on the caller's behalf for the request's audit record: CloudTrail
/// records it as a KMS event of its own, `invokedBy` the calling service (AWS KMS Developer
/// Guide, "Logging AWS KMS API calls with AWS CloudTrail"). Only ids, ARNs and the
/// encryption context (which names the secret or parameter, never a value) are noted.
fn note_hop(
    ctx: &RequestCtx,
    event_name: &str,
    via: &str,
    outcome: Result<&str, &KmsError>,
    key_id: Option<&str>,
    encryption_context: &BTreeMap<String, String>,
) {
    let request = HopRequest {
        encryption_algorithm: "SYMMETRIC_DEFAULT",
        encryption_context,
        key_id,
        key_spec: (event_name == "GenerateDataKey").then_some("AES_256"),
    };
    let (resources, error_code) = match outcome {
        Ok(arn) => (
            vec![tresor_core::audit::AuditResource {
                resource_type: "AWS::KMS::Key".into(),
                arn: arn.to_string(),
            }],
            None,
        ),
        Err(e) => (Vec::new(), Some(e.code().to_string())),
    };
    ctx.audit.hop(tresor_core::audit::Hop {
        event_source: "kms.amazonaws.com".into(),
        event_name: event_name.into(),
        invoked_by: [via, ".amazonaws.com"].concat(),
        read_only: true,
        resources,
        // Strings and a map of strings: serializing cannot fail.
        request_parameters: tresor_wire::json::to_string(&request).unwrap_or_else(|_| "{}".into()),
        additional_event_data: None,
        error_code,
    });
}

/// The `requestParameters` of a KMS call made on a caller's behalf, members in byte order of
/// their names (the order CloudTrail's JSON is written in throughout the log).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct HopRequest<'a> {
    encryption_algorithm: &'static str,
    encryption_context: &'a BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_spec: Option<&'static str>,
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
) -> Result<String, KmsError> {
    resolve_for(services, txn, ctx, key_id, via).map(|r| r.key.arn)
}

/// The services that seal values through KMS; `kms:ViaService` is
/// `<service>.<region>.amazonaws.com`, and a value sealed without a key id uses the
/// AWS-managed key `alias/aws/<service>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    SecretsManager,
    Ssm,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::SecretsManager => "secretsmanager",
            Via::Ssm => "ssm",
        }
    }
}

/// What a sealed value is bound to: the calling service, the KMS encryption context of its
/// data key, and the AAD of the value itself.
#[derive(Debug)]
pub struct Binding {
    pub via: Via,
    pub encryption_context: BTreeMap<String, String>,
    pub aad: Vec<u8>,
}

/// A sealed value: the KMS blob of its data key, the AES-256-GCM ciphertext, and the ARN of
/// the KMS key that wrapped the data key.
pub struct SealedValue {
    pub data_key: Vec<u8>,
    pub sealed: Vec<u8>,
    pub key_arn: String,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("key_arn", &self.key_arn)
            .finish_non_exhaustive()
    }
}

/// Seals `plaintext` *as the caller*: a fresh data key from [`generate_data_key`] under
/// `key_id` (`None` = the AWS-managed key of `binding.via`, created in `txn` on first use),
/// then AES-256-GCM under that key with `binding.aad`. The data key's plaintext is zeroized
/// when this returns.
pub fn seal(
    services: &Services,
    txn: &mut dyn WriteTxn,
    ctx: &RequestCtx,
    key_id: Option<&str>,
    binding: &Binding,
    plaintext: &[u8],
) -> Result<SealedValue, KmsError> {
    let data_key = generate_data_key(
        services,
        txn,
        ctx,
        key_id,
        binding.via.as_str(),
        &binding.encryption_context,
    )?;
    let aead = AeadKey::from_bytes(data_key.plaintext.expose()).map_err(internal)?;
    let sealed = aead.seal(plaintext, &binding.aad).map_err(internal)?;
    Ok(SealedValue {
        data_key: data_key.ciphertext_blob,
        sealed,
        key_arn: data_key.key_arn,
    })
}

/// The GenerateDataKey call behind a value sealed by [`seal_on_snapshot`], to be noted for
/// the request's audit record (as [`seal`] notes it) only when the value is actually stored:
/// a prepared value that is thrown away leaves no trace of a call.
#[derive(Debug)]
#[must_use = "a stored value's GenerateDataKey call must be noted"]
pub struct DeferredNote {
    key_arn: String,
    key_id: Option<String>,
    via: Via,
    encryption_context: BTreeMap<String, String>,
}

impl DeferredNote {
    /// Notes the call in `ctx`'s audit facts.
    pub fn note(self, ctx: &RequestCtx) {
        note_hop(
            ctx,
            "GenerateDataKey",
            self.via.as_str(),
            Ok(&self.key_arn),
            self.key_id.as_deref(),
            &self.encryption_context,
        );
    }
}

/// [`seal`] on a read snapshot, for a service that prepares a write before it takes the
/// store's one writer and stores the result only if what it prepared it from is unchanged
/// inside the write transaction. The key is resolved, authorized and checked as by [`seal`],
/// against the snapshot: as on AWS, where the calling service asks KMS for the data key
/// before it stores anything, the data key may be generated just before a concurrent change
/// to the key. `Ok(None)` when only a write transaction can seal (the AWS-managed key does
/// not exist yet). An error is not noted for the audit record: the caller seals again in its
/// write transaction, whose answer (and note) is the one that counts.
pub fn seal_on_snapshot(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    key_id: Option<&str>,
    binding: &Binding,
    plaintext: &[u8],
) -> Result<Option<(SealedValue, DeferredNote)>, KmsError> {
    let via = binding.via.as_str();
    let Some((key, request_alias)) = resolve_existing(services, txn, ctx, key_id, via)? else {
        return Ok(None);
    };
    let data_key = generate_under(
        services,
        ctx,
        &key,
        request_alias.as_deref(),
        via,
        &binding.encryption_context,
    )?;
    let aead = AeadKey::from_bytes(data_key.plaintext.expose()).map_err(internal)?;
    let sealed = aead.seal(plaintext, &binding.aad).map_err(internal)?;
    let note = DeferredNote {
        key_arn: data_key.key_arn.clone(),
        key_id: key_id.map(str::to_string),
        via: binding.via,
        encryption_context: binding.encryption_context.clone(),
    };
    Ok(Some((
        SealedValue {
            data_key: data_key.ciphertext_blob,
            sealed,
            key_arn: data_key.key_arn,
        },
        note,
    )))
}

/// Opens a value [`seal`]ed under `binding` *as the caller* (kms:Decrypt of its data key, via
/// `binding.via`). `Ok(None)` when KMS returned the data key but the value does not open
/// (tampered, or copied from another record): what that means is the calling service's to say.
pub fn open(
    services: &Services,
    txn: &dyn ReadTxn,
    ctx: &RequestCtx,
    binding: &Binding,
    data_key: &[u8],
    sealed: &[u8],
) -> Result<Option<SecretBytes>, KmsError> {
    let (key, _key_arn) = decrypt(
        services,
        txn,
        ctx,
        data_key,
        binding.via.as_str(),
        &binding.encryption_context,
    )?;
    let aead = AeadKey::from_bytes(key.expose()).map_err(internal)?;
    Ok(aead.open(sealed, &binding.aad).ok().map(SecretBytes::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text is what a `serde_json` map of the same members writes (the log's order), for
    /// every combination of the optional members and a context with characters to escape.
    #[test]
    fn hop_request_parameters_are_the_text_a_json_map_of_them_writes() {
        let contexts = [
            BTreeMap::new(),
            BTreeMap::from([
                (
                    "SecretARN".to_string(),
                    "arn:aws:secretsmanager:x".to_string(),
                ),
                ("a\"b\\c\n".to_string(), "ü\u{1}".to_string()),
            ]),
        ];
        for context in &contexts {
            for key_id in [None, Some("alias/aws/secretsmanager")] {
                for event_name in ["Decrypt", "GenerateDataKey"] {
                    let mut map = serde_json::Map::new();
                    if let Some(key_id) = key_id {
                        map.insert("keyId".into(), key_id.into());
                    }
                    if event_name == "GenerateDataKey" {
                        map.insert("keySpec".into(), "AES_256".into());
                    }
                    map.insert(
                        "encryptionContext".into(),
                        serde_json::to_value(context).unwrap(),
                    );
                    map.insert("encryptionAlgorithm".into(), "SYMMETRIC_DEFAULT".into());
                    let request = HopRequest {
                        encryption_algorithm: "SYMMETRIC_DEFAULT",
                        encryption_context: context,
                        key_id,
                        key_spec: (event_name == "GenerateDataKey").then_some("AES_256"),
                    };
                    assert_eq!(
                        serde_json::to_string(&request).unwrap(),
                        serde_json::Value::Object(map).to_string()
                    );
                }
            }
        }
    }
}
