//! Cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
//! GenerateDataKeyWithoutPlaintext, GenerateRandom.
//!
//! Input structs holding plaintext do not implement `Debug`; plaintext buffers are moved into
//! zeroizing containers as soon as they are decoded.

use std::collections::BTreeMap;

use crate::errors::KmsError;
use serde::{Deserialize, Serialize};
use tresor_core::{Condition, RequestCtx, Services, cond};
use tresor_crypto::{SecretBytes, Zeroizing};
use tresor_wire::validate::Validator;

use super::{
    ENCRYPTION_ALGORITHMS, SYMMETRIC_DEFAULT, authorized_key_or_alias, check_enum, finish, read,
};
use crate::errors::{self, internal};
use crate::keys::{self as k, authorize_identity, context_conditions, require_usable};

const DATA_KEY_SPECS: [&str; 2] = ["AES_256", "AES_128"];

fn encryption_conditions<'a>(
    algorithm: &'a str,
    context: &'a BTreeMap<String, String>,
) -> Vec<Condition<'a>> {
    let mut out = vec![cond("kms:EncryptionAlgorithm", algorithm)];
    out.extend(context_conditions(context));
    out
}

/// Symmetric keys take only `SYMMETRIC_DEFAULT` (KMS API reference, Encrypt
/// `EncryptionAlgorithm`).
fn check_algorithm(algorithm: &str) -> Result<(), KmsError> {
    if algorithm != SYMMETRIC_DEFAULT {
        return Err(errors::invalid_key_usage(format!(
            "The encryption algorithm {algorithm} is not compatible with the symmetric KMS key."
        )));
    }
    Ok(())
}

fn reject_recipient(recipient: &Option<serde_json::Value>) -> Result<(), KmsError> {
    if recipient.is_some() {
        return Err(errors::unsupported(
            "tresor does not support Recipient (Nitro Enclaves attestation).",
        ));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptInput {
    pub key_id: String,
    #[serde(with = "tresor_wire::blob")]
    pub plaintext: SecretBytes,
    pub encryption_context: Option<BTreeMap<String, String>>,
    pub encryption_algorithm: Option<String>,
    pub dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct EncryptOutput {
    #[serde(with = "tresor_wire::json::blob")]
    pub ciphertext_blob: Vec<u8>,
    pub key_id: String,
    pub encryption_algorithm: &'static str,
}

pub fn encrypt(
    services: &Services,
    ctx: &RequestCtx,
    input: EncryptInput,
) -> Result<EncryptOutput, KmsError> {
    let mut v = Validator::new();
    v.length("KeyId", Some(&input.key_id), 1, 2048);
    if input.plaintext.is_empty() || input.plaintext.len() > 4096 {
        let bound = if input.plaintext.is_empty() {
            "greater than or equal to 1"
        } else {
            "less than or equal to 4096"
        };
        v.fail(
            "Plaintext",
            None,
            &format!("Member must have length {bound}"),
        );
    }
    check_enum(
        &mut v,
        "EncryptionAlgorithm",
        input.encryption_algorithm.as_deref(),
        &ENCRYPTION_ALGORITHMS,
    );
    finish(v)?;
    let context = input.encryption_context.unwrap_or_default();
    let algorithm = input
        .encryption_algorithm
        .as_deref()
        .unwrap_or(SYMMETRIC_DEFAULT);
    k::prepare_predefined(services, ctx, Some(&input.key_id))?;
    let txn = read(services)?;
    let key = &authorized_key_or_alias(
        services,
        &*txn,
        ctx,
        &input.key_id,
        "kms:Encrypt",
        encryption_conditions(algorithm, &context),
    )?;
    require_usable(key)?;
    check_algorithm(algorithm)?;
    if input.dry_run == Some(true) {
        return Err(errors::dry_run());
    }
    let (ciphertext_blob, _) = k::encrypt_under(services, key, input.plaintext.expose(), &context)?;
    Ok(EncryptOutput {
        ciphertext_blob,
        key_id: key.arn.clone(),
        encryption_algorithm: SYMMETRIC_DEFAULT,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptInput {
    #[serde(default, with = "opt_blob")]
    pub ciphertext_blob: Option<Vec<u8>>,
    pub encryption_context: Option<BTreeMap<String, String>>,
    pub key_id: Option<String>,
    pub encryption_algorithm: Option<String>,
    pub recipient: Option<serde_json::Value>,
    pub dry_run: Option<bool>,
}

mod opt_blob {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        #[derive(Deserialize)]
        struct Wrap(#[serde(with = "tresor_wire::json::blob")] Vec<u8>);
        Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DecryptOutput {
    pub key_id: String,
    #[serde(with = "tresor_wire::blob")]
    pub plaintext: SecretBytes,
    pub encryption_algorithm: &'static str,
    pub key_material_id: String,
}

fn check_ciphertext(v: &mut Validator, member: &str, blob: Option<&[u8]>) {
    match blob {
        None => {}
        Some([]) => v.fail(
            member,
            None,
            "Member must have length greater than or equal to 1",
        ),
        Some(b) if b.len() > 6144 => v.fail(
            member,
            None,
            "Member must have length less than or equal to 6144",
        ),
        Some(_) => {}
    }
}

pub fn decrypt(
    services: &Services,
    ctx: &RequestCtx,
    input: DecryptInput,
) -> Result<DecryptOutput, KmsError> {
    let mut v = Validator::new();
    if input.ciphertext_blob.is_none() {
        return Err(super::null_member("CiphertextBlob"));
    }
    check_ciphertext(&mut v, "CiphertextBlob", input.ciphertext_blob.as_deref());
    v.length("KeyId", input.key_id.as_deref(), 1, 2048);
    check_enum(
        &mut v,
        "EncryptionAlgorithm",
        input.encryption_algorithm.as_deref(),
        &ENCRYPTION_ALGORITHMS,
    );
    finish(v)?;
    reject_recipient(&input.recipient)?;
    let blob = input.ciphertext_blob.unwrap_or_default();
    let context = input.encryption_context.unwrap_or_default();
    let algorithm = input
        .encryption_algorithm
        .as_deref()
        .unwrap_or(SYMMETRIC_DEFAULT);
    check_algorithm(algorithm)?;
    k::prepare_predefined(services, ctx, input.key_id.as_deref())?;
    let txn = read(services)?;
    let extra = vec![cond("kms:EncryptionAlgorithm", algorithm)];
    let opened = k::decrypt_blob(
        services,
        &*txn,
        ctx,
        "kms:Decrypt",
        &blob,
        &context,
        input.key_id.as_deref(),
        None,
        extra,
    )?;
    if input.dry_run == Some(true) {
        return Err(errors::dry_run());
    }
    Ok(DecryptOutput {
        key_id: opened.key.arn.clone(),
        plaintext: SecretBytes::from(opened.plaintext),
        encryption_algorithm: SYMMETRIC_DEFAULT,
        key_material_id: opened.material_id,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptInput {
    #[serde(default, with = "opt_blob")]
    pub ciphertext_blob: Option<Vec<u8>>,
    pub source_encryption_context: Option<BTreeMap<String, String>>,
    pub source_key_id: Option<String>,
    pub destination_key_id: String,
    pub destination_encryption_context: Option<BTreeMap<String, String>>,
    pub source_encryption_algorithm: Option<String>,
    pub destination_encryption_algorithm: Option<String>,
    pub dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReEncryptOutput {
    #[serde(with = "tresor_wire::json::blob")]
    pub ciphertext_blob: Vec<u8>,
    pub source_key_id: String,
    pub key_id: String,
    pub source_encryption_algorithm: &'static str,
    pub destination_encryption_algorithm: &'static str,
    pub source_key_material_id: String,
    pub destination_key_material_id: String,
}

pub fn re_encrypt(
    services: &Services,
    ctx: &RequestCtx,
    input: ReEncryptInput,
) -> Result<ReEncryptOutput, KmsError> {
    if input.ciphertext_blob.is_none() {
        return Err(super::null_member("CiphertextBlob"));
    }
    let mut v = Validator::new();
    check_ciphertext(&mut v, "CiphertextBlob", input.ciphertext_blob.as_deref());
    v.length("SourceKeyId", input.source_key_id.as_deref(), 1, 2048);
    v.length("DestinationKeyId", Some(&input.destination_key_id), 1, 2048);
    check_enum(
        &mut v,
        "SourceEncryptionAlgorithm",
        input.source_encryption_algorithm.as_deref(),
        &ENCRYPTION_ALGORITHMS,
    );
    check_enum(
        &mut v,
        "DestinationEncryptionAlgorithm",
        input.destination_encryption_algorithm.as_deref(),
        &ENCRYPTION_ALGORITHMS,
    );
    finish(v)?;
    let source_algorithm = input
        .source_encryption_algorithm
        .as_deref()
        .unwrap_or(SYMMETRIC_DEFAULT);
    let destination_algorithm = input
        .destination_encryption_algorithm
        .as_deref()
        .unwrap_or(SYMMETRIC_DEFAULT);
    check_algorithm(source_algorithm)?;
    check_algorithm(destination_algorithm)?;
    let blob = input.ciphertext_blob.unwrap_or_default();
    let source_context = input.source_encryption_context.unwrap_or_default();
    let destination_context = input.destination_encryption_context.unwrap_or_default();
    k::prepare_predefined(services, ctx, input.source_key_id.as_deref())?;
    k::prepare_predefined(services, ctx, Some(&input.destination_key_id))?;
    let txn = read(services)?;
    // ReEncrypt needs kms:ReEncryptFrom on the source key and kms:ReEncryptTo on the
    // destination (KMS API reference, ReEncrypt).
    let extra = vec![cond("kms:EncryptionAlgorithm", source_algorithm)];
    let opened = k::decrypt_blob(
        services,
        &*txn,
        ctx,
        "kms:ReEncryptFrom",
        &blob,
        &source_context,
        input.source_key_id.as_deref(),
        None,
        extra,
    )?;
    let destination = authorized_key_or_alias(
        services,
        &*txn,
        ctx,
        &input.destination_key_id,
        "kms:ReEncryptTo",
        encryption_conditions(destination_algorithm, &destination_context),
    )?;
    require_usable(&destination)?;
    if input.dry_run == Some(true) {
        return Err(errors::dry_run());
    }
    let (ciphertext_blob, destination_material) = k::encrypt_under(
        services,
        &destination,
        &opened.plaintext,
        &destination_context,
    )?;
    Ok(ReEncryptOutput {
        ciphertext_blob,
        source_key_id: opened.key.arn.clone(),
        key_id: destination.arn,
        source_encryption_algorithm: SYMMETRIC_DEFAULT,
        destination_encryption_algorithm: SYMMETRIC_DEFAULT,
        source_key_material_id: opened.material_id,
        destination_key_material_id: destination_material,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyInput {
    pub key_id: String,
    pub encryption_context: Option<BTreeMap<String, String>>,
    pub number_of_bytes: Option<i64>,
    pub key_spec: Option<String>,
    pub recipient: Option<serde_json::Value>,
    pub dry_run: Option<bool>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyOutput {
    #[serde(with = "tresor_wire::json::blob")]
    pub ciphertext_blob: Vec<u8>,
    #[serde(with = "tresor_wire::blob")]
    pub plaintext: SecretBytes,
    pub key_id: String,
    pub key_material_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateDataKeyWithoutPlaintextOutput {
    #[serde(with = "tresor_wire::json::blob")]
    pub ciphertext_blob: Vec<u8>,
    pub key_id: String,
    pub key_material_id: String,
}

struct Generated {
    ciphertext_blob: Vec<u8>,
    plaintext: SecretBytes,
    key_arn: String,
    material_id: String,
}

fn generate(
    services: &Services,
    ctx: &RequestCtx,
    action: &str,
    input: GenerateDataKeyInput,
) -> Result<Generated, KmsError> {
    let mut v = Validator::new();
    v.length("KeyId", Some(&input.key_id), 1, 2048);
    v.range("NumberOfBytes", input.number_of_bytes, 1, 1024);
    check_enum(
        &mut v,
        "KeySpec",
        input.key_spec.as_deref(),
        &DATA_KEY_SPECS,
    );
    finish(v)?;
    reject_recipient(&input.recipient)?;
    // Exactly one of NumberOfBytes and KeySpec (KMS API reference, GenerateDataKey). The
    // text is the one AWS returns for a request with neither.
    let len = match (input.number_of_bytes, input.key_spec.as_deref()) {
        (Some(n), None) => usize::try_from(n).unwrap_or(0),
        (None, Some("AES_128")) => 16,
        (None, Some(_)) => 32,
        _ => {
            return Err(errors::validation(
                "Please specify either number of bytes or key spec.",
            ));
        }
    };
    let context = input.encryption_context.unwrap_or_default();
    k::prepare_predefined(services, ctx, Some(&input.key_id))?;
    let txn = read(services)?;
    let key = &authorized_key_or_alias(
        services,
        &*txn,
        ctx,
        &input.key_id,
        action,
        encryption_conditions(SYMMETRIC_DEFAULT, &context),
    )?;
    require_usable(key)?;
    if input.dry_run == Some(true) {
        return Err(errors::dry_run());
    }
    let plaintext = SecretBytes::from(tresor_crypto::random_bytes(len).map_err(internal)?);
    let (ciphertext_blob, material_id) =
        k::encrypt_under(services, key, plaintext.expose(), &context)?;
    Ok(Generated {
        ciphertext_blob,
        plaintext,
        key_arn: key.arn.clone(),
        material_id,
    })
}

pub fn generate_data_key(
    services: &Services,
    ctx: &RequestCtx,
    input: GenerateDataKeyInput,
) -> Result<GenerateDataKeyOutput, KmsError> {
    let g = generate(services, ctx, "kms:GenerateDataKey", input)?;
    Ok(GenerateDataKeyOutput {
        ciphertext_blob: g.ciphertext_blob,
        plaintext: g.plaintext,
        key_id: g.key_arn,
        key_material_id: g.material_id,
    })
}

pub fn generate_data_key_without_plaintext(
    services: &Services,
    ctx: &RequestCtx,
    input: GenerateDataKeyInput,
) -> Result<GenerateDataKeyWithoutPlaintextOutput, KmsError> {
    let g = generate(services, ctx, "kms:GenerateDataKeyWithoutPlaintext", input)?;
    Ok(GenerateDataKeyWithoutPlaintextOutput {
        ciphertext_blob: g.ciphertext_blob,
        key_id: g.key_arn,
        key_material_id: g.material_id,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomInput {
    pub number_of_bytes: Option<i64>,
    pub custom_key_store_id: Option<String>,
    pub recipient: Option<serde_json::Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GenerateRandomOutput {
    #[serde(with = "tresor_wire::blob")]
    pub plaintext: SecretBytes,
}

pub fn generate_random(
    services: &Services,
    ctx: &RequestCtx,
    input: GenerateRandomInput,
) -> Result<GenerateRandomOutput, KmsError> {
    if input.number_of_bytes.is_none() {
        return Err(super::null_member("NumberOfBytes"));
    }
    let mut v = Validator::new();
    v.range("NumberOfBytes", input.number_of_bytes, 1, 1024);
    v.length(
        "CustomKeyStoreId",
        input.custom_key_store_id.as_deref(),
        1,
        64,
    );
    finish(v)?;
    reject_recipient(&input.recipient)?;
    if input.custom_key_store_id.is_some() {
        return Err(errors::unsupported(
            "tresor does not support custom key stores.",
        ));
    }
    authorize_identity(services, ctx, "kms:GenerateRandom", "*", Vec::new())?;
    let n = usize::try_from(input.number_of_bytes.unwrap_or(0)).unwrap_or(0);
    let bytes: Zeroizing<Vec<u8>> = tresor_crypto::random_bytes(n).map_err(internal)?;
    Ok(GenerateRandomOutput {
        plaintext: SecretBytes::from(bytes),
    })
}
