//! Rules on values: data types, `AllowedPattern`, tiers and sizes, tags (AWS Systems Manager
//! API Reference, PutParameter, and the botocore model's constraints).

use std::sync::LazyLock;

use crate::errors::SsmError;
use regex::Regex;
use tresor_wire::validate::Validator;

use crate::errors;
use crate::model::{ADVANCED_MAX_VALUE, STANDARD_MAX_VALUE, Tier};
use crate::shapes::Tag;

/// The data types the model lists for `DataType` (PutParameter documentation).
pub const DATA_TYPES: &[&str] = &[
    "text",
    "aws:ec2:image",
    "aws:ssm:integration",
    "aws:region",
    "aws:account:id",
    "boolean",
    "integer",
    "float",
    "binary",
    "hostname",
    "email",
    "ipv4-address",
    "ipv6-address",
    "url",
    "json",
    "jsonc",
];

/// The tag key/value pattern `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$` (botocore model).
static TAG_PATTERN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$").ok());

/// `aws:ec2:image`: an AMI id, `ami-` and 8 or 17 hexadecimal digits (Systems Manager User
/// Guide, "Native parameter support for Amazon Machine Image IDs").
static AMI_PATTERN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$").ok());

static REGION_PATTERN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^[a-z]{2}(-[a-z]+)+-\d$").ok());

fn matches(re: &LazyLock<Option<Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

/// Checks `DataType` and that the value fits it. The value is never echoed.
pub fn check_data_type(data_type: &str, param_type: &str, value: &str) -> Result<(), SsmError> {
    if !DATA_TYPES.contains(&data_type) {
        return Err(errors::validation(format!(
            "The following data type is not supported: {data_type} (Data type names are all lowercase.)"
        )));
    }
    if data_type == "aws:ec2:image" && param_type != "String" {
        return Err(errors::validation(
            "The aws:ec2:image data type is supported only for String type parameters.",
        ));
    }
    let ok = match data_type {
        "aws:ec2:image" => matches(&AMI_PATTERN, value),
        "aws:region" => matches(&REGION_PATTERN, value),
        "aws:account:id" => value.len() == 12 && value.bytes().all(|b| b.is_ascii_digit()),
        "boolean" => value == "true" || value == "false",
        "integer" => value.parse::<i64>().is_ok(),
        "float" => value.parse::<f64>().is_ok_and(f64::is_finite),
        "ipv4-address" => value.parse::<std::net::Ipv4Addr>().is_ok(),
        "ipv6-address" => value.parse::<std::net::Ipv6Addr>().is_ok(),
        "json" => serde_json::from_str::<serde_json::Value>(value).is_ok(),
        "email" => value
            .split_once('@')
            .is_some_and(|(a, b)| !a.is_empty() && b.contains('.')),
        "url" => value
            .split_once("://")
            .is_some_and(|(s, r)| !s.is_empty() && !r.is_empty()),
        "hostname" => {
            !value.is_empty()
                && value.len() <= 253
                && value.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        }
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        // Deliberate deviation: AWS validates aws:ec2:image asynchronously (AWS Systems Manager
        // User Guide, "Native parameter support for Amazon Machine Image IDs"); tresor refuses
        // at once.
        Err(errors::validation(format!(
            "The parameter value isn't valid for the {data_type} data type."
        )))
    }
}

/// Compiles an `AllowedPattern`. AWS evaluates Java regular expressions and requires the
/// whole value to match (`String.matches`), hence the anchors. Patterns the `regex` crate
/// cannot compile (look-around, back-references) are refused as invalid.
pub fn compile_pattern(pattern: &str) -> Result<Regex, SsmError> {
    Regex::new(&format!("^(?:{pattern})$")).map_err(|_| errors::invalid_allowed_pattern())
}

/// The tier a write ends up in (PutParameter `Tier` documentation): an explicit tier wins,
/// Intelligent-Tiering picks Advanced when the request needs it, no tier keeps the current
/// one (new parameters: the default tier, Standard). Advanced never goes back to Standard.
pub fn resolve_tier(
    requested: Option<&str>,
    current: Option<Tier>,
    value_len: usize,
    has_policies: bool,
    data_type: &str,
) -> Result<Tier, SsmError> {
    let needs_advanced = value_len > STANDARD_MAX_VALUE
        || has_policies
        || matches!(data_type, "url" | "json" | "jsonc");
    let tier = match requested {
        Some("Standard") => {
            if current == Some(Tier::Advanced) {
                // AWS's wording of the downgrade refusal (unconfirmed).
                return Err(errors::validation(
                    "This parameter uses the advanced-parameter tier. You can't downgrade a parameter from the advanced-parameter tier to the standard-parameter tier. If necessary, you can delete the advanced parameter and recreate it as a standard parameter.",
                ));
            }
            Tier::Standard
        }
        Some("Advanced") => Tier::Advanced,
        Some(_) => {
            if needs_advanced || current == Some(Tier::Advanced) {
                Tier::Advanced
            } else {
                Tier::Standard
            }
        }
        None => current.unwrap_or(Tier::Standard),
    };
    if value_len > ADVANCED_MAX_VALUE {
        return Err(errors::validation(format!(
            "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length less than or equal to {ADVANCED_MAX_VALUE}"
        )));
    }
    if tier == Tier::Standard && value_len > STANDARD_MAX_VALUE {
        return Err(errors::validation(
            "Standard tier parameters support a maximum parameter value of 4096 characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier. For more information, see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html",
        ));
    }
    if tier == Tier::Standard && has_policies {
        return Err(errors::validation(
            "Parameter policies are supported only for the advanced-parameter tier. Use the advanced tier or remove the policies.",
        ));
    }
    Ok(tier)
}

/// Model constraints of a tag list (`Tags` of PutParameter and AddTagsToResource). More
/// tags than a parameter can hold (50) are `TooManyTagsError`, answered before any tag is
/// looked at, so an oversized list costs no more than its parsing.
pub fn check_tags(v: &mut Validator, tags: &[Tag]) -> Result<(), SsmError> {
    if tags.len() > crate::model::MAX_TAGS {
        return Err(errors::too_many_tags());
    }
    for (i, t) in tags.iter().enumerate() {
        let (k, val) = (t.key.as_str(), t.value.as_str());
        let n = i + 1;
        v.length(&format!("Tags.{n}.member.Key"), Some(k), 1, 128);
        v.length(&format!("Tags.{n}.member.Value"), Some(val), 0, 256);
        for (what, s) in [("Key", k), ("Value", val)] {
            if !matches(&TAG_PATTERN, s) {
                v.fail(
                    &format!("Tags.{n}.member.{what}"),
                    Some(s),
                    r"Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$",
                );
            }
        }
    }
    Ok(())
}

/// `TagKeys` of RemoveTagsFromResource: each key 1–128 characters of the tag pattern. A
/// parameter holds at most 50 tags, so a longer list is refused before any key is looked
/// at; the keys are not quoted back.
pub fn check_tag_keys(v: &mut Validator, keys: &[String]) -> Result<(), SsmError> {
    let max = crate::model::MAX_TAGS;
    if keys.len() > max {
        return Err(errors::validation(format!(
            "1 validation error detected: Value at 'tagKeys' failed to satisfy constraint: Member must have length less than or equal to {max}"
        )));
    }
    for (i, k) in keys.iter().enumerate() {
        let member = format!("TagKeys.{}.member", i + 1);
        v.length(&member, Some(k), 1, 128);
        if !matches(&TAG_PATTERN, k) {
            v.fail(
                &member,
                Some(k),
                r"Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$",
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn data_types() {
        assert!(check_data_type("text", "String", "anything").is_ok());
        assert!(check_data_type("aws:ec2:image", "String", "ami-0123456789abcdef0").is_ok());
        assert!(check_data_type("aws:ec2:image", "String", "ami-12345678").is_ok());
        assert!(check_data_type("aws:ec2:image", "String", "not-an-ami").is_err());
        assert!(check_data_type("aws:ec2:image", "SecureString", "ami-12345678").is_err());
        assert!(check_data_type("Text", "String", "x").is_err());
        assert!(check_data_type("integer", "String", "443").is_ok());
        assert!(check_data_type("integer", "String", "x").is_err());
    }

    #[test]
    fn patterns_match_whole_values() {
        let re = compile_pattern(r"\d+").unwrap();
        assert!(re.is_match("123"));
        assert!(!re.is_match("12a"));
        assert!(compile_pattern("(").is_err());
        assert!(compile_pattern("(?=x)").is_err());
    }

    #[test]
    fn tiers() {
        assert_eq!(
            resolve_tier(None, None, 10, false, "text").unwrap(),
            Tier::Standard
        );
        assert_eq!(
            resolve_tier(None, Some(Tier::Advanced), 10, false, "text").unwrap(),
            Tier::Advanced
        );
        assert_eq!(
            resolve_tier(Some("Intelligent-Tiering"), None, 5000, false, "text").unwrap(),
            Tier::Advanced
        );
        assert_eq!(
            resolve_tier(Some("Intelligent-Tiering"), None, 50, false, "text").unwrap(),
            Tier::Standard
        );
        assert!(resolve_tier(Some("Standard"), Some(Tier::Advanced), 5, false, "text").is_err());
        assert!(resolve_tier(Some("Standard"), None, 5000, false, "text").is_err());
        assert!(resolve_tier(None, None, 10, true, "text").is_err());
        assert!(resolve_tier(Some("Advanced"), None, 9000, false, "text").is_err());
    }
}
