//! `ParameterStringFilter` (DescribeParameters, GetParametersByPath) and the deprecated
//! `ParametersFilter` (DescribeParameters `Filters`): validation with AWS's filter errors, and
//! matching against a parameter record (`ParameterStringFilter` documentation in the model).

use crate::errors::SsmError;
use serde::Deserialize;
use tresor_wire::validate::Validator;

use crate::errors;
use crate::model::ParameterRecord;
use crate::names;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParameterStringFilter {
    pub key: String,
    pub option: Option<String>,
    pub values: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ParametersFilter {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Equals,
    BeginsWith,
    Contains,
}

#[derive(Debug)]
enum Filter {
    Name(Op, Vec<String>),
    Type(Op, Vec<String>),
    KeyId(Op, Vec<String>),
    Path { recursive: bool, paths: Vec<String> },
    Tier(Vec<String>),
    DataType(Vec<String>),
    Tag(String, Op, Vec<String>),
    Label(Vec<String>),
}

/// Which operation the filters are for: the allowed keys differ.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Use {
    Describe,
    ByPath,
}

/// Validated filters, ready to match.
#[derive(Debug, Default)]
pub struct Filters(Vec<Filter>);

fn op_of(option: Option<&str>, valid: &[&str], default: Op) -> Result<Op, SsmError> {
    let Some(o) = option else {
        return Ok(default);
    };
    if !valid.contains(&o) {
        return Err(errors::invalid_filter_option(o, valid));
    }
    Ok(match o {
        "BeginsWith" => Op::BeginsWith,
        "Contains" => Op::Contains,
        _ => Op::Equals,
    })
}

const KEY_PATTERN: &str = "Member must satisfy regular expression pattern: ^(tag:.+|Name|Type|KeyId|Path|Label|Tier|DataType)$";

fn model_checks(v: &mut Validator, filters: &[ParameterStringFilter]) {
    for (i, f) in filters.iter().enumerate() {
        let n = i + 1;
        let member = format!("ParameterFilters.{n}.member.Key");
        v.length(&member, Some(&f.key), 1, 132);
        let known = matches!(
            f.key.as_str(),
            "Name" | "Type" | "KeyId" | "Path" | "Label" | "Tier" | "DataType"
        ) || f.key.strip_prefix("tag:").is_some_and(|k| !k.is_empty());
        if !known {
            v.fail(&member, Some(&f.key), KEY_PATTERN);
        }
        v.length(
            &format!("ParameterFilters.{n}.member.Option"),
            f.option.as_deref(),
            1,
            10,
        );
        if let Some(values) = &f.values {
            let member = format!("ParameterFilters.{n}.member.Values");
            if values.is_empty() {
                v.fail(
                    &member,
                    Some("[]"),
                    "Member must have length greater than or equal to 1",
                );
            } else if values.len() > 50 {
                v.fail(
                    &member,
                    None,
                    "Member must have length less than or equal to 50",
                );
            }
            for value in values {
                v.length(&format!("{member}.member"), Some(value), 1, 1024);
            }
        }
    }
}

fn required_values(f: &ParameterStringFilter) -> Result<Vec<String>, SsmError> {
    match &f.values {
        Some(v) if !v.is_empty() => Ok(v.clone()),
        // Unconfirmed: a filter other than tag:<key> needs values.
        _ => Err(SsmError::InvalidFilterValue(format!(
            "The following filter values are missing : null for filter key {}.",
            f.key
        ))),
    }
}

impl Filters {
    /// Validates `ParameterStringFilter`s for `usage` (model constraints first, then AWS's
    /// key/option/value rules).
    pub fn parse(filters: &[ParameterStringFilter], usage: Use) -> Result<Filters, SsmError> {
        let mut v = Validator::new();
        model_checks(&mut v, filters);
        v.finish(tresor_wire::Protocol::AwsJson11)
            .map_err(crate::errors::from_validator)?;
        const EQ_BW: &[&str] = &["Equals", "BeginsWith"];
        let mut out = Vec::with_capacity(filters.len());
        for f in filters {
            let key = f.key.as_str();
            let option = f.option.as_deref();
            let filter = match (usage, key) {
                // GetParametersByPath accepts only Type, KeyId and Label (botocore model).
                (Use::ByPath, "Name" | "Path" | "Tier" | "DataType") => {
                    return Err(errors::invalid_filter_key());
                }
                (Use::ByPath, k) if k.starts_with("tag:") => {
                    return Err(errors::invalid_filter_key());
                }
                (Use::Describe, "Label") => return Err(errors::invalid_filter_key()),
                (_, "Label") => {
                    op_of(option, &["Equals"], Op::Equals)?;
                    Filter::Label(required_values(f)?)
                }
                (_, "Name") => Filter::Name(
                    op_of(option, &["Equals", "BeginsWith", "Contains"], Op::Equals)?,
                    required_values(f)?,
                ),
                (_, "Type") => {
                    let op = op_of(option, EQ_BW, Op::Equals)?;
                    let values = required_values(f)?;
                    if op == Op::Equals {
                        for t in &values {
                            if crate::model::ParameterType::parse(t).is_none() {
                                return Err(errors::invalid_filter_value(
                                    t,
                                    "[String, StringList, SecureString]",
                                ));
                            }
                        }
                    }
                    Filter::Type(op, values)
                }
                (_, "KeyId") => {
                    Filter::KeyId(op_of(option, EQ_BW, Op::Equals)?, required_values(f)?)
                }
                (_, "Path") => {
                    let recursive = match option {
                        None | Some("OneLevel") => false,
                        Some("Recursive") => true,
                        Some(o) => {
                            return Err(errors::invalid_filter_option(
                                o,
                                &["Recursive", "OneLevel"],
                            ));
                        }
                    };
                    let mut paths = Vec::new();
                    for p in required_values(f)? {
                        let path = names::path(&p).map_err(|_| {
                            SsmError::InvalidFilterValue(format!("The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\". Value: {p}"),
                            )
                        })?;
                        paths.push(path);
                    }
                    Filter::Path { recursive, paths }
                }
                (_, "Tier") => {
                    op_of(option, &["Equals"], Op::Equals)?;
                    let values = required_values(f)?;
                    for t in &values {
                        if !matches!(t.as_str(), "Standard" | "Advanced" | "Intelligent-Tiering") {
                            return Err(errors::invalid_filter_value(
                                t,
                                "[Standard, Advanced, Intelligent-Tiering]",
                            ));
                        }
                    }
                    Filter::Tier(values)
                }
                (_, "DataType") => {
                    op_of(option, &["Equals"], Op::Equals)?;
                    let values = required_values(f)?;
                    for d in &values {
                        if !crate::values::DATA_TYPES.contains(&d.as_str()) {
                            return Err(errors::invalid_filter_value(
                                d,
                                "[text, aws:ec2:image, aws:ssm:integration]",
                            ));
                        }
                    }
                    Filter::DataType(values)
                }
                (_, k) => {
                    let tag = k.strip_prefix("tag:").unwrap_or(k).to_string();
                    Filter::Tag(
                        tag,
                        op_of(option, EQ_BW, Op::Equals)?,
                        f.values.clone().unwrap_or_default(),
                    )
                }
            };
            out.push(filter);
        }
        Ok(Filters(out))
    }

    /// The deprecated `Filters` of DescribeParameters (keys `Name`, `Type`, `KeyId`; `Name`
    /// matches by prefix, the others exactly).
    pub fn parse_legacy(filters: &[ParametersFilter]) -> Result<Filters, SsmError> {
        let mut v = Validator::new();
        for (i, f) in filters.iter().enumerate() {
            let n = i + 1;
            if !matches!(f.key.as_str(), "Name" | "Type" | "KeyId") {
                v.fail(
                    &format!("Filters.{n}.member.Key"),
                    Some(&f.key),
                    "Member must satisfy enum value set: [Name, Type, KeyId]",
                );
            }
            if f.values.is_empty() {
                v.fail(
                    &format!("Filters.{n}.member.Values"),
                    Some("[]"),
                    "Member must have length greater than or equal to 1",
                );
            } else if f.values.len() > 50 {
                v.fail(
                    &format!("Filters.{n}.member.Values"),
                    None,
                    "Member must have length less than or equal to 50",
                );
            }
        }
        v.finish(tresor_wire::Protocol::AwsJson11)
            .map_err(crate::errors::from_validator)?;
        Ok(Filters(
            filters
                .iter()
                .map(|f| match f.key.as_str() {
                    "Name" => Filter::Name(Op::BeginsWith, f.values.clone()),
                    "Type" => Filter::Type(Op::Equals, f.values.clone()),
                    _ => Filter::KeyId(Op::Equals, f.values.clone()),
                })
                .collect(),
        ))
    }

    /// The labels a `Label` filter asks for, if there is one (GetParametersByPath returns
    /// the labeled version).
    pub fn labels(&self) -> Option<&[String]> {
        self.0.iter().find_map(|f| match f {
            Filter::Label(v) => Some(v.as_slice()),
            _ => None,
        })
    }

    pub fn matches(&self, rec: &ParameterRecord) -> bool {
        self.0.iter().all(|f| filter_matches(f, rec))
    }
}

fn op_matches(op: Op, have: &str, want: &str) -> bool {
    match op {
        Op::Equals => have == want,
        Op::BeginsWith => have.starts_with(want),
        Op::Contains => have.contains(want),
    }
}

/// `/x` for both `x` and `/x`: names compare in their fully qualified form.
fn qualified(name: &str) -> String {
    format!("/{}", names::canonical(name))
}

fn parent(qualified_name: &str) -> &str {
    match qualified_name.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &qualified_name[..i],
    }
}

fn filter_matches(f: &Filter, rec: &ParameterRecord) -> bool {
    match f {
        Filter::Name(op, values) => {
            let have = qualified(&rec.name);
            values.iter().any(|v| match op {
                Op::Contains => rec.name.contains(v.as_str()),
                _ => op_matches(*op, &have, &qualified(v)),
            })
        }
        Filter::Type(op, values) => values
            .iter()
            .any(|v| op_matches(*op, rec.param_type.as_str(), v)),
        Filter::KeyId(op, values) => rec
            .key_id
            .as_deref()
            .is_some_and(|k| values.iter().any(|v| op_matches(*op, k, v))),
        Filter::Path { recursive, paths } => {
            let have = qualified(&rec.name);
            paths.iter().any(|p| {
                if *recursive {
                    p == "/" || have.starts_with(&format!("{p}/"))
                } else {
                    parent(&have) == p
                }
            })
        }
        Filter::Tier(values) => values.iter().any(|v| v == rec.tier.as_str()),
        Filter::DataType(values) => values.contains(&rec.data_type),
        Filter::Tag(key, op, values) => rec.tags.iter().any(|(k, v)| {
            k == key && (values.is_empty() || values.iter().any(|want| op_matches(*op, v, want)))
        }),
        Filter::Label(values) => values.iter().any(|l| rec.labels.contains_key(l)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_paths() {
        assert_eq!(parent("/x"), "/");
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a/b/c"), "/a/b");
    }

    fn f(key: &str, option: Option<&str>, values: &[&str]) -> ParameterStringFilter {
        ParameterStringFilter {
            key: key.into(),
            option: option.map(Into::into),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn code(r: Result<Filters, SsmError>) -> String {
        r.err().map(|e| e.code().to_string()).unwrap_or_default()
    }

    #[test]
    fn filter_errors() {
        assert_eq!(
            code(Filters::parse(&[f("Name", None, &["/a"])], Use::ByPath)),
            "InvalidFilterKey"
        );
        assert_eq!(
            code(Filters::parse(&[f("tag:x", None, &["y"])], Use::ByPath)),
            "InvalidFilterKey"
        );
        assert_eq!(
            code(Filters::parse(&[f("Label", None, &["y"])], Use::Describe)),
            "InvalidFilterKey"
        );
        assert_eq!(
            code(Filters::parse(
                &[f("Label", Some("BeginsWith"), &["y"])],
                Use::ByPath
            )),
            "InvalidFilterOption"
        );
        assert_eq!(
            code(Filters::parse(
                &[f("Type", Some("Contains"), &["String"])],
                Use::Describe
            )),
            "InvalidFilterOption"
        );
        assert_eq!(
            code(Filters::parse(&[f("Type", None, &["Nope"])], Use::Describe)),
            "InvalidFilterValue"
        );
        assert_eq!(
            code(Filters::parse(
                &[f("Path", Some("Deep"), &["/a"])],
                Use::Describe
            )),
            "InvalidFilterOption"
        );
        assert_eq!(
            code(Filters::parse(&[f("Path", None, &["a"])], Use::Describe)),
            "InvalidFilterValue"
        );
        assert_eq!(
            code(Filters::parse(&[f("Bogus", None, &["a"])], Use::Describe)),
            "ValidationException"
        );
        assert!(Filters::parse(&[f("Name", Some("Contains"), &["a"])], Use::Describe).is_ok());
    }
}
