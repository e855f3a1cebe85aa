//! [`SecretBytes`] and [`SecretString`]: owned buffers for secret values (secret strings,
//! secret access keys, plaintext data keys) that are zeroized when dropped and print as
//! `[redacted]`. They must not implement anything that copies the secret out implicitly
//! (`Display` of the contents, `Deref` to a plain `String`, serde).

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

use crate::{CryptoError, constant_time_eq};

const REDACTED: &str = "[redacted]";

/// Secret bytes: zeroized on drop, `[redacted]` when printed, compared in constant time.
#[derive(Clone, Default)]
pub struct SecretBytes(Zeroizing<Vec<u8>>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        SecretBytes(Zeroizing::new(bytes))
    }

    /// The secret itself. The name makes each use easy to find in review.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// For serde helpers over bytes (`tresor_wire::blob`); the bytes stay as secret as through
/// [`SecretBytes::expose`].
impl AsRef<[u8]> for SecretBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl From<&[u8]> for SecretBytes {
    fn from(bytes: &[u8]) -> Self {
        Self::new(bytes.to_vec())
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(bytes: Zeroizing<Vec<u8>>) -> Self {
        SecretBytes(bytes)
    }
}

impl From<SecretString> for SecretBytes {
    fn from(mut s: SecretString) -> Self {
        // Moves the heap buffer; nothing is copied.
        Self::new(std::mem::take(&mut *s.0).into_bytes())
    }
}

impl PartialEq for SecretBytes {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(&self.0, &other.0)
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A secret string: zeroized on drop, `[redacted]` when printed, compared in constant time.
#[derive(Clone, Default)]
pub struct SecretString(Zeroizing<String>);

impl SecretString {
    pub fn new(s: String) -> Self {
        SecretString(Zeroizing::new(s))
    }

    /// Takes secret bytes that must be UTF-8 (a decrypted `SecretString`). On error the bytes
    /// are zeroized.
    pub fn from_utf8(mut bytes: SecretBytes) -> Result<Self, CryptoError> {
        match String::from_utf8(std::mem::take(&mut *bytes.0)) {
            Ok(s) => Ok(Self::new(s)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(CryptoError::InvalidUtf8)
            }
        }
    }

    /// The secret itself. The name makes each use easy to find in review.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        Self::new(s.to_owned())
    }
}

impl From<Zeroizing<String>> for SecretString {
    fn from(s: Zeroizing<String>) -> Self {
        SecretString(s)
    }
}

impl PartialEq for SecretString {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for SecretString {}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn printing_never_shows_the_secret() {
        let s = SecretString::from("hunter2-password");
        let b = SecretBytes::from(b"hunter2-bytes".to_vec());
        for text in [
            format!("{s:?}"),
            format!("{s}"),
            format!("{b:?}"),
            format!("{b}"),
            format!("{:?}", Some(&s)),
        ] {
            assert!(!text.contains("hunter2"), "{text}");
            assert!(text.contains("[redacted]"));
        }
    }

    #[test]
    fn accessors_expose_the_contents() {
        let s = SecretString::from("abc".to_owned());
        assert_eq!(s.expose(), "abc");
        assert_eq!(s.as_bytes(), b"abc");
        assert_eq!(s.len(), 3);
        let b = SecretBytes::from(s.clone());
        assert_eq!(b.expose(), b"abc");
        assert_eq!(b.as_bytes(), b"abc");
        assert_eq!(SecretString::from_utf8(b).unwrap(), s);
        assert!(SecretBytes::default().is_empty());
    }

    #[test]
    fn invalid_utf8_is_rejected() {
        let err = SecretString::from_utf8(SecretBytes::from(vec![0xff, 0xfe])).unwrap_err();
        assert!(matches!(err, CryptoError::InvalidUtf8));
    }

    #[test]
    fn equality_compares_contents() {
        assert_eq!(SecretBytes::from(&b"x"[..]), SecretBytes::from(vec![b'x']));
        assert_ne!(SecretString::from("x"), SecretString::from("y"));
    }
}
