//! Parameter names, ARNs and selectors (AWS Systems Manager User Guide, "Creating Parameter
//! Store parameters", "Working with parameter labels" and "Referencing AWS Secrets Manager
//! secrets from Parameter Store parameters").
//!
//! A name is stored under its *canonical* form — the name without its leading slash — so
//! that `/TestParam1` and `TestParam1` are one parameter while `/Test/TestParam1` is another
//! (Systems Manager User Guide, "Parameter name requirements"), and the ARN is
//! `…:parameter/<canonical>`, never `parameter//a/b`. The name as the caller first created it
//! is kept in the record and echoed back.

use crate::errors::SsmError;
use tresor_core::RequestCtx;

use crate::errors;

/// The reserved path Parameter Store resolves through Secrets Manager (AWS Systems Manager
/// User Guide, "Referencing AWS Secrets Manager secrets from Parameter Store parameters").
pub const REFERENCE_PREFIX: &str = "/aws/reference/secretsmanager/";

/// At most this many hierarchy levels (botocore model, HierarchyLevelLimitExceededException).
pub const MAX_LEVELS: usize = 15;

/// The usable name length *including* the ARN prefix (PutParameter `Name` documentation).
pub const MAX_ARN_NAME_LEN: usize = 1011;

pub fn canonical(name: &str) -> &str {
    name.strip_prefix('/').unwrap_or(name)
}

pub fn arn(account: &str, region: &str, name: &str) -> String {
    // Joined in one allocation: the reference path builds this on every read.
    [
        "arn:",
        tresor_policy::arn::partition_of_region(region),
        ":ssm:",
        region,
        ":",
        account,
        ":parameter/",
        canonical(name),
    ]
    .concat()
}

/// The ARN of the caller's account and region for `name`.
pub fn arn_in(ctx: &RequestCtx, name: &str) -> String {
    arn(&ctx.caller.account, &ctx.region, name)
}

/// A version or label selector (`name:7`, `name:prod`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Version(i64),
    Label(String),
}

impl Selector {
    fn parse(text: &str) -> Selector {
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            // Too many digits for an i64 cannot name a retained version.
            Selector::Version(text.parse().unwrap_or(i64::MAX))
        } else {
            Selector::Label(text.to_string())
        }
    }
}

/// What a read names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Parameter {
        /// The name without selector (leading slash as given).
        name: String,
        selector: Option<Selector>,
        /// The selector as given, with its colon (`:7`), echoed in `Selector`.
        selector_text: Option<String>,
    },
    /// `/aws/reference/secretsmanager/<secret-id>[:<version id or staging label>]`.
    Reference {
        /// The reference path without selector (`Name` in the response).
        name: String,
        secret_id: String,
        selector: Option<String>,
    },
}

/// Checks the characters and the shape of a (trimmed, selector-free) name.
fn check_shape(name: &str) -> Result<(), SsmError> {
    if name.is_empty() {
        return Err(errors::invalid_name());
    }
    let valid_chars = name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'));
    if !valid_chars {
        return Err(errors::invalid_name());
    }
    if name.contains('/') {
        // A hierarchical name must be fully qualified: leading slash, no empty level, no
        // trailing slash (`MyParameter3/L1` is invalid).
        let Some(rest) = name.strip_prefix('/') else {
            return Err(errors::invalid_name());
        };
        if rest.split('/').any(str::is_empty) {
            return Err(errors::invalid_name());
        }
        if rest.split('/').count() > MAX_LEVELS {
            return Err(errors::hierarchy_too_deep());
        }
    }
    Ok(())
}

/// Trims the spaces AWS removes from both ends of a name (interior spaces stay and fail).
pub fn trim(raw: &str) -> &str {
    raw.trim_matches(' ')
}

fn starts_with_ci(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// A name for a write (PutParameter, DeleteParameter(s), labels, tags): no ARN, no
/// selector, not in the reserved `aws`/`ssm` namespaces. Returns the trimmed name.
pub fn write_name<'a>(ctx: &RequestCtx, raw: &'a str) -> Result<&'a str, SsmError> {
    let name = trim(raw);
    // Observed behavior: `aws…` names are refused as reserved, `/aws/reference/…` included;
    // `ssm…` names get the naming-rules text.
    if starts_with_ci(canonical(name), "aws") {
        return Err(errors::reserved_name(name));
    }
    check_shape(name)?;
    if starts_with_ci(canonical(name), "ssm") {
        return Err(errors::invalid_name());
    }
    if arn_in(ctx, name).len() > MAX_ARN_NAME_LEN {
        return Err(errors::validation(format!(
            "Parameter name: the name and the ARN prefix that precedes it can't exceed {MAX_ARN_NAME_LEN} characters."
        )));
    }
    Ok(name)
}

/// A name or ARN for a read, with an optional selector (GetParameter, GetParameters,
/// GetParameterHistory). A parameter ARN must be of the caller's account and region
/// (parameters shared through RAM are not supported): any other is not found.
pub fn read_target(ctx: &RequestCtx, raw: &str) -> Result<Target, SsmError> {
    let trimmed = trim(raw);
    let owned;
    let text = if trimmed.starts_with("arn:") {
        owned = name_of_arn(ctx, trimmed)?;
        owned.as_str()
    } else {
        trimmed
    };
    if let Some(rest) = text.strip_prefix(REFERENCE_PREFIX) {
        return reference_target(rest);
    }
    let mut parts = text.split(':');
    let name = parts.next().unwrap_or_default();
    let selector_text = parts.next();
    if parts.next().is_some() || selector_text == Some("") {
        return Err(errors::bad_selector());
    }
    check_shape(name)?;
    Ok(Target::Parameter {
        name: name.to_string(),
        selector: selector_text.map(Selector::parse),
        selector_text: selector_text.map(|s| [":", s].concat()),
    })
}

/// `arn:aws:ssm:<region>:<account>:parameter/<name>[:selector]` → `/<name>[:selector]`
/// (or `<name>` for a single-level name).
fn name_of_arn(ctx: &RequestCtx, arn: &str) -> Result<String, SsmError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [_, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(errors::invalid_name());
    };
    let Some(rest) = resource.strip_prefix("parameter/") else {
        return Err(errors::invalid_name());
    };
    if *partition != "aws" || *service != "ssm" || rest.is_empty() {
        return Err(errors::invalid_name());
    }
    if *region != ctx.region || *account != ctx.caller.account {
        return Err(errors::parameter_not_found());
    }
    let plain = rest.split(':').next().unwrap_or_default();
    Ok(if plain.contains('/') {
        format!("/{rest}")
    } else {
        rest.to_string()
    })
}

/// `<secret-id>[:<selector>]`; the secret id may contain `/`, the selector only letters,
/// digits, `.`, `-`, `_` (staging label characters); anything else — an extra colon (so a
/// secret ARN), an empty selector — is the malformed-reference error (its text has two
/// spaces, as moto has it: unconfirmed).
fn reference_target(rest: &str) -> Result<Target, SsmError> {
    let malformed = || {
        errors::validation(
            "Invalid parameter name. Please use correct syntax for referencing a version/label  <name>:<version/label>",
        )
    };
    let mut parts = rest.split(':');
    let secret_id = parts.next().unwrap_or_default();
    let selector = parts.next();
    if parts.next().is_some() || secret_id.is_empty() {
        return Err(malformed());
    }
    if let Some(s) = selector {
        let ok = !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !ok {
            return Err(malformed());
        }
    }
    Ok(Target::Reference {
        name: format!("{REFERENCE_PREFIX}{secret_id}"),
        secret_id: secret_id.to_string(),
        selector: selector.map(str::to_string),
    })
}

/// Whether a path lies in the reference namespace (refused by GetParametersByPath).
pub fn is_reference_path(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    format!("{p}/").starts_with(REFERENCE_PREFIX)
}

/// A GetParametersByPath / Path-filter path: `/` or a fully qualified hierarchy (a trailing
/// slash is tolerated). Returns the path without trailing slash (`/` stays `/`).
pub fn path(raw: &str) -> Result<String, SsmError> {
    let p = trim(raw);
    if p == "/" {
        return Ok("/".to_string());
    }
    if !p.starts_with('/') {
        return Err(errors::invalid_name());
    }
    let p = p.strip_suffix('/').unwrap_or(p);
    check_shape(p)?;
    Ok(p.to_string())
}

/// The canonical-key prefix of everything under `path` (`/` → ``, `/a/b` → `a/b/`).
pub fn path_prefix(path: &str) -> String {
    if path == "/" {
        String::new()
    } else {
        format!("{}/", canonical(path))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn canonical_form_and_arn_never_double_slash() {
        assert_eq!(canonical("/TestParam1"), canonical("TestParam1"));
        assert_ne!(canonical("/Test/TestParam1"), canonical("TestParam1"));
        assert_eq!(arn("1", "r", "/a/b"), "arn:aws:ssm:r:1:parameter/a/b");
        assert_eq!(arn("1", "r", "x"), "arn:aws:ssm:r:1:parameter/x");
        assert_eq!(
            arn("1", "cn-north-1", "/x"),
            "arn:aws-cn:ssm:cn-north-1:1:parameter/x"
        );
        assert_eq!(
            arn("1", "us-gov-west-1", "x"),
            "arn:aws-us-gov:ssm:us-gov-west-1:1:parameter/x"
        );
    }

    #[test]
    fn shapes() {
        for ok in ["x", "/x", "/a/b-c_d.e", "a.b"] {
            assert!(check_shape(ok).is_ok(), "{ok}");
        }
        for bad in ["MyParameter3/L1", "/a//b", "/a/", "a b", "/a@b", "/", ""] {
            assert!(check_shape(bad).is_err(), "{bad}");
        }
        let deep = format!("/{}", vec!["l"; 15].join("/"));
        assert!(check_shape(&deep).is_ok());
        let deeper = format!("/{}", vec!["l"; 16].join("/"));
        assert_eq!(
            check_shape(&deeper).unwrap_err().code(),
            "HierarchyLevelLimitExceededException"
        );
    }

    #[test]
    fn reference_parsing() {
        let t = reference_target("team/ci/token:AWSPREVIOUS").unwrap();
        assert_eq!(
            t,
            Target::Reference {
                name: "/aws/reference/secretsmanager/team/ci/token".into(),
                secret_id: "team/ci/token".into(),
                selector: Some("AWSPREVIOUS".into())
            }
        );
        for bad in [
            "x:",
            "x:a:b",
            "arn:aws:secretsmanager:us-east-1:1:secret:x",
            "x:a b",
            "",
        ] {
            let e = reference_target(bad).unwrap_err();
            assert!(
                e.message().unwrap_or_default().contains("label  <name>"),
                "{bad}"
            );
        }
        assert!(is_reference_path("/aws/reference/secretsmanager"));
        assert!(is_reference_path("/aws/reference/secretsmanager/x"));
        assert!(!is_reference_path("/aws/reference"));
    }

    #[test]
    fn paths() {
        assert_eq!(path("/").unwrap(), "/");
        assert_eq!(path("/a/b/").unwrap(), "/a/b");
        assert!(path("a/b").is_err());
        assert_eq!(path_prefix("/"), "");
        assert_eq!(path_prefix("/a/b"), "a/b/");
    }
}
