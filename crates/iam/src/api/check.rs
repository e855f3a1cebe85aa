//! Input validation: AWS's constraint wording through `Validator` (names, paths, lengths,
//! ranges, enumerations) and IAM's tag lists.

use tresor_wire::Protocol;
use tresor_wire::validate::Validator;

use super::errors::invalid_input;
use crate::error::IamError;
use crate::shapes::TagInput;

const NAME_PATTERN: &str = r"[\w+=,.@-]+";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '=' | ',' | '.' | '@' | '-')
}

/// Collects violations of one request's constraints.
#[derive(Default)]
pub(crate) struct Check(Validator);

impl Check {
    pub(crate) fn new() -> Self {
        Check(Validator::new())
    }

    /// An entity or policy name: `[\w+=,.@-]+`, 1..=max characters.
    pub(crate) fn name(&mut self, member: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            let before = self.0.is_empty();
            self.0.length(member, Some(v), 1, max);
            if before == self.0.is_empty() && !v.chars().all(is_name_char) {
                self.pattern(member, v, NAME_PATTERN);
            }
        }
    }

    /// `(\u002F)|(\u002F[\u0021-\u007E]+\u002F)`, 1–512.
    pub(crate) fn path(&mut self, member: &str, value: Option<&str>) {
        if let Some(v) = value {
            let ok = v == "/"
                || (v.len() >= 2
                    && v.starts_with('/')
                    && v.ends_with('/')
                    && v.chars().all(|c| ('\u{21}'..='\u{7e}').contains(&c)));
            if v.is_empty() || v.chars().count() > 512 {
                self.0.length(member, Some(v), 1, 512);
            } else if !ok {
                self.pattern(member, v, r"(\u002F)|(\u002F[\u0021-\u007E]+\u002F)");
            }
        }
    }

    /// `\u002F[\u0021-\u007F]*`, 1–512.
    pub(crate) fn path_prefix(&mut self, member: &str, value: Option<&str>) {
        if let Some(v) = value {
            if v.is_empty() || v.chars().count() > 512 {
                self.0.length(member, Some(v), 1, 512);
            } else if !(v.starts_with('/') && v.chars().all(|c| ('\u{21}'..='\u{7f}').contains(&c)))
            {
                self.pattern(member, v, r"\u002F[\u0021-\u007F]*");
            }
        }
    }

    /// Managed policy paths: `((/[A-Za-z0-9\.,\+@=_-]+)*)/`, 1–512.
    pub(crate) fn policy_path(&mut self, member: &str, value: Option<&str>) {
        if let Some(v) = value {
            let ok = v.starts_with('/')
                && v.ends_with('/')
                && !v.contains("//")
                && v.chars()
                    .all(|c| c == '/' || c.is_ascii_alphanumeric() || ".,+@=_-".contains(c));
            if v.is_empty() || v.chars().count() > 512 {
                self.0.length(member, Some(v), 1, 512);
            } else if !ok {
                self.pattern(member, v, r"((/[A-Za-z0-9\.,\+@=_-]+)*)/");
            }
        }
    }

    pub(crate) fn length(&mut self, member: &str, value: Option<&str>, min: usize, max: usize) {
        self.0.length(member, value, min, max);
    }

    pub(crate) fn range(&mut self, member: &str, value: Option<i64>, min: i64, max: i64) {
        self.0.range(member, value, min, max);
    }

    pub(crate) fn pattern(&mut self, member: &str, value: &str, pattern: &str) {
        self.0.fail(
            member,
            Some(value),
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        );
    }

    pub(crate) fn enumeration(&mut self, member: &str, value: Option<&str>, allowed: &[&str]) {
        if let Some(v) = value
            && !allowed.contains(&v)
        {
            self.0.fail(
                member,
                Some(v),
                &format!(
                    "Member must satisfy enum value set: [{}]",
                    allowed.join(", ")
                ),
            );
        }
    }

    pub(crate) fn fail(&mut self, member: &str, value: Option<&str>, constraint: &str) {
        self.0.fail(member, value, constraint);
    }

    pub(crate) fn finish(self) -> Result<(), IamError> {
        self.0.finish(Protocol::AwsQuery).map_err(IamError::from)
    }
}

/// A tag list (`Tags.member.N.Key/Value`): ≤ 50 tags, keys 1–128, values 0–256, keys unique
/// case-insensitively.
pub(crate) fn check_tags(
    member: &str,
    raw: &[TagInput],
) -> Result<Vec<(String, String)>, IamError> {
    let mut check = Check::new();
    if raw.len() > 50 {
        check.fail(
            member,
            Some(&format!("{} tags", raw.len())),
            "Member must have length less than or equal to 50",
        );
    }
    let mut tags = Vec::with_capacity(raw.len());
    for (i, m) in raw.iter().enumerate() {
        let field = format!("{member}.{}.member.key", i + 1);
        match m.key.as_deref() {
            None => check.fail(&field, None, "Member must not be null"),
            Some(k) => {
                check.length(&field, Some(k), 1, 128);
                check.length(
                    &format!("{member}.{}.member.value", i + 1),
                    Some(&m.value),
                    0,
                    256,
                );
                tags.push((k.to_string(), m.value.clone()));
            }
        }
    }
    check.finish()?;
    let mut seen: Vec<String> = tags.iter().map(|(k, _)| k.to_lowercase()).collect();
    seen.sort();
    if seen.windows(2).any(|w| w[0] == w[1]) {
        return Err(invalid_input(
            "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
        ));
    }
    Ok(tags)
}

/// Adds or replaces `new` tags in `tags` (keys compared case-insensitively, as IAM does).
pub(crate) fn merge_tags(tags: &mut Vec<(String, String)>, new: Vec<(String, String)>) {
    for (k, v) in new {
        match tags.iter_mut().find(|(ek, _)| ek.eq_ignore_ascii_case(&k)) {
            Some(slot) => *slot = (k, v),
            None => tags.push((k, v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_wire::AwsError;

    #[test]
    fn names_and_paths_follow_the_model_patterns() {
        let mut c = Check::new();
        c.name("RoleName", Some("ok+=,.@-_9"), 64);
        c.path("Path", Some("/a/b/"));
        c.path("Path", Some("/"));
        assert!(c.finish().is_ok());
        let mut c = Check::new();
        c.name("RoleName", Some("bad name"), 64);
        let e = c.finish().err().map(AwsError::from);
        let m = e.and_then(|e| e.message).unwrap_or_default();
        assert!(m.contains("Value 'bad name' at 'roleName' failed to satisfy constraint: Member must satisfy regular expression pattern"), "{m}");
        let mut c = Check::new();
        c.path("Path", Some("/a"));
        assert!(c.finish().is_err());
    }
}
