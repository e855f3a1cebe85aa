//! The KMS ciphertext blob and the sealing of key material under the root key. This module
//! owns the byte formats; it knows nothing of authorization or key states.
//!
//! # Ciphertext blob, version 1
//!
//! ```text
//! offset  length  field
//! 0       1       blob version = 0x01
//! 1       12      account id of the key, 12 ASCII digits
//! 13      16      key id (the UUID's 16 bytes)
//! 29      32      key material id (raw; hex of it is AWS's 64-character KeyMaterialId)
//! 61      4       FNV-1a-32 of bytes 0..61, big endian
//! 65      n+29    tresor_crypto::AeadKey sealed data (version, nonce, AES-256-GCM ciphertext, tag)
//! ```
//!
//! The sealed part is AES-256-GCM under the key material named in the header, with associated
//! data = `"tresor/kms/ciphertext/v1\0"` || header (bytes 0..61) || the canonical encoding of
//! the encryption context, so a changed header, a wrong material or a different context all
//! fail authentication. The checksum is not a security measure: it lets a damaged header be
//! told apart from a blob that names a key the caller cannot see (AWS answers
//! `InvalidCiphertextException` for the former), since FNV-1a detects every single-byte change.
//!
//! The blob is self-describing, as AWS's is (AWS KMS API Reference, Decrypt: `KeyId` is
//! optional for symmetric keys): `Decrypt` without `KeyId` finds the key from it.
//! The region is not stored: keys are looked up in the request's region only.
//!
//! # Canonical encryption context
//!
//! `u32 BE count`, then per pair in ascending key order (byte order, which is what a
//! `BTreeMap<String, String>` iterates in): `u32 BE len(key) || key || u32 BE len(value) ||
//! value`. Order-insensitive and unambiguous; keys and values are case-sensitive (KMS
//! Developer Guide, "Encryption context": the context must match exactly, case included).

use std::collections::BTreeMap;

use tresor_crypto::{AeadKey, CryptoError, RootKey, SEALED_OVERHEAD, Zeroizing};

pub const BLOB_VERSION: u8 = 1;
const ACCOUNT_LEN: usize = 12;
const KEY_ID_LEN: usize = 16;
pub const MATERIAL_ID_LEN: usize = 32;
const CHECK_LEN: usize = 4;
const PREFIX_LEN: usize = 1 + ACCOUNT_LEN + KEY_ID_LEN + MATERIAL_ID_LEN;
pub const HEADER_LEN: usize = PREFIX_LEN + CHECK_LEN;
/// Bytes a blob adds to its plaintext.
pub const BLOB_OVERHEAD: usize = HEADER_LEN + SEALED_OVERHEAD;

const CIPHERTEXT_AAD_LABEL: &[u8] = b"tresor/kms/ciphertext/v1\0";
const MATERIAL_AAD_LABEL: &[u8] = b"tresor/kms/key-material/v1\0";

/// What a blob's header names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobHeader {
    pub account: String,
    /// The key's UUID, lowercase, hyphenated.
    pub key_id: String,
    /// 64 lowercase hex characters.
    pub material_id: String,
}

/// Canonical encoding of an encryption context (see the module docs).
pub fn canonical_context(context: &BTreeMap<String, String>) -> Vec<u8> {
    let size = 4 + context
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len())
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&len32(context.len()));
    for (k, v) in context {
        out.extend_from_slice(&len32(k.len()));
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&len32(v.len()));
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

fn fnv1a32(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

fn uuid_bytes(key_id: &str) -> Option<[u8; KEY_ID_LEN]> {
    if !is_key_id(key_id) {
        return None;
    }
    let compact: String = key_id.chars().filter(|c| *c != '-').collect();
    let mut out = [0u8; KEY_ID_LEN];
    hex::decode_to_slice(compact, &mut out).ok()?;
    Some(out)
}

fn hex_string(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    tresor_crypto::push_hex(&mut out, bytes);
    out
}

/// A key id as KMS issues them: a lowercase hyphenated UUID.
pub fn is_key_id(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

fn encode_header(h: &BlobHeader) -> Option<[u8; HEADER_LEN]> {
    let mut out = [0u8; HEADER_LEN];
    out[0] = BLOB_VERSION;
    let account = h.account.as_bytes();
    if account.len() != ACCOUNT_LEN || !account.iter().all(u8::is_ascii_digit) {
        return None;
    }
    out[1..13].copy_from_slice(account);
    out[13..29].copy_from_slice(&uuid_bytes(&h.key_id)?);
    let mut material = [0u8; MATERIAL_ID_LEN];
    hex::decode_to_slice(&h.material_id, &mut material).ok()?;
    out[29..PREFIX_LEN].copy_from_slice(&material);
    let check = fnv1a32(&out[..PREFIX_LEN]);
    out[PREFIX_LEN..].copy_from_slice(&check.to_be_bytes());
    Some(out)
}

fn ciphertext_aad(header: &[u8], context: &BTreeMap<String, String>) -> Vec<u8> {
    let mut aad = Vec::with_capacity(CIPHERTEXT_AAD_LABEL.len() + header.len() + 64);
    aad.extend_from_slice(CIPHERTEXT_AAD_LABEL);
    aad.extend_from_slice(&header[..PREFIX_LEN]);
    aad.extend_from_slice(&canonical_context(context));
    aad
}

/// Encrypts `plaintext` under `material` (whose id and key the header names) into a blob.
pub fn seal(
    header: &BlobHeader,
    material: &AeadKey,
    plaintext: &[u8],
    context: &BTreeMap<String, String>,
) -> Result<Vec<u8>, CryptoError> {
    let head = encode_header(header).ok_or(CryptoError::Encrypt)?;
    let sealed = material.seal(plaintext, &ciphertext_aad(&head, context))?;
    let mut out = Vec::with_capacity(HEADER_LEN + sealed.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(&sealed);
    Ok(out)
}

/// Reads a blob's header; `None` if the blob is not one of ours or its header is damaged.
pub fn parse_header(blob: &[u8]) -> Option<BlobHeader> {
    if blob.len() < BLOB_OVERHEAD || blob[0] != BLOB_VERSION {
        return None;
    }
    let check = u32::from_be_bytes(blob[PREFIX_LEN..HEADER_LEN].try_into().ok()?);
    if check != fnv1a32(&blob[..PREFIX_LEN]) {
        return None;
    }
    let account = std::str::from_utf8(&blob[1..13]).ok()?;
    if !account.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(BlobHeader {
        account: account.to_string(),
        key_id: tresor_crypto::ids::uuid_string(blob[13..29].try_into().ok()?),
        material_id: hex_string(&blob[29..PREFIX_LEN]),
    })
}

/// Authenticates and decrypts a blob whose header was read by [`parse_header`], with the
/// material the header names.
pub fn open(
    blob: &[u8],
    material: &AeadKey,
    context: &BTreeMap<String, String>,
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if blob.len() < BLOB_OVERHEAD {
        return Err(CryptoError::Truncated { len: blob.len() });
    }
    material.open(
        &blob[HEADER_LEN..],
        &ciphertext_aad(&blob[..HEADER_LEN], context),
    )
}

/// The root-key AAD of one key material: binds the key ARN and the material id, so sealed
/// material cannot be moved to another key or swapped for another generation.
pub fn material_aad(key_arn: &str, material_id: &str) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(MATERIAL_AAD_LABEL.len() + key_arn.len() + 1 + material_id.len());
    aad.extend_from_slice(MATERIAL_AAD_LABEL);
    aad.extend_from_slice(key_arn.as_bytes());
    aad.push(0);
    aad.extend_from_slice(material_id.as_bytes());
    aad
}

/// Fresh key material: its id and its bytes sealed under the root key.
pub fn new_material(root: &RootKey, key_arn: &str) -> Result<(String, Vec<u8>), CryptoError> {
    let id = hex::encode(&*tresor_crypto::random_bytes(MATERIAL_ID_LEN)?);
    let (_, bytes) = AeadKey::generate()?;
    let sealed = root.seal(&bytes, &material_aad(key_arn, &id))?;
    Ok((id, sealed))
}

/// Unseals one key material into a usable key.
pub fn open_material(
    root: &RootKey,
    key_arn: &str,
    material_id: &str,
    sealed: &[u8],
) -> Result<AeadKey, CryptoError> {
    let bytes = root.open(sealed, &material_aad(key_arn, material_id))?;
    AeadKey::from_bytes(&bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn header() -> BlobHeader {
        BlobHeader {
            account: "111122223333".into(),
            key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into(),
            material_id: "ab".repeat(32),
        }
    }

    fn ctx(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn key_and_material_ids_print_as_hex_encode_prints_them() {
        for seed in 0u8..=255 {
            let bytes: Vec<u8> = (0..32u8)
                .map(|i| seed.wrapping_mul(31).wrapping_add(i.wrapping_mul(97)))
                .collect();
            assert_eq!(hex_string(&bytes), hex::encode(&bytes));
            let h = hex::encode(&bytes[..16]);
            let uuid = format!(
                "{}-{}-{}-{}-{}",
                &h[0..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..32]
            );
            assert_eq!(
                bytes[..16]
                    .try_into()
                    .ok()
                    .map(tresor_crypto::ids::uuid_string),
                Some(uuid.clone())
            );
            assert_eq!(
                uuid_bytes(&uuid).map(|b| b.to_vec()),
                Some(bytes[..16].to_vec())
            );
        }
    }

    #[test]
    fn blob_round_trips_and_names_its_key() {
        let (k, _) = AeadKey::generate().unwrap();
        let c = ctx(&[("b", "2"), ("a", "1")]);
        let blob = seal(&header(), &k, b"hello", &c).unwrap();
        assert_eq!(blob.len(), 5 + BLOB_OVERHEAD);
        assert_eq!(parse_header(&blob), Some(header()));
        assert_eq!(&*open(&blob, &k, &c).unwrap(), b"hello");
        assert!(!blob.windows(5).any(|w| w == b"hello"));
    }

    #[test]
    fn any_flipped_bit_is_detected() {
        let (k, _) = AeadKey::generate().unwrap();
        let c = ctx(&[("purpose", "test")]);
        let blob = seal(&header(), &k, b"secret", &c).unwrap();
        for i in 0..blob.len() {
            for bit in 0..8 {
                let mut t = blob.clone();
                t[i] ^= 1 << bit;
                let ok =
                    parse_header(&t).is_some_and(|h| h == header()) && open(&t, &k, &c).is_ok();
                assert!(!ok, "byte {i} bit {bit}");
                if i < HEADER_LEN {
                    assert!(parse_header(&t).is_none(), "header byte {i} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn context_must_match_exactly() {
        let (k, _) = AeadKey::generate().unwrap();
        let blob = seal(&header(), &k, b"x", &ctx(&[("a", "1")])).unwrap();
        for wrong in [
            ctx(&[]),
            ctx(&[("a", "2")]),
            ctx(&[("A", "1")]),
            ctx(&[("a", "1"), ("b", "")]),
        ] {
            assert!(open(&blob, &k, &wrong).is_err());
        }
    }

    #[test]
    fn canonical_context_is_unambiguous() {
        assert_ne!(
            canonical_context(&ctx(&[("ab", "c")])),
            canonical_context(&ctx(&[("a", "bc")]))
        );
        assert_ne!(
            canonical_context(&ctx(&[])),
            canonical_context(&ctx(&[("", "")]))
        );
    }

    #[test]
    fn material_is_bound_to_its_key_and_id() {
        let root = RootKey::from_bytes(&[7u8; 32]).unwrap();
        let (id, sealed) = new_material(&root, "arn:aws:kms:r:1:key/a").unwrap();
        assert_eq!(id.len(), 64);
        assert!(open_material(&root, "arn:aws:kms:r:1:key/a", &id, &sealed).is_ok());
        assert!(open_material(&root, "arn:aws:kms:r:1:key/b", &id, &sealed).is_err());
        assert!(open_material(&root, "arn:aws:kms:r:1:key/a", &"00".repeat(32), &sealed).is_err());
    }

    #[test]
    fn foreign_or_short_blobs_are_rejected() {
        assert!(parse_header(b"").is_none());
        assert!(parse_header(&[1u8; BLOB_OVERHEAD]).is_none());
        assert!(parse_header(&[0u8; 200]).is_none());
    }
}
