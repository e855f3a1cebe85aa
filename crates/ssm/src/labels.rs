//! LabelParameterVersion and UnlabelParameterVersion (AWS Systems Manager User Guide, "Working
//! with parameter labels"; LabelParameterVersion
//! documentation in the model): a label lives on at most one version of a parameter, so
//! labeling another version moves it; a version holds at most 10 labels; labels that break
//! the rules are reported in `InvalidLabels`, not raised.

use crate::errors::SsmError;
use serde::{Deserialize, Serialize};
use tresor_core::{RequestCtx, Services};
use tresor_wire::validate::Validator;

use crate::access::{begin_authorized_write, load_authorized, save_and_commit};
use crate::errors;
use crate::model::MAX_LABELS_PER_VERSION;
use crate::names::{self, Target};

/// 1–100 characters of letters, digits, `.`, `-`, `_`; not starting with a digit, `aws` or
/// `ssm` (case-insensitive).
pub fn is_valid_label(label: &str) -> bool {
    let lower = label.to_ascii_lowercase();
    !label.is_empty()
        && label.len() <= 100
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !label.as_bytes()[0].is_ascii_digit()
        && !lower.starts_with("aws")
        && !lower.starts_with("ssm")
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LabelParameterVersionInput {
    pub name: String,
    pub parameter_version: Option<i64>,
    pub labels: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LabelParameterVersionOutput {
    pub invalid_labels: Vec<String>,
    pub parameter_version: i64,
}

fn validate(name: &str, labels: &[String]) -> Result<(), SsmError> {
    let mut v = Validator::new();
    v.length("Name", Some(name), 1, 2048);
    if labels.is_empty() {
        v.fail(
            "Labels",
            Some("[]"),
            "Member must have length greater than or equal to 1",
        );
    } else if labels.len() > 10 {
        v.fail(
            "Labels",
            None,
            "Member must have length less than or equal to 10",
        );
    }
    v.finish(tresor_wire::Protocol::AwsJson11)
        .map_err(crate::errors::from_validator)
}

/// Labels and tags take a name (or the parameter's ARN) without selector; names in the
/// reserved namespaces are refused like any other write.
pub fn target_name(ctx: &RequestCtx, raw: &str) -> Result<String, SsmError> {
    let trimmed = names::trim(raw);
    if trimmed.starts_with("arn:") {
        return match names::read_target(ctx, trimmed)? {
            Target::Parameter {
                name,
                selector: None,
                ..
            } => names::write_name(ctx, &name).map(str::to_string),
            Target::Reference { name, .. } => Err(errors::reserved_name(&name)),
            Target::Parameter { .. } => Err(errors::invalid_name()),
        };
    }
    names::write_name(ctx, trimmed).map(str::to_string)
}

pub fn label_parameter_version(
    services: &Services,
    ctx: &RequestCtx,
    input: LabelParameterVersionInput,
) -> Result<LabelParameterVersionOutput, SsmError> {
    validate(&input.name, &input.labels)?;
    let name = target_name(ctx, &input.name)?;
    let (txn, rec) = begin_authorized_write(services, |txn| {
        load_authorized(
            services,
            txn,
            ctx,
            "ssm:LabelParameterVersion",
            &name,
            vec![],
        )
    })?;
    let mut rec = rec.ok_or_else(errors::parameter_not_found)?;
    let version = input.parameter_version.unwrap_or(rec.version);
    if version < rec.oldest_version || version > rec.version {
        return Err(errors::version_not_found(&rec.name, version));
    }
    let mut invalid = Vec::new();
    for label in &input.labels {
        if is_valid_label(label) {
            rec.labels.insert(label.clone(), version);
        } else if !invalid.contains(label) {
            invalid.push(label.clone());
        }
    }
    if rec.labels_of(version).len() > MAX_LABELS_PER_VERSION {
        return Err(errors::label_limit());
    }
    save_and_commit(txn, ctx, &name, &rec)?;
    Ok(LabelParameterVersionOutput {
        invalid_labels: invalid,
        parameter_version: version,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnlabelParameterVersionInput {
    pub name: String,
    pub parameter_version: i64,
    pub labels: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct UnlabelParameterVersionOutput {
    pub removed_labels: Vec<String>,
    pub invalid_labels: Vec<String>,
}

pub fn unlabel_parameter_version(
    services: &Services,
    ctx: &RequestCtx,
    input: UnlabelParameterVersionInput,
) -> Result<UnlabelParameterVersionOutput, SsmError> {
    validate(&input.name, &input.labels)?;
    let name = target_name(ctx, &input.name)?;
    let (txn, rec) = begin_authorized_write(services, |txn| {
        load_authorized(
            services,
            txn,
            ctx,
            "ssm:UnlabelParameterVersion",
            &name,
            vec![],
        )
    })?;
    let mut rec = rec.ok_or_else(errors::parameter_not_found)?;
    let version = input.parameter_version;
    if version < rec.oldest_version || version > rec.version {
        return Err(errors::version_not_found(&rec.name, version));
    }
    let mut removed = Vec::new();
    let mut invalid = Vec::new();
    for label in &input.labels {
        if rec.labels.get(label) == Some(&version) {
            rec.labels.remove(label);
            removed.push(label.clone());
        } else if !removed.contains(label) && !invalid.contains(label) {
            invalid.push(label.clone());
        }
    }
    save_and_commit(txn, ctx, &name, &rec)?;
    Ok(UnlabelParameterVersionOutput {
        removed_labels: removed,
        invalid_labels: invalid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_rules() {
        for ok in ["prod", "Prod-1.x_y", "a"] {
            assert!(is_valid_label(ok), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "awsprod",
            "SSMx",
            "a b",
            "a/b",
            &"x".repeat(101),
        ] {
            assert!(!is_valid_label(bad), "{bad}");
        }
    }
}
