//! The one serde helper for byte members carried as text: standard base64 with padding, as
//! AWS sends `blob` members in JSON bodies and query parameters (and as stored records keep
//! their sealed bytes).
//!
//! `#[serde(with = "tresor_wire::blob")]` fits any field whose type is
//! `AsRef<[u8]> + From<Vec<u8>>`: `Vec<u8>` as well as zeroizing buffers of secrets.
//! `#[serde(with = "tresor_wire::blob::option")]` fits `Option` of those. The base64 text
//! is held in zeroizing buffers on both ways, and decoding writes into one buffer of the
//! final size, so a secret leaves no stray copy behind in freed memory.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serializer;
use serde::de::{self, Deserializer, Visitor};
use zeroize::Zeroizing;

/// The message of a decoding failure. It never quotes the input, which may be a secret.
pub const INVALID: &str = "blob is not valid base64";

/// Encodes `bytes` as a base64 string.
pub fn serialize<T, S>(bytes: &T, s: S) -> Result<S::Ok, S::Error>
where
    T: AsRef<[u8]> + ?Sized,
    S: Serializer,
{
    let encoded = Zeroizing::new(STANDARD.encode(bytes.as_ref()));
    s.serialize_str(&encoded)
}

/// Decodes a base64 string into `T`.
pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: From<Vec<u8>>,
    D: Deserializer<'de>,
{
    d.deserialize_str(Base64Visitor).map(T::from)
}

/// Decodes base64 text into a buffer allocated once, zeroized if decoding fails.
pub fn decode(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(base64::decoded_len_estimate(text.len())));
    STANDARD.decode_vec(text, &mut out).ok()?;
    Some(std::mem::take(&mut *out))
}

struct Base64Visitor;

impl<'de> Visitor<'de> for Base64Visitor {
    type Value = Vec<u8>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64-encoded string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        decode(v.as_bytes()).ok_or_else(|| E::custom(INVALID))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Vec<u8>, E> {
        let v = Zeroizing::new(v);
        self.visit_str(&v)
    }
}

/// The same for `Option<T>`: absent or `null` is `None`.
pub mod option {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T, S>(bytes: &Option<T>, s: S) -> Result<S::Ok, S::Error>
    where
        T: AsRef<[u8]>,
        S: Serializer,
    {
        match bytes {
            Some(b) => s.serialize_some(&Wrap(b.as_ref())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: From<Vec<u8>>,
        D: Deserializer<'de>,
    {
        Ok(Option::<Unwrap>::deserialize(d)?.map(|u| T::from(u.0)))
    }

    struct Wrap<'a>(&'a [u8]);

    impl serde::Serialize for Wrap<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::serialize(self.0, s)
        }
    }

    struct Unwrap(Vec<u8>);

    impl<'de> Deserialize<'de> for Unwrap {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::deserialize(d).map(Unwrap)
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    /// A stand-in for a zeroizing secret buffer of another crate.
    #[derive(Debug, PartialEq)]
    struct Secret(zeroize::Zeroizing<Vec<u8>>);

    impl AsRef<[u8]> for Secret {
        fn as_ref(&self) -> &[u8] {
            &self.0
        }
    }

    impl From<Vec<u8>> for Secret {
        fn from(v: Vec<u8>) -> Self {
            Secret(zeroize::Zeroizing::new(v))
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Record {
        #[serde(with = "crate::blob")]
        plain: Vec<u8>,
        #[serde(with = "crate::blob")]
        secret: Secret,
        #[serde(
            with = "crate::blob::option",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        maybe: Option<Vec<u8>>,
        #[serde(with = "crate::blob::option", default)]
        maybe_secret: Option<Secret>,
    }

    #[test]
    fn vec_secret_and_options_round_trip_as_padded_standard_base64() {
        let r = Record {
            plain: b"hi".to_vec(),
            secret: Secret::from(vec![0xfb, 0xff]),
            maybe: None,
            maybe_secret: Some(Secret::from(b"x".to_vec())),
        };
        let text = serde_json::to_string(&r).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"plain":"aGk=","secret":"+/8=","maybe_secret":"eA=="}"#
        );
        let back: Option<Record> = serde_json::from_str(&text).ok();
        assert_eq!(back.as_ref(), Some(&r));
        let nulls: Option<Record> =
            serde_json::from_str(r#"{"plain":"","secret":"","maybe":null}"#).ok();
        assert_eq!(
            nulls,
            Some(Record {
                plain: vec![],
                secret: Secret::from(vec![]),
                maybe: None,
                maybe_secret: None,
            })
        );
    }

    #[test]
    fn invalid_base64_is_an_error_that_does_not_quote_the_input() {
        for bad in ["aGk", "a-_=", "hunter2!", "aGk=="] {
            let text = format!(r#"{{"plain":"{bad}","secret":""}}"#);
            let e = serde_json::from_str::<Record>(&text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.starts_with(super::INVALID), "{bad}: {e}");
            assert!(!e.contains(bad.trim()), "{e}");
        }
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let r = Record {
                plain: bytes.clone(),
                secret: Secret::from(bytes.clone()),
                maybe: Some(bytes.clone()),
                maybe_secret: None,
            };
            let text = serde_json::to_string(&r).unwrap_or_default();
            let back: Option<Record> = serde_json::from_str(&text).ok();
            prop_assert_eq!(back, Some(r));
        }
    }
}
