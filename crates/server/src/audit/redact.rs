//! What an audit record may say about a request's input and output: every member that can
//! carry a secret is replaced by CloudTrail's `HIDDEN_DUE_TO_SECURITY_REASONS`, by member name
//! and per service. Names are compared case-insensitively, and for awsQuery's flattened names
//! (`Tags.member.1.Value`) by their last segment.
//!
//! The lists are deliberately wide: a member that only *might* hold a secret (Parameter
//! Store's `Value`, even of a `String` parameter, because PutParameter with `Overwrite` can keep
//! a SecureString's type without naming it; Lambda's environment `Variables`) is hidden too.

use serde_json::Value;
use tresor_wire::ServiceId;

/// CloudTrail's text for a hidden member.
pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// Members hidden in every service's records.
const ALWAYS: &[&str] = &[
    "secretstring",
    "secretbinary",
    "plaintext",
    "ciphertextblob",
    "sourceciphertextblob",
    "secretaccesskey",
    "sessiontoken",
    "password",
    "newpassword",
    "oldpassword",
    "randompassword",
    "privatekey",
    "keymaterial",
    "encryptedkeymaterial",
    "webidentitytoken",
    // tresor's AssumeRoleWithCallerIdentity: a presigned request, signature and all.
    "presignedurl",
    "samlassertion",
    "zipfile",
    "sourceresult",
];

/// Members hidden in one service's records.
fn service_members(service: ServiceId) -> &'static [&'static str] {
    match service {
        // A parameter's value, of any type (module docs); `Values` of GetParameters' output.
        ServiceId::Ssm => &["value"],
        // A function's environment and an invocation's payload.
        ServiceId::Lambda => &["variables", "payload"],
        ServiceId::Kms => &["grantTokens"],
        _ => &[],
    }
}

/// Whether member `name` of `service` is hidden.
pub fn is_sensitive(service: ServiceId, name: &str) -> bool {
    let last = name.rsplit('.').next().unwrap_or(name);
    ALWAYS
        .iter()
        .chain(service_members(service))
        .any(|m| m.eq_ignore_ascii_case(last))
}

/// A JSON object's text as [`camel_case_top`] and then [`redact`] would leave its value, in
/// one pass and without ever holding a hidden member's value: a sensitive member is skipped
/// by the parser (checked as JSON, never copied), so the secrets of a request body
/// (`SecretString`, `Plaintext`, …) are not copied into the record's memory only to be
/// replaced. `None` unless the text is one JSON object.
pub fn parse_redacted(service: ServiceId, text: &[u8]) -> Option<Value> {
    use serde::de::DeserializeSeed as _;
    let mut de = serde_json::Deserializer::from_slice(text);
    let value = Redacting { service, top: true }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    value.is_object().then_some(value)
}

/// The visitor of [`parse_redacted`]: serde_json's own `Value` visitor, but a map member
/// whose name is sensitive becomes [`HIDDEN`] unread, and top-level names take CloudTrail's
/// casing.
#[derive(Clone, Copy)]
struct Redacting {
    service: ServiceId,
    top: bool,
}

impl<'de> serde::de::DeserializeSeed<'de> for Redacting {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Redacting {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        serde::de::DeserializeSeed::deserialize(self, d)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = Redacting { top: false, ..self };
        let mut items = Vec::new();
        while let Some(v) = seq.next_element_seed(inner)? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = Redacting { top: false, ..self };
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let key = if self.top { lower_first(&key) } else { key };
            let value = if is_sensitive(self.service, &key) {
                map.next_value::<serde::de::IgnoredAny>()?;
                Value::String(HIDDEN.into())
            } else {
                map.next_value_seed(inner)?
            };
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// Hides every sensitive member of `value`, at any depth.
pub fn redact(service: ServiceId, value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_sensitive(service, k) {
                    *v = Value::String(HIDDEN.into());
                } else {
                    redact(service, v);
                }
            }
        }
        Value::Array(items) => {
            for v in items {
                redact(service, v);
            }
        }
        _ => {}
    }
}

/// CloudTrail's member casing: the first letter lowered (`SecretId` → `secretId`), top level
/// only (nested maps such as tags and encryption contexts are the caller's own keys).
pub fn camel_case_top(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (lower_first(&k), v)).collect())
        }
        other => other,
    }
}

fn lower_first(k: &str) -> String {
    let mut chars = k.chars();
    let mut out = String::with_capacity(k.len() + 2);
    if let Some(c) = chars.next() {
        out.extend(c.to_lowercase());
        out.push_str(chars.as_str());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// What [`parse_redacted`] replaces: parse, rename, redact.
    fn oracle(service: ServiceId, text: &[u8]) -> Option<Value> {
        match serde_json::from_slice::<Value>(text) {
            Ok(v @ Value::Object(_)) => {
                let mut v = camel_case_top(v);
                redact(service, &mut v);
                Some(v)
            }
            _ => None,
        }
    }

    const SERVICES: [ServiceId; 4] = [
        ServiceId::SecretsManager,
        ServiceId::Ssm,
        ServiceId::Kms,
        ServiceId::Lambda,
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let names = prop::sample::select(vec![
            "SecretId",
            "SecretString",
            "secretString",
            "Plaintext",
            "CiphertextBlob",
            "Value",
            "Tags",
            "Key",
            "Variables",
            "Payload",
            "grantTokens",
            "Tags.member.1.Value",
            "x",
            "",
            "É",
            "Name",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                prop::collection::vec((names.clone(), inner), 0..6).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn parsing_redacted_equals_parsing_then_renaming_then_redacting(
            v in json_value(),
            service in prop::sample::select(SERVICES.to_vec()),
        ) {
            let text = serde_json::to_vec(&v).unwrap();
            prop_assert_eq!(parse_redacted(service, &text), oracle(service, &text));
        }

        #[test]
        fn arbitrary_bytes_give_the_same_answer(text in prop::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(parse_redacted(ServiceId::Kms, &text), oracle(ServiceId::Kms, &text));
        }
    }

    #[test]
    fn texts_the_two_read_alike_or_refuse_alike() {
        for text in [
            r#"{"SecretId":"a","SecretId":"b"}"#,
            r#"{"SecretId":"a","secretId":"b"}"#,
            r#"{"SecretString":"x","secretString":{"a":[1,2]}}"#,
            r#"{"Plaintext":"p"} "#,
            r#"{"Plaintext":"p"} x"#,
            r#"{"Plaintext":"unterminated}"#,
            r#"{"Plaintext":"bad \q escape"}"#,
            r#"{"a":1e400}"#,
            r#"{"a":-0.0,"b":1.5e-7,"c":18446744073709551615,"d":-9223372036854775808}"#,
            r#"[{"Plaintext":"p"}]"#,
            r#""text""#,
            "",
            r#"{"Name":"\ud800"}"#,
            r#"{"Name":"\u00e9\n"}"#,
        ] {
            for service in SERVICES {
                assert_eq!(
                    parse_redacted(service, text.as_bytes()),
                    oracle(service, text.as_bytes()),
                    "{text}"
                );
            }
        }
    }

    /// The one difference: a hidden member is checked as JSON but not decoded, so a lone
    /// surrogate escape in it (not a string Rust can hold) is hidden like any other value;
    /// the whole-value parse refused the text. (The operation itself refuses such a body.)
    #[test]
    fn a_lone_surrogate_in_a_hidden_member_is_hidden() {
        let text = br#"{"CiphertextBlob":"\ud800"}"#;
        assert_eq!(oracle(ServiceId::Kms, text), None);
        assert_eq!(
            parse_redacted(ServiceId::Kms, text),
            Some(json!({"ciphertextBlob": HIDDEN}))
        );
    }

    #[test]
    fn a_hidden_member_is_never_read_into_the_value() {
        let v = parse_redacted(
            ServiceId::SecretsManager,
            br#"{"SecretId":"db","SecretString":"hunter2","Nested":{"Password":"pw"}}"#,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"secretId": "db", "secretString": HIDDEN, "nested": {"Password": HIDDEN}})
        );
    }

    #[test]
    fn secret_members_are_hidden_at_any_depth_and_others_kept() {
        let mut v = json!({
            "SecretId": "db",
            "SecretString": "hunter2",
            "Credentials": {"AccessKeyId": "ASIA", "SecretAccessKey": "k", "SessionToken": "t"},
            "List": [{"Plaintext": "p"}],
        });
        redact(ServiceId::SecretsManager, &mut v);
        let text = v.to_string();
        for secret in ["hunter2", "\"k\"", "\"t\"", "\"p\""] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(text.contains("\"db\"") && text.contains("ASIA"));
        let mut p = json!({"Name": "/x", "Value": "v1", "Tags.member.1.Value": "v2"});
        redact(ServiceId::Ssm, &mut p);
        assert!(!p.to_string().contains("v1"));
        assert!(!p.to_string().contains("v2"));
        assert!(is_sensitive(ServiceId::Iam, "WebIdentityToken"));
        assert!(!is_sensitive(ServiceId::SecretsManager, "Value"));
        assert_eq!(
            camel_case_top(json!({"SecretId": 1, "Tags": {"Key": 2}})),
            json!({"secretId": 1, "tags": {"Key": 2}})
        );
    }
}
