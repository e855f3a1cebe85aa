//! The per-version value sealing Secrets Manager and Parameter Store share:
//! a value is sealed locally with AES-256-GCM under the plaintext of a fresh KMS data key,
//! with AAD naming the account, region, resource and version, and stored next to the
//! KMS-encrypted data key. Getting and decrypting the data key (and mapping KMS's errors)
//! stays with each service; so do the AAD and what a value that does not open means.

use tresor_crypto::{AeadKey, SecretBytes};

use crate::error::ServiceError;

/// Seals `plaintext` under the data key `data_key`, bound to `aad`.
pub fn seal(data_key: &SecretBytes, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, ServiceError> {
    let aead = AeadKey::from_bytes(data_key.expose())?;
    Ok(aead.seal(plaintext, aad)?)
}

/// Opens a value [`seal`]ed under `data_key` and `aad`; `Ok(None)` when it does not open
/// (tampered, or copied from another record).
pub fn open(
    data_key: &SecretBytes,
    sealed: &[u8],
    aad: &[u8],
) -> Result<Option<SecretBytes>, ServiceError> {
    let aead = AeadKey::from_bytes(data_key.expose())?;
    Ok(aead.open(sealed, aad).ok().map(SecretBytes::from))
}

/// Serde for the byte fields of stored records (sealed values, data-key blobs): standard
/// base64 with padding, as a JSON string.
pub mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD
            .decode(s.as_bytes())
            .map_err(|_| serde::de::Error::custom("invalid base64"))
    }
}
