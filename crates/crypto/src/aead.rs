//! [`AeadKey`]: AES-256-GCM sealing and opening with associated data, in one versioned byte
//! format shared by every key in tresor (root key, KMS key material, data keys). It must not
//! decide what the associated data means; callers bind their context (account, region, ARN,
//! version id) through it.
//!
//! # Sealed format, version 1
//!
//! ```text
//! offset  length  field
//! 0       1       format version = 0x01
//! 1       12      nonce, random per seal
//! 13      n       ciphertext (AES-256-GCM, same length as the plaintext)
//! 13+n    16      authentication tag (covers the ciphertext and the associated data)
//! ```
//!
//! The associated data is not stored; the opener must supply the same bytes. The version byte
//! is not authenticated by the tag; it only selects how the rest is read, and a changed byte
//! is rejected as an unknown version or fails authentication.
//!
//! Nonces are random, so one key should seal well under 2^32 messages (NIST SP 800-38D's
//! bound for random 96-bit nonces). tresor seals a handful of items per root or KMS key
//! version and one value per data key, far below it.

use ring::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use crate::CryptoError;
use crate::random::{fill, random_bytes};

/// The format version written by [`AeadKey::seal`].
pub const FORMAT_VERSION: u8 = 1;
/// Key length in bytes (AES-256).
pub const KEY_LEN: usize = 32;
/// Nonce length in bytes.
pub const NONCE_LEN: usize = 12;
/// Authentication tag length in bytes.
pub const TAG_LEN: usize = 16;
/// How many bytes sealing adds to a plaintext: version, nonce and tag.
pub const SEALED_OVERHEAD: usize = HEADER_LEN + TAG_LEN;

const HEADER_LEN: usize = 1 + NONCE_LEN;

/// A 256-bit AES-GCM key.
///
/// The raw key bytes handed to [`AeadKey::from_bytes`] stay with the caller (zeroize them);
/// this type keeps only `ring`'s expanded key schedule, which `ring` does not zeroize on drop.
pub struct AeadKey {
    key: LessSafeKey,
}

impl AeadKey {
    /// A key from exactly [`KEY_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::InvalidKeyLength {
                expected: KEY_LEN,
                actual: bytes.len(),
            });
        }
        let key =
            UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::InvalidKeyLength {
                expected: KEY_LEN,
                actual: bytes.len(),
            })?;
        Ok(AeadKey {
            key: LessSafeKey::new(key),
        })
    }

    /// A fresh random key, and its bytes so that the caller can store them sealed under
    /// another key (envelope encryption).
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>), CryptoError> {
        let bytes = random_bytes(KEY_LEN)?;
        Ok((Self::from_bytes(&bytes)?, bytes))
    }

    /// Encrypts and authenticates `plaintext`, binding `aad`, into the version 1 format.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        fill(&mut nonce)?;
        // Sized exactly, so the buffer never reallocates and leaves a plaintext copy behind.
        let mut out = Vec::with_capacity(SEALED_OVERHEAD + plaintext.len());
        out.push(FORMAT_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plaintext);
        match self.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut out[HEADER_LEN..],
        ) {
            Ok(tag) => {
                out.extend_from_slice(tag.as_ref());
                Ok(out)
            }
            Err(_) => {
                out.zeroize();
                Err(CryptoError::Encrypt)
            }
        }
    }

    /// Authenticates and decrypts data made by [`AeadKey::seal`] with the same key and `aad`.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let Some(&version) = sealed.first() else {
            return Err(CryptoError::Truncated { len: 0 });
        };
        if version != FORMAT_VERSION {
            return Err(CryptoError::UnsupportedVersion { version });
        }
        if sealed.len() < SEALED_OVERHEAD {
            return Err(CryptoError::Truncated { len: sealed.len() });
        }
        let nonce = Nonce::try_assume_unique_for_key(&sealed[1..HEADER_LEN])
            .map_err(|_| CryptoError::Truncated { len: sealed.len() })?;
        let mut buf = Zeroizing::new(sealed[HEADER_LEN..].to_vec());
        let plaintext_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut buf)
            .map_err(|_| CryptoError::Decrypt)?
            .len();
        buf.truncate(plaintext_len);
        Ok(buf)
    }
}

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey([redacted])")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    fn key() -> AeadKey {
        AeadKey::generate().unwrap().0
    }

    #[test]
    fn seal_then_open_round_trips() {
        let k = key();
        for plaintext in [&b""[..], b"x", &[0u8; 1024], &vec![7u8; 100_000]] {
            let sealed = k.seal(plaintext, b"aad").unwrap();
            assert_eq!(sealed.len(), plaintext.len() + SEALED_OVERHEAD);
            assert_eq!(sealed[0], FORMAT_VERSION);
            assert_eq!(&*k.open(&sealed, b"aad").unwrap(), plaintext);
        }
    }

    #[test]
    fn sealing_twice_uses_fresh_nonces() {
        let k = key();
        let a = k.seal(b"same", b"").unwrap();
        let b = k.seal(b"same", b"").unwrap();
        assert_ne!(a, b);
        assert_ne!(a[1..HEADER_LEN], b[1..HEADER_LEN]);
    }

    #[test]
    fn ciphertext_does_not_contain_the_plaintext() {
        let sealed = key().seal(b"correct horse battery staple", b"").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"correct"));
    }

    #[test]
    fn wrong_associated_data_is_rejected() {
        let k = key();
        let sealed = k.seal(b"secret", b"arn:a").unwrap();
        assert!(matches!(
            k.open(&sealed, b"arn:b"),
            Err(CryptoError::Decrypt)
        ));
        assert!(matches!(k.open(&sealed, b""), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn a_flipped_bit_anywhere_is_rejected() {
        let k = key();
        let sealed = k.seal(b"secret value", b"aad").unwrap();
        for byte in 0..sealed.len() {
            for bit in 0..8 {
                let mut tampered = sealed.clone();
                tampered[byte] ^= 1 << bit;
                let result = k.open(&tampered, b"aad");
                if byte == 0 {
                    assert!(matches!(
                        result,
                        Err(CryptoError::UnsupportedVersion { .. })
                    ));
                } else {
                    assert!(matches!(result, Err(CryptoError::Decrypt)), "byte {byte}");
                }
            }
        }
    }

    #[test]
    fn truncated_input_is_rejected() {
        let k = key();
        let sealed = k.seal(b"secret value", b"").unwrap();
        for len in 0..sealed.len() {
            let result = k.open(&sealed[..len], b"");
            if len < SEALED_OVERHEAD {
                assert!(
                    matches!(result, Err(CryptoError::Truncated { .. })),
                    "{len}"
                );
            } else {
                assert!(matches!(result, Err(CryptoError::Decrypt)), "{len}");
            }
        }
        // Extra bytes are tampering too.
        let mut longer = sealed.clone();
        longer.push(0);
        assert!(matches!(k.open(&longer, b""), Err(CryptoError::Decrypt)));
    }

    #[test]
    fn another_key_cannot_open() {
        let sealed = key().seal(b"secret", b"").unwrap();
        assert!(matches!(
            key().open(&sealed, b""),
            Err(CryptoError::Decrypt)
        ));
    }

    #[test]
    fn unknown_format_versions_are_rejected() {
        let k = key();
        let mut sealed = k.seal(b"secret", b"").unwrap();
        for version in [0u8, 2, 0xff] {
            sealed[0] = version;
            assert!(matches!(
                k.open(&sealed, b""),
                Err(CryptoError::UnsupportedVersion { version: v }) if v == version
            ));
        }
    }

    #[test]
    fn keys_must_be_32_bytes() {
        for len in [0, 16, 31, 33, 64] {
            assert!(matches!(
                AeadKey::from_bytes(&vec![1u8; len]),
                Err(CryptoError::InvalidKeyLength { expected: 32, actual }) if actual == len
            ));
        }
        let (k, bytes) = AeadKey::generate().unwrap();
        let same = AeadKey::from_bytes(&bytes).unwrap();
        assert_eq!(&*same.open(&k.seal(b"x", b"").unwrap(), b"").unwrap(), b"x");
    }

    #[test]
    fn debug_does_not_show_the_key() {
        assert_eq!(format!("{:?}", key()), "AeadKey([redacted])");
    }

    proptest! {
        #[test]
        fn any_plaintext_and_aad_round_trip(
            plaintext in prop::collection::vec(any::<u8>(), 0..2048),
            aad in prop::collection::vec(any::<u8>(), 0..256),
        ) {
            let k = key();
            let sealed = k.seal(&plaintext, &aad).unwrap();
            prop_assert_eq!(&*k.open(&sealed, &aad).unwrap(), &plaintext[..]);
        }

        #[test]
        fn any_single_bit_flip_fails(
            plaintext in prop::collection::vec(any::<u8>(), 0..64),
            position in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let k = key();
            let mut sealed = k.seal(&plaintext, b"aad").unwrap();
            let i = position.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert!(k.open(&sealed, b"aad").is_err());
        }
    }
}
