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
    let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    ALWAYS.contains(&last.as_str())
        || service_members(service)
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&last))
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
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
