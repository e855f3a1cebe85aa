//! AWS's constraint-violation messages: `N validation error(s) detected: Value '<v>' at
//! '<memberPath>' failed to satisfy constraint: Member must …` (spec §1.1).

use crate::error::AwsError;
use crate::service::Protocol;

/// The camelCase member path AWS uses in validation messages (`SecretId` → `secretId`).
pub fn member_path(member: &str) -> String {
    let mut chars = member.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Collects constraint violations and renders them in AWS's one-error-per-clause wording.
#[derive(Default, Debug)]
pub struct Validator {
    errors: Vec<String>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a violation. `shown` is the value to quote (pass `None` for values that must
    /// never be echoed, e.g. secrets: AWS prints `null`-like placeholders for sensitive members).
    pub fn fail(&mut self, member: &str, shown: Option<&str>, constraint: &str) {
        let value = match shown {
            Some(v) => format!("'{v}'"),
            None => "'***'".to_string(),
        };
        self.errors.push(format!(
            "Value {value} at '{}' failed to satisfy constraint: {constraint}",
            member_path(member)
        ));
    }

    /// Length in characters between `min` and `max`.
    pub fn length(&mut self, member: &str, value: Option<&str>, min: usize, max: usize) {
        if let Some(v) = value {
            let n = v.chars().count();
            if n < min {
                self.fail(
                    member,
                    Some(v),
                    &format!("Member must have length greater than or equal to {min}"),
                );
            } else if n > max {
                self.fail(
                    member,
                    Some(v),
                    &format!("Member must have length less than or equal to {max}"),
                );
            }
        }
    }

    pub fn range(&mut self, member: &str, value: Option<i64>, min: i64, max: i64) {
        if let Some(v) = value {
            let shown = v.to_string();
            if v < min {
                self.fail(
                    member,
                    Some(&shown),
                    &format!("Member must have value greater than or equal to {min}"),
                );
            } else if v > max {
                self.fail(
                    member,
                    Some(&shown),
                    &format!("Member must have value less than or equal to {max}"),
                );
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn finish(self, protocol: Protocol) -> Result<(), AwsError> {
        match self.errors.len() {
            0 => Ok(()),
            1 => Err(AwsError::validation(
                protocol,
                format!("1 validation error detected: {}", self.errors[0]),
            )),
            n => Err(AwsError::validation(
                protocol,
                format!("{n} validation errors detected: {}", self.errors.join("; ")),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_follow_aws_wording() {
        let mut v = Validator::new();
        v.length("SecretId", Some(""), 1, 2048);
        let e = v.finish(Protocol::AwsJson11).err().and_then(|e| e.message);
        assert_eq!(
            e.as_deref(),
            Some(
                "1 validation error detected: Value '' at 'secretId' failed to satisfy constraint: Member must have length greater than or equal to 1"
            )
        );
        let mut v = Validator::new();
        v.range("MaxResults", Some(0), 1, 100);
        v.range("DurationSeconds", Some(99999), 900, 43200);
        let e = v.finish(Protocol::AwsQuery).err();
        let e = e
            .map(|e| (e.code.to_string(), e.message.unwrap_or_default()))
            .unwrap_or_default();
        assert_eq!(e.0, "ValidationError");
        assert!(
            e.1.starts_with("2 validation errors detected: Value '0' at 'maxResults'"),
            "{}",
            e.1
        );
        assert!(e.1.contains("; Value '99999' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200"));
    }
}
