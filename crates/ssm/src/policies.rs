//! Parameter policies (advanced tier only): `Expiration`, `ExpirationNotification`,
//! `NoChangeNotification` (PutParameter `Policies` documentation; Systems Manager User Guide,
//! "Assigning parameter policies"). The input is a JSON array of
//! `{"Type": …, "Version": "1.0", "Attributes": {…}}`:
//!
//! - Expiration: `{"Timestamp": "<ISO 8601>"}`, in the future; the parameter is deleted when
//!   it is due (a durable job, [`crate::jobs`]).
//! - ExpirationNotification: `{"Before": "<n>", "Unit": "Days" | "Hours"}`, needs an
//!   Expiration.
//! - NoChangeNotification: `{"After": "<n>", "Unit": "Days" | "Hours"}`.
//!
//! Notifications go to EventBridge on AWS; tresor validates and stores them (they show in
//! DescribeParameters / GetParameterHistory) but emits no events.

use crate::errors::SsmError;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::model::PolicyRecord;

pub const MAX_POLICIES: usize = 10;

/// Validated policies and the expiration they set, if any.
pub struct Parsed {
    pub policies: Vec<PolicyRecord>,
    pub expiration: Option<OffsetDateTime>,
}

/// InvalidPolicyTypeException's documentation in the botocore model.
fn invalid_type() -> SsmError {
    SsmError::InvalidPolicyType("The policy type isn't supported. Parameter Store supports the following policy types: Expiration, ExpirationNotification, and NoChangeNotification.".into(),
    )
}

/// InvalidPolicyAttributeException's documentation in the botocore model, with the
/// offending attribute.
fn invalid_attribute(what: &str) -> SsmError {
    SsmError::InvalidPolicyAttribute(format!(
        "A policy attribute or its value is invalid. {what}"
    ))
}

/// IncompatiblePolicyException's documentation in the botocore model.
fn incompatible() -> SsmError {
    SsmError::IncompatiblePolicy("There is a conflict in the policies specified for this parameter. You can't, for example, specify two Expiration policies for a parameter. Review your policies, and try again.".into(),
    )
}

fn attr<'a>(attributes: &'a Value, name: &str) -> Result<&'a str, SsmError> {
    attributes.get(name).and_then(Value::as_str).ok_or_else(|| {
        invalid_attribute(&format!("The attribute {name} is missing or not a string."))
    })
}

fn check_period(attributes: &Value, amount_key: &str) -> Result<(), SsmError> {
    let amount = attr(attributes, amount_key)?;
    let n: u32 = amount.parse().map_err(|_| {
        invalid_attribute(&format!("{amount_key} must be a positive whole number."))
    })?;
    if n == 0 {
        return Err(invalid_attribute(&format!(
            "{amount_key} must be a positive whole number."
        )));
    }
    match attr(attributes, "Unit")? {
        "Days" | "Hours" => Ok(()),
        _ => Err(invalid_attribute("Unit must be Days or Hours.")),
    }
}

pub fn parse(text: &str, now: OffsetDateTime) -> Result<Parsed, SsmError> {
    let value: Value = serde_json::from_str(text).map_err(|_| {
        crate::errors::validation("Policies must be a valid JSON array of parameter policies.")
    })?;
    let Value::Array(items) = value else {
        return Err(crate::errors::validation(
            "Policies must be a valid JSON array of parameter policies.",
        ));
    };
    if items.len() > MAX_POLICIES {
        return Err(SsmError::PoliciesLimitExceeded("You specified more than the maximum number of allowed policies for the parameter. The maximum is 10.".into(),
        ));
    }
    let mut policies = Vec::with_capacity(items.len());
    let mut expiration = None;
    let mut seen: Vec<String> = Vec::new();
    for item in &items {
        let policy_type = item
            .get("Type")
            .and_then(Value::as_str)
            .ok_or_else(invalid_type)?;
        if item.get("Version").and_then(Value::as_str) != Some("1.0") {
            return Err(invalid_attribute("Version must be 1.0."));
        }
        let attributes = item
            .get("Attributes")
            .filter(|a| a.is_object())
            .ok_or_else(|| invalid_attribute("Attributes must be an object."))?;
        match policy_type {
            "Expiration" => {
                let ts = attr(attributes, "Timestamp")?;
                let at = OffsetDateTime::parse(ts, &Rfc3339).map_err(|_| {
                    invalid_attribute("Timestamp must be an ISO 8601 date and time.")
                })?;
                if at <= now {
                    return Err(invalid_attribute(
                        "The expiration Timestamp must be in the future.",
                    ));
                }
                expiration = Some(at);
            }
            "ExpirationNotification" => check_period(attributes, "Before")?,
            "NoChangeNotification" => check_period(attributes, "After")?,
            _ => return Err(invalid_type()),
        }
        if seen.iter().any(|t| t == policy_type) {
            return Err(incompatible());
        }
        seen.push(policy_type.to_string());
        policies.push(PolicyRecord {
            text: serde_json::to_string(item).map_err(|_| invalid_type())?,
            policy_type: policy_type.to_string(),
            status: "Pending".to_string(),
        });
    }
    if seen.iter().any(|t| t == "ExpirationNotification") && expiration.is_none() {
        return Err(incompatible());
    }
    Ok(Parsed {
        policies,
        expiration,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn code(r: Result<Parsed, SsmError>) -> String {
        r.err().map(|e| e.code().to_string()).unwrap_or_default()
    }

    #[test]
    fn policies_are_validated() {
        let now = OffsetDateTime::now_utc();
        let ok = r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2999-12-02T21:34:33.000Z"}},
                     {"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"15","Unit":"Days"}},
                     {"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"20","Unit":"Hours"}}]"#;
        let p = parse(ok, now).unwrap();
        assert_eq!(p.policies.len(), 3);
        assert!(p.expiration.is_some());
        assert_eq!(
            code(parse(
                r#"[{"Type":"Nope","Version":"1.0","Attributes":{}}]"#,
                now
            )),
            "InvalidPolicyTypeException"
        );
        assert_eq!(
            code(parse(
                r#"[{"Type":"Expiration","Version":"1.0","Attributes":{"Timestamp":"2000-01-01T00:00:00Z"}}]"#,
                now
            )),
            "InvalidPolicyAttributeException"
        );
        assert_eq!(
            code(parse(
                r#"[{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"x","Unit":"Days"}}]"#,
                now
            )),
            "InvalidPolicyAttributeException"
        );
        let two = r#"[{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"1","Unit":"Days"}},
                      {"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"2","Unit":"Days"}}]"#;
        assert_eq!(code(parse(two, now)), "IncompatiblePolicyException");
        assert_eq!(
            code(parse(
                r#"[{"Type":"ExpirationNotification","Version":"1.0","Attributes":{"Before":"1","Unit":"Days"}}]"#,
                now
            )),
            "IncompatiblePolicyException"
        );
        let many = format!("[{}]", [r#"{"Type":"NoChangeNotification","Version":"1.0","Attributes":{"After":"1","Unit":"Days"}}"#; 11].join(","));
        assert_eq!(code(parse(&many, now)), "PoliciesLimitExceededException");
        assert!(parse("[]", now).unwrap().policies.is_empty());
    }
}
