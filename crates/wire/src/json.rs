//! awsJson1.1 input decoding and output encoding.
//!
//! Inputs are deserialized straight into each operation's typed input struct (PascalCase
//! member names as in the botocore model). Malformed JSON and wrong member types are
//! `SerializationException`; a missing required member is AWS's `ValidationException`
//! ("Value null at 'name' failed to satisfy constraint: Member must not be null").

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AwsError;
use crate::service::Protocol;
use crate::validate::member_path;

pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// Decodes a request body. An empty body counts as `{}` (clients send `{}` for operations
/// without input, but a bare POST should not be a serialization error).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, AwsError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    // The top level must be an object: a JSON array or scalar is not an input structure.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(AwsError::serialization(
            "Start of structure or map found where not expected.",
        ));
    }
    serde_json::from_slice(body).map_err(|e| map_error(&e))
}

pub(crate) fn map_error(e: &serde_json::Error) -> AwsError {
    let text = e.to_string();
    if let Some((field, _)) = text
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
    {
        return AwsError::validation(
            Protocol::AwsJson11,
            format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                member_path(field)
            ),
        );
    }
    match e.classify() {
        serde_json::error::Category::Data => {
            // Never echo the offending value: it may be a secret sent in the wrong member.
            let what = text.split(" at line").next().unwrap_or("invalid value");
            let what = what.split(':').next().unwrap_or(what);
            AwsError::serialization(format!("Unable to parse request: {what}"))
        }
        _ => AwsError::serialization("Unable to parse request body as JSON."),
    }
}

/// Encodes an output structure. Members that are `None` must be skipped by the output type
/// (`#[serde(skip_serializing_if = "Option::is_none")]`): AWS omits rather than sends null.
///
/// The bytes are those of `serde_json::to_vec`, written by [`crate::json_out`], whose string
/// escaping checks eight bytes at a time.
pub fn encode<T: Serialize>(output: &T) -> Result<Vec<u8>, AwsError> {
    crate::json_out::to_vec(output).map_err(|_| AwsError::internal(Protocol::AwsJson11))
}

pub use crate::json_out::{WriteError, escaped_len, write_into};

/// Compact JSON of any serializable value (a stored record, an audit field): the bytes of
/// `serde_json::to_vec`, written by the same writer as [`encode`].
pub fn to_vec<T: ?Sized + Serialize>(value: &T) -> Result<Vec<u8>, WriteError> {
    crate::json_out::to_vec(value)
}

/// [`to_vec`] as a string.
pub fn to_string<T: ?Sized + Serialize>(value: &T) -> Result<String, WriteError> {
    String::from_utf8(to_vec(value)?)
        .map_err(|_| <WriteError as serde::ser::Error>::custom("the JSON written is not UTF-8"))
}

/// Serde helpers for AWS's JSON timestamp encoding: epoch seconds with a fraction.
pub mod epoch_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(crate::timefmt::epoch_seconds(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let secs = f64::deserialize(d)?;
        crate::timefmt::from_epoch_seconds(secs)
            .ok_or_else(|| serde::de::Error::custom("timestamp out of range"))
    }

    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};
        use time::OffsetDateTime;

        pub fn serialize<S: Serializer>(
            t: &Option<OffsetDateTime>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_f64(crate::timefmt::epoch_seconds(*t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<OffsetDateTime>, D::Error> {
            match Option::<f64>::deserialize(d)? {
                Some(secs) => crate::timefmt::from_epoch_seconds(secs)
                    .map(Some)
                    .ok_or_else(|| serde::de::Error::custom("timestamp out of range")),
                None => Ok(None),
            }
        }
    }
}

/// Serde helpers for `blob` members: standard base64, padded. Kept for existing callers;
/// [`crate::blob`] is the same encoding for any bytes type, `Option` included.
pub mod blob {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        crate::blob::serialize(b, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        crate::blob::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "PascalCase")]
    #[allow(dead_code)]
    struct Input {
        secret_id: String,
        version_stage: Option<String>,
        max_results: Option<i32>,
    }

    #[test]
    fn empty_body_is_an_empty_object() {
        #[derive(Deserialize)]
        struct Empty {}
        assert!(decode::<Empty>(b"").is_ok());
        assert!(decode::<Empty>(b"{}").is_ok());
    }

    #[test]
    fn malformed_json_is_serialization_exception() {
        for body in [
            &b"{"[..],
            b"{\"SecretId\":",
            b"[1]",
            b"\"x\"",
            b"nul",
            b"{\"SecretId\":\"a\"}}",
        ] {
            let e = decode::<Input>(body).err().map(|e| e.code.to_string());
            assert_eq!(
                e.as_deref(),
                Some("SerializationException"),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn wrong_member_type_is_serialization_exception_without_echoing_value() {
        let e = decode::<Input>(br#"{"SecretId":"a","MaxResults":"hunter2secret"}"#).err();
        let e = e.map(|e| (e.code.to_string(), e.message.unwrap_or_default()));
        let (code, msg) = e.unwrap_or_default();
        assert_eq!(code, "SerializationException");
        assert!(!msg.contains("hunter2secret"), "{msg}");
    }

    #[test]
    fn missing_required_member_is_validation_exception() {
        let e = decode::<Input>(br#"{"VersionStage":"AWSCURRENT"}"#).err();
        let e = e.map(|e| (e.code.to_string(), e.message.unwrap_or_default()));
        assert_eq!(
            e,
            Some((
                "ValidationException".to_string(),
                "1 validation error detected: Value null at 'secretId' failed to satisfy constraint: Member must not be null".to_string()
            ))
        );
    }
}
