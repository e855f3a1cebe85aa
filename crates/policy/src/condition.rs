//! The `Condition` element: operators resolved to enums and policy values parsed once at
//! compile time; evaluation against the request context.
//!
//! Rules (IAM User Guide, "IAM JSON policy elements: Condition operators" and "Condition
//! element", "Single-valued vs. multivalued context keys"):
//! - every operator block and every key in it must hold (AND); several values for one key are
//!   OR'ed, and for a negated operator the request value must match none of them;
//! - a missing key makes a positive operator false and a negated one true; `…IfExists` makes a
//!   missing key true; `Null` tests presence;
//! - `ForAnyValue:` needs at least one request value to match (false when the key is missing or
//!   empty); `ForAllValues:` needs every request value to match (true when missing or empty);
//! - policy variables are allowed in string and ARN operators only ("Where you can use policy
//!   variables").

use std::net::IpAddr;

use base64::Engine as _;
use ipnet::IpNet;

use crate::PolicyError;
use crate::context::{Env, KeyRef};
use crate::matcher::{Pattern, ResourceMatcher};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, request: T, policy: T) -> bool {
        match self {
            Cmp::Eq => request == policy,
            Cmp::Lt => request < policy,
            Cmp::Le => request <= policy,
            Cmp::Gt => request > policy,
            Cmp::Ge => request >= policy,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    StringEquals { ignore_case: bool },
    StringLike,
    Numeric(Cmp),
    Date(Cmp),
    Bool,
    Binary,
    Ip,
    Arn,
    Null,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetOp {
    Single,
    ForAllValues,
    ForAnyValue,
}

/// Policy values compiled for their operator family.
#[derive(Debug, Clone)]
enum PolicyValues {
    Patterns(Vec<Pattern>),
    Arns(Vec<ResourceMatcher>),
    Numbers(Vec<f64>),
    /// Unix nanoseconds.
    Dates(Vec<i128>),
    Bools(Vec<bool>),
    Binaries(Vec<Vec<u8>>),
    Nets(Vec<IpNet>),
    /// `true` = "the key must be absent".
    Null(Vec<bool>),
}

/// One `operator: { key: values }` entry.
#[derive(Debug, Clone)]
pub(crate) struct Clause {
    family: Family,
    negated: bool,
    set: SetOp,
    if_exists: bool,
    key: KeyRef,
    values: PolicyValues,
    /// As written, for `Policy::to_json`.
    pub(crate) operator_text: String,
    pub(crate) key_text: String,
    pub(crate) value_texts: Vec<String>,
}

fn parse_operator(text: &str) -> Option<(Family, bool, SetOp, bool)> {
    let (set, rest) = if let Some(rest) = strip_prefix_ci(text, "ForAllValues:") {
        (SetOp::ForAllValues, rest)
    } else if let Some(rest) = strip_prefix_ci(text, "ForAnyValue:") {
        (SetOp::ForAnyValue, rest)
    } else {
        (SetOp::Single, text)
    };
    let (base, if_exists) = match rest.len().checked_sub("IfExists".len()) {
        Some(cut) if rest.is_char_boundary(cut) && rest[cut..].eq_ignore_ascii_case("IfExists") => {
            (&rest[..cut], true)
        }
        _ => (rest, false),
    };
    let lower = base.to_ascii_lowercase();
    let (family, negated) = match lower.as_str() {
        "stringequals" => (Family::StringEquals { ignore_case: false }, false),
        "stringnotequals" => (Family::StringEquals { ignore_case: false }, true),
        "stringequalsignorecase" => (Family::StringEquals { ignore_case: true }, false),
        "stringnotequalsignorecase" => (Family::StringEquals { ignore_case: true }, true),
        "stringlike" => (Family::StringLike, false),
        "stringnotlike" => (Family::StringLike, true),
        "numericequals" => (Family::Numeric(Cmp::Eq), false),
        "numericnotequals" => (Family::Numeric(Cmp::Eq), true),
        "numericlessthan" => (Family::Numeric(Cmp::Lt), false),
        "numericlessthanequals" => (Family::Numeric(Cmp::Le), false),
        "numericgreaterthan" => (Family::Numeric(Cmp::Gt), false),
        "numericgreaterthanequals" => (Family::Numeric(Cmp::Ge), false),
        "dateequals" => (Family::Date(Cmp::Eq), false),
        "datenotequals" => (Family::Date(Cmp::Eq), true),
        "datelessthan" => (Family::Date(Cmp::Lt), false),
        "datelessthanequals" => (Family::Date(Cmp::Le), false),
        "dategreaterthan" => (Family::Date(Cmp::Gt), false),
        "dategreaterthanequals" => (Family::Date(Cmp::Ge), false),
        "bool" => (Family::Bool, false),
        "binaryequals" => (Family::Binary, false),
        "ipaddress" => (Family::Ip, false),
        "notipaddress" => (Family::Ip, true),
        "arnequals" | "arnlike" => (Family::Arn, false),
        "arnnotequals" | "arnnotlike" => (Family::Arn, true),
        "null" => (Family::Null, false),
        _ => return None,
    };
    // `Null` is already a presence test: no IfExists or set qualifier on it.
    if family == Family::Null && (if_exists || set != SetOp::Single) {
        return None;
    }
    Some((family, negated, set, if_exists))
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Condition keys need a vendor prefix (`aws:`, `kms:` …). AWS's message for a missing one.
pub(crate) const VENDOR_MESSAGE: &str =
    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.";

impl Clause {
    /// Calls `f` with the clause's condition key and the key of each policy variable in its
    /// values.
    pub(crate) fn for_each_key(&self, f: &mut dyn FnMut(&KeyRef)) {
        f(&self.key);
        match &self.values {
            PolicyValues::Patterns(ps) => ps.iter().for_each(|p| p.for_each_key(f)),
            PolicyValues::Arns(ms) => ms.iter().for_each(|m| m.for_each_key(f)),
            PolicyValues::Numbers(_)
            | PolicyValues::Dates(_)
            | PolicyValues::Bools(_)
            | PolicyValues::Binaries(_)
            | PolicyValues::Nets(_)
            | PolicyValues::Null(_) => {}
        }
    }

    pub(crate) fn compile(
        operator: &str,
        key: &str,
        value_texts: Vec<String>,
        variables: bool,
    ) -> Result<Clause, PolicyError> {
        let (family, negated, set, if_exists) = parse_operator(operator).ok_or_else(|| {
            PolicyError::malformed(format!("Invalid Condition type : {operator}"))
        })?;
        match key.split_once(':') {
            Some((vendor, name)) if !vendor.is_empty() && !name.is_empty() => {}
            _ => return Err(PolicyError::malformed(VENDOR_MESSAGE)),
        }
        let bad = || PolicyError::syntax();
        let values = match family {
            Family::StringEquals { .. } => PolicyValues::Patterns(
                value_texts
                    .iter()
                    .map(|v| Pattern::compile(v, false, variables))
                    .collect(),
            ),
            Family::StringLike => PolicyValues::Patterns(
                value_texts
                    .iter()
                    .map(|v| Pattern::compile(v, true, variables))
                    .collect(),
            ),
            Family::Arn => PolicyValues::Arns(
                value_texts
                    .iter()
                    .map(|v| ResourceMatcher::compile(v, variables))
                    .collect(),
            ),
            Family::Numeric(_) => PolicyValues::Numbers(
                value_texts
                    .iter()
                    .map(|v| parse_number(v).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            ),
            Family::Date(_) => PolicyValues::Dates(
                value_texts
                    .iter()
                    .map(|v| parse_date(v).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            ),
            Family::Bool => PolicyValues::Bools(
                value_texts
                    .iter()
                    .map(|v| parse_bool(v).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            ),
            Family::Null => PolicyValues::Null(
                value_texts
                    .iter()
                    .map(|v| parse_bool(v).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            ),
            Family::Binary => PolicyValues::Binaries(
                value_texts
                    .iter()
                    .map(|v| decode_base64(v).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            ),
            Family::Ip => PolicyValues::Nets(
                value_texts
                    .iter()
                    .map(|v| parse_net(v).ok_or_else(bad))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Clause {
            family,
            negated,
            set,
            if_exists,
            key: KeyRef::new(key),
            values,
            operator_text: operator.to_owned(),
            key_text: key.to_owned(),
            value_texts,
        })
    }

    pub(crate) fn has_variables(&self) -> bool {
        match &self.values {
            PolicyValues::Patterns(p) => p.iter().any(Pattern::has_variables),
            PolicyValues::Arns(a) => a.iter().any(ResourceMatcher::has_variables),
            _ => false,
        }
    }

    pub(crate) fn evaluate(&self, env: &Env<'_>) -> bool {
        let request = env.lookup(&self.key).filter(|v| !v.is_empty());
        if let PolicyValues::Null(wants_absent) = &self.values {
            let absent = request.is_none();
            return wants_absent.contains(&absent);
        }
        let Some(request) = request else {
            if self.if_exists {
                return true;
            }
            return match self.set {
                SetOp::ForAllValues => true,
                SetOp::ForAnyValue => false,
                SetOp::Single => self.negated,
            };
        };
        let single = |v: &str| self.any_value_matches(v, env) != self.negated;
        match (self.set, self.negated) {
            (SetOp::ForAllValues, _) | (SetOp::Single, true) => request.iter().all(single),
            (SetOp::ForAnyValue, _) | (SetOp::Single, false) => request.iter().any(single),
        }
    }

    /// Does one request value match at least one policy value (before negation)?
    fn any_value_matches(&self, value: &str, env: &Env<'_>) -> bool {
        match (&self.values, self.family) {
            (PolicyValues::Patterns(patterns), Family::StringEquals { ignore_case }) => {
                patterns.iter().any(|p| p.matches(value, ignore_case, env))
            }
            (PolicyValues::Patterns(patterns), _) => {
                patterns.iter().any(|p| p.matches(value, false, env))
            }
            (PolicyValues::Arns(arns), _) => arns.iter().any(|a| a.matches(value, env)),
            (PolicyValues::Numbers(numbers), Family::Numeric(cmp)) => {
                parse_number(value).is_some_and(|v| numbers.iter().any(|&n| cmp.holds(v, n)))
            }
            (PolicyValues::Dates(dates), Family::Date(cmp)) => {
                parse_date(value).is_some_and(|v| dates.iter().any(|&d| cmp.holds(v, d)))
            }
            (PolicyValues::Bools(bools), _) => {
                parse_bool(value).is_some_and(|v| bools.contains(&v))
            }
            (PolicyValues::Binaries(binaries), _) => {
                decode_base64(value).is_some_and(|v| binaries.contains(&v))
            }
            (PolicyValues::Nets(nets), _) => value
                .parse::<IpAddr>()
                .is_ok_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            _ => false,
        }
    }
}

fn parse_number(text: &str) -> Option<f64> {
    let n: f64 = text.trim().parse().ok()?;
    n.is_finite().then_some(n)
}

fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

fn parse_net(text: &str) -> Option<IpNet> {
    text.parse::<IpNet>()
        .ok()
        .or_else(|| text.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Date condition values: ISO-8601 (W3C profile: full timestamps with zone, timestamps without
/// zone taken as UTC, bare dates) or epoch seconds. Source: IAM User Guide, "Condition
/// operators", Date condition operators ("W3C implementations of the ISO 8601 date formats"
/// or epoch time).
pub(crate) fn parse_date(text: &str) -> Option<i128> {
    use time::format_description::well_known::Rfc3339;
    use time::macros::format_description;
    use time::{Date, OffsetDateTime, PrimitiveDateTime};
    let text = text.trim();
    if let Ok(seconds) = text.parse::<i64>() {
        return Some(i128::from(seconds) * 1_000_000_000);
    }
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    let without_z = text.strip_suffix('Z').unwrap_or(text);
    for format in [
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]"),
        format_description!("[year]-[month]-[day]T[hour]:[minute]"),
    ] {
        if let Ok(t) = PrimitiveDateTime::parse(without_z, format) {
            return Some(t.assume_utc().unix_timestamp_nanos());
        }
    }
    Date::parse(text, format_description!("[year]-[month]-[day]"))
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::context::{Context, Principal};

    fn eval(op: &str, key: &str, values: &[&str], ctx: &Context) -> bool {
        let p = Principal::user("111122223333", "alice", "AIDAALICEEXAMPLE12345")
            .with_tag("team", "blue");
        let clause = Clause::compile(
            op,
            key,
            values.iter().map(|s| (*s).to_owned()).collect(),
            true,
        )
        .unwrap();
        clause.evaluate(&Env {
            principal: &p,
            context: ctx,
        })
    }

    fn one(key: &str, value: &str) -> Context {
        Context::new().with(key, value)
    }

    /// One row per operator family × (match, mismatch, missing key).
    /// Source: IAM User Guide, "IAM JSON policy elements: Condition operators".
    #[test]
    fn operator_families() {
        let empty = Context::new();
        let rows: &[(&str, &str, &[&str], Context, bool)] = &[
            // String
            ("StringEquals", "k:s", &["abc"], one("k:s", "abc"), true),
            ("StringEquals", "k:s", &["abc"], one("k:s", "ABC"), false),
            ("StringEquals", "k:s", &["a*"], one("k:s", "abc"), false),
            (
                "StringEquals",
                "k:s",
                &["x", "abc"],
                one("k:s", "abc"),
                true,
            ),
            ("StringEquals", "k:s", &["abc"], empty.clone(), false),
            ("StringNotEquals", "k:s", &["abc"], one("k:s", "abd"), true),
            (
                "StringNotEquals",
                "k:s",
                &["x", "abc"],
                one("k:s", "abc"),
                false,
            ),
            ("StringNotEquals", "k:s", &["abc"], empty.clone(), true),
            (
                "StringEqualsIgnoreCase",
                "k:s",
                &["ABC"],
                one("k:s", "abc"),
                true,
            ),
            (
                "StringNotEqualsIgnoreCase",
                "k:s",
                &["ABC"],
                one("k:s", "abc"),
                false,
            ),
            ("StringLike", "k:s", &["a*c"], one("k:s", "abbbc"), true),
            ("StringLike", "k:s", &["a?c"], one("k:s", "abbc"), false),
            ("StringNotLike", "k:s", &["a*"], one("k:s", "bcd"), true),
            ("StringNotLike", "k:s", &["a*"], empty.clone(), true),
            ("StringLikeIfExists", "k:s", &["a*"], empty.clone(), true),
            ("StringLikeIfExists", "k:s", &["a*"], one("k:s", "b"), false),
            // Numeric
            ("NumericEquals", "k:n", &["10"], one("k:n", "10.0"), true),
            ("NumericNotEquals", "k:n", &["10"], one("k:n", "11"), true),
            ("NumericLessThan", "k:n", &["10"], one("k:n", "9"), true),
            ("NumericLessThan", "k:n", &["10"], one("k:n", "10"), false),
            (
                "NumericLessThanEquals",
                "k:n",
                &["10"],
                one("k:n", "10"),
                true,
            ),
            ("NumericGreaterThan", "k:n", &["10"], one("k:n", "11"), true),
            (
                "NumericGreaterThanEquals",
                "k:n",
                &["10"],
                one("k:n", "9"),
                false,
            ),
            ("NumericLessThan", "k:n", &["10"], one("k:n", "abc"), false),
            ("NumericLessThan", "k:n", &["10"], empty.clone(), false),
            ("NumericNotEquals", "k:n", &["10"], empty.clone(), true),
            (
                "NumericLessThanIfExists",
                "k:n",
                &["10"],
                empty.clone(),
                true,
            ),
            // Date (ISO-8601 and epoch on either side)
            (
                "DateLessThan",
                "aws:CurrentTime",
                &["2030-01-01T00:00:00Z"],
                one("aws:CurrentTime", "2029-12-31T23:59:59Z"),
                true,
            ),
            (
                "DateGreaterThan",
                "aws:CurrentTime",
                &["2030-01-01"],
                one("aws:CurrentTime", "2029-12-31T23:59:59Z"),
                false,
            ),
            (
                "DateEquals",
                "aws:EpochTime",
                &["1700000000"],
                one("aws:EpochTime", "2023-11-14T22:13:20Z"),
                true,
            ),
            (
                "DateNotEquals",
                "aws:EpochTime",
                &["1700000000"],
                one("aws:EpochTime", "1700000001"),
                true,
            ),
            (
                "DateLessThanEquals",
                "k:d",
                &["2023-11-14T22:13:20+00:00"],
                one("k:d", "1700000000"),
                true,
            ),
            (
                "DateGreaterThanEquals",
                "k:d",
                &["2023-11-14T22:13:20"],
                one("k:d", "1700000000"),
                true,
            ),
            ("DateLessThan", "k:d", &["2023-11-14"], empty.clone(), false),
            ("DateNotEquals", "k:d", &["2023-11-14"], empty.clone(), true),
            // Bool
            (
                "Bool",
                "aws:SecureTransport",
                &["true"],
                one("aws:SecureTransport", "true"),
                true,
            ),
            (
                "Bool",
                "aws:SecureTransport",
                &["false"],
                one("aws:SecureTransport", "true"),
                false,
            ),
            (
                "Bool",
                "aws:SecureTransport",
                &["false"],
                empty.clone(),
                false,
            ),
            (
                "BoolIfExists",
                "aws:SecureTransport",
                &["false"],
                empty.clone(),
                true,
            ),
            // Binary
            (
                "BinaryEquals",
                "k:b",
                &["QmluYXJ5"],
                one("k:b", "QmluYXJ5"),
                true,
            ),
            (
                "BinaryEquals",
                "k:b",
                &["QmluYXJ5"],
                one("k:b", "QmluYXJ6"),
                false,
            ),
            // IP v4 and v6, CIDR and single address
            (
                "IpAddress",
                "aws:SourceIp",
                &["10.0.0.0/8"],
                one("aws:SourceIp", "10.1.2.3"),
                true,
            ),
            (
                "IpAddress",
                "aws:SourceIp",
                &["10.0.0.0/8"],
                one("aws:SourceIp", "11.1.2.3"),
                false,
            ),
            (
                "IpAddress",
                "aws:SourceIp",
                &["192.0.2.7"],
                one("aws:SourceIp", "192.0.2.7"),
                true,
            ),
            (
                "IpAddress",
                "aws:SourceIp",
                &["2001:db8::/32"],
                one("aws:SourceIp", "2001:db8::1"),
                true,
            ),
            (
                "NotIpAddress",
                "aws:SourceIp",
                &["10.0.0.0/8"],
                one("aws:SourceIp", "11.1.2.3"),
                true,
            ),
            (
                "NotIpAddress",
                "aws:SourceIp",
                &["10.0.0.0/8"],
                empty.clone(),
                true,
            ),
            (
                "IpAddress",
                "aws:SourceIp",
                &["10.0.0.0/8"],
                empty.clone(),
                false,
            ),
            // ARN
            (
                "ArnLike",
                "aws:SourceArn",
                &["arn:aws:lambda:*:111122223333:function:rot-*"],
                one(
                    "aws:SourceArn",
                    "arn:aws:lambda:eu-west-1:111122223333:function:rot-a",
                ),
                true,
            ),
            (
                "ArnEquals",
                "aws:SourceArn",
                &["arn:aws:lambda:*:111122223333:function:rot-*"],
                one(
                    "aws:SourceArn",
                    "arn:aws:lambda:eu-west-1:999999999999:function:rot-a",
                ),
                false,
            ),
            (
                "ArnNotLike",
                "aws:SourceArn",
                &["arn:aws:s3:::*"],
                one("aws:SourceArn", "arn:aws:sqs:r:1:q"),
                true,
            ),
            (
                "ArnNotEquals",
                "aws:SourceArn",
                &["arn:aws:s3:::*"],
                empty.clone(),
                true,
            ),
            (
                "ArnLike",
                "aws:SourceArn",
                &["arn:aws:s3:::*"],
                one("aws:SourceArn", "not-an-arn"),
                false,
            ),
            // Null
            ("Null", "aws:TokenIssueTime", &["true"], empty.clone(), true),
            (
                "Null",
                "aws:TokenIssueTime",
                &["true"],
                one("aws:TokenIssueTime", "x"),
                false,
            ),
            (
                "Null",
                "aws:TokenIssueTime",
                &["false"],
                one("aws:TokenIssueTime", "x"),
                true,
            ),
            (
                "Null",
                "aws:TokenIssueTime",
                &["false"],
                empty.clone(),
                false,
            ),
            // Case-insensitive key names, derived keys, variables in values
            (
                "StringEquals",
                "AWS:USERNAME",
                &["alice"],
                empty.clone(),
                true,
            ),
            (
                "StringEquals",
                "aws:PrincipalTag/Team",
                &["blue"],
                empty.clone(),
                true,
            ),
            (
                "StringEquals",
                "k:owner",
                &["${aws:username}"],
                one("k:owner", "alice"),
                true,
            ),
            (
                "StringLike",
                "k:owner",
                &["${aws:PrincipalTag/team}-*"],
                one("k:owner", "blue-1"),
                true,
            ),
            (
                "StringEquals",
                "k:owner",
                &["${aws:PrincipalTag/none}"],
                one("k:owner", ""),
                false,
            ),
            (
                "StringEquals",
                "k:owner",
                &["${aws:PrincipalTag/none, 'x'}"],
                one("k:owner", "x"),
                true,
            ),
        ];
        for (i, (op, key, values, ctx, want)) in rows.iter().enumerate() {
            assert_eq!(
                eval(op, key, values, ctx),
                *want,
                "row {i}: {op} {key} {values:?}"
            );
        }
    }

    /// Source: IAM User Guide, "Single-valued vs. multivalued context keys".
    #[test]
    fn set_operators() {
        let tags = |v: &[&str]| Context::new().with_values("aws:TagKeys", v.iter().copied());
        let empty = Context::new();
        let rows: &[(&str, &[&str], Context, bool)] = &[
            ("ForAllValues:StringEquals", &["a", "b"], tags(&["a"]), true),
            (
                "ForAllValues:StringEquals",
                &["a", "b"],
                tags(&["a", "c"]),
                false,
            ),
            ("ForAllValues:StringEquals", &["a", "b"], tags(&[]), true),
            (
                "ForAllValues:StringEquals",
                &["a", "b"],
                empty.clone(),
                true,
            ),
            (
                "ForAnyValue:StringEquals",
                &["a", "b"],
                tags(&["c", "b"]),
                true,
            ),
            ("ForAnyValue:StringEquals", &["a", "b"], tags(&["c"]), false),
            ("ForAnyValue:StringEquals", &["a", "b"], tags(&[]), false),
            (
                "ForAnyValue:StringEquals",
                &["a", "b"],
                empty.clone(),
                false,
            ),
            (
                "ForAnyValue:StringEqualsIfExists",
                &["a"],
                empty.clone(),
                true,
            ),
            (
                "ForAllValues:StringNotEquals",
                &["a"],
                tags(&["b", "c"]),
                true,
            ),
            (
                "ForAllValues:StringNotEquals",
                &["a"],
                tags(&["b", "a"]),
                false,
            ),
            (
                "ForAnyValue:StringNotEquals",
                &["a"],
                tags(&["b", "a"]),
                true,
            ),
            (
                "ForAnyValue:StringLike",
                &["pre-*"],
                tags(&["x", "pre-1"]),
                true,
            ),
            // A single-valued operator on a multi-valued key: any value matches; negated: none.
            ("StringEquals", &["a"], tags(&["b", "a"]), true),
            ("StringNotEquals", &["a"], tags(&["b", "a"]), false),
        ];
        for (i, (op, values, ctx, want)) in rows.iter().enumerate() {
            assert_eq!(eval(op, "aws:TagKeys", values, ctx), *want, "row {i}: {op}");
        }
    }

    #[test]
    fn invalid_operators_and_values_are_rejected() {
        let compile = |op: &str, key: &str, v: &str| {
            Clause::compile(op, key, vec![v.to_owned()], true).map(|_| ())
        };
        assert_eq!(
            compile("StringEqualz", "k:s", "a"),
            Err(PolicyError::Malformed(
                "Invalid Condition type : StringEqualz".into()
            ))
        );
        assert_eq!(
            compile("StringEquals", "nokey", "a"),
            Err(PolicyError::Malformed(VENDOR_MESSAGE.into()))
        );
        assert!(compile("NullIfExists", "k:s", "true").is_err());
        assert!(compile("ForAnyValue:Null", "k:s", "true").is_err());
        assert!(compile("NumericEquals", "k:n", "ten").is_err());
        assert!(compile("NumericEquals", "k:n", "NaN").is_err());
        assert!(compile("DateEquals", "k:d", "yesterday").is_err());
        assert!(compile("IpAddress", "k:i", "10.0.0.0/33").is_err());
        assert!(compile("Bool", "k:b", "yes").is_err());
        assert!(compile("BinaryEquals", "k:b", "!!").is_err());
        assert!(compile("stringequalsifexists", "k:s", "a").is_ok());
    }

    #[test]
    fn variables_are_literal_without_2012_version() {
        let p = Principal::user("111122223333", "alice", "AIDAALICEEXAMPLE12345");
        let ctx = one("k:owner", "${aws:username}");
        let clause = Clause::compile(
            "StringEquals",
            "k:owner",
            vec!["${aws:username}".into()],
            false,
        )
        .unwrap();
        assert!(clause.evaluate(&Env {
            principal: &p,
            context: &ctx,
        }));
    }
}
