//! Policy documents: parse and validate JSON text into a compiled [`Policy`], serialize it back
//! in a canonical form, and rewrite `AWS` principals in place (principal capture).
//!
//! Validation follows the IAM policy grammar (IAM User Guide, "Grammar of the IAM JSON policy
//! language" and "IAM JSON policy element reference") with the per-kind rules IAM, KMS and
//! Secrets Manager apply: identity policies may not name a principal; resource, key and trust
//! policies must; trust policies may not have `Resource`. Messages are AWS's where known.
//! This module does no evaluation.

use std::sync::Arc;

use serde_json::{Map, Value};

use crate::PolicyError;
use crate::condition::{Clause, VENDOR_MESSAGE};
use crate::context::KeyRef;
use crate::matcher::{Pattern, ResourceMatcher};
use crate::principal::PrincipalPattern;

/// Where a policy document is used; decides which elements are required or forbidden and the
/// size quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyKind {
    /// IAM managed or inline policy attached to a user, group or role.
    Identity,
    /// Secrets Manager secret policy (and other generic resource policies).
    Resource,
    /// Role trust policy (`AssumeRolePolicyDocument`).
    Trust,
    /// KMS key policy.
    KeyPolicy,
    /// Inline session policy passed to `AssumeRole`.
    Session,
    /// Managed policy used as a permissions boundary.
    Boundary,
}

impl PolicyKind {
    /// The per-document quota enforced by [`Policy::parse`]. `Identity` has none of its own:
    /// managed policies (6,144) and inline aggregates (user/group/role) are checked by the
    /// caller with [`Policy::parse_with_limit`] or [`non_whitespace_len`].
    pub fn max_size(self) -> Option<usize> {
        match self {
            PolicyKind::Identity => None,
            PolicyKind::Boundary => Some(crate::MANAGED_POLICY_MAX_SIZE),
            PolicyKind::Trust => Some(crate::TRUST_POLICY_MAX_SIZE),
            PolicyKind::Resource => Some(crate::SECRET_RESOURCE_POLICY_MAX_SIZE),
            PolicyKind::KeyPolicy => Some(crate::KEY_POLICY_MAX_SIZE),
            PolicyKind::Session => Some(crate::SESSION_POLICY_MAX_SIZE),
        }
    }

    /// Size as AWS counts it for this kind: IAM ignores whitespace ("IAM does not count white
    /// space when calculating the size of a policy", IAM and AWS STS quotas); Secrets Manager
    /// and STS count the parameter's characters; KMS counts bytes.
    pub fn size_of(self, text: &str) -> usize {
        match self {
            PolicyKind::Identity | PolicyKind::Boundary | PolicyKind::Trust => {
                non_whitespace_len(text)
            }
            PolicyKind::Resource | PolicyKind::Session => text.chars().count(),
            PolicyKind::KeyPolicy => text.len(),
        }
    }

    fn is_iam(self) -> bool {
        matches!(
            self,
            PolicyKind::Identity | PolicyKind::Boundary | PolicyKind::Trust
        )
    }

    fn forbids_principal(self) -> bool {
        matches!(
            self,
            PolicyKind::Identity | PolicyKind::Boundary | PolicyKind::Session
        )
    }
}

/// Characters of `text` that are not whitespace (IAM's policy size measure).
pub fn non_whitespace_len(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// `Allow` or `Deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    Allow,
    Deny,
}

impl Effect {
    pub fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "Allow",
            Effect::Deny => "Deny",
        }
    }
}

/// `Action`/`NotAction` (or `Resource`/`NotResource`, `Principal`/`NotPrincipal`).
#[derive(Debug, Clone)]
pub(crate) struct Element<T> {
    pub(crate) negated: bool,
    pub(crate) matchers: Vec<T>,
    pub(crate) texts: Vec<String>,
}

/// The `Principal` element as written, for serialization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalText {
    Star,
    Map(Vec<(String, Vec<String>)>),
}

#[derive(Debug, Clone)]
pub(crate) struct PrincipalElement {
    pub(crate) negated: bool,
    pub(crate) patterns: Vec<PrincipalPattern>,
    pub(crate) text: PrincipalText,
}

/// One compiled statement.
#[derive(Debug, Clone)]
pub struct Statement {
    pub(crate) sid: Option<Arc<str>>,
    pub(crate) effect: Effect,
    pub(crate) action: Element<Pattern>,
    pub(crate) resource: Option<Element<ResourceMatcher>>,
    pub(crate) principal: Option<PrincipalElement>,
    pub(crate) conditions: Vec<Clause>,
}

impl Statement {
    /// Whether a condition key or policy variable of the statement is a clock key.
    fn reads_clock(&self) -> bool {
        let mut clock = false;
        let mut visit = |key: &KeyRef| {
            clock |= matches!(&*key.lower, "aws:currenttime" | "aws:epochtime");
        };
        for m in &self.action.matchers {
            m.for_each_key(&mut visit);
        }
        for m in self.resource.iter().flat_map(|r| &r.matchers) {
            m.for_each_key(&mut visit);
        }
        for c in &self.conditions {
            c.for_each_key(&mut visit);
        }
        clock
    }

    pub fn sid(&self) -> Option<&str> {
        self.sid.as_deref()
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }
}

/// A parsed, validated and compiled policy document. Cheap to share behind an `Arc`; matching
/// against it does not allocate unless the policy uses variables.
#[derive(Debug, Clone)]
pub struct Policy {
    text: String,
    kind: PolicyKind,
    version: Option<String>,
    id: Option<String>,
    pub(crate) statements: Vec<Statement>,
    /// Whether a statement reads the clock (`aws:CurrentTime` or `aws:EpochTime`, as a
    /// condition key or a policy variable): only such a policy can decide one request two
    /// ways at two instants.
    reads_clock: bool,
}

const VERSION_2012: &str = "2012-10-17";
const VERSION_2008: &str = "2008-10-17";

impl Policy {
    /// Parse, validate and compile `text` as a policy of `kind`, enforcing the kind's own size
    /// quota ([`PolicyKind::max_size`]).
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        match kind.max_size() {
            Some(limit) => Policy::parse_with_limit(text, kind, limit),
            None => Policy::parse_unlimited(text, kind),
        }
    }

    /// Like [`Policy::parse`] with an explicit quota, measured as AWS measures this kind
    /// ([`PolicyKind::size_of`]); e.g. `MANAGED_POLICY_MAX_SIZE` for `CreatePolicy`.
    pub fn parse_with_limit(
        text: &str,
        kind: PolicyKind,
        limit: usize,
    ) -> Result<Policy, PolicyError> {
        let size = kind.size_of(text);
        if size > limit {
            return Err(PolicyError::TooLarge { size, limit });
        }
        Policy::parse_unlimited(text, kind)
    }

    fn parse_unlimited(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        // Source: IAM and AWS STS quotas: "Policy documents can contain only the following
        // Unicode characters: horizontal tab (U+0009), linefeed (U+000A), carriage return
        // (U+000D), and characters in the range U+0020 to U+00FF."
        if kind.is_iam()
            && text
                .chars()
                .any(|c| !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{ff}'))
        {
            return Err(PolicyError::syntax());
        }
        let value: Value = serde_json::from_str(text).map_err(|_| PolicyError::syntax())?;
        let Value::Object(top) = value else {
            return Err(PolicyError::syntax());
        };
        let mut version = None;
        let mut id = None;
        let mut statement_value = None;
        for (key, value) in &top {
            match key.as_str() {
                "Version" => match value.as_str() {
                    Some(v @ (VERSION_2012 | VERSION_2008)) => version = Some(v.to_owned()),
                    _ => return Err(PolicyError::syntax()),
                },
                "Id" => match value.as_str() {
                    Some(v) => id = Some(v.to_owned()),
                    None => return Err(PolicyError::syntax()),
                },
                "Statement" => statement_value = Some(value),
                other => return Err(PolicyError::malformed(format!("Unknown field {other}"))),
            }
        }
        // Policy variables only exist in version 2012-10-17; a missing Version behaves as
        // 2008-10-17 (IAM User Guide, "IAM JSON policy elements: Version").
        let variables = version.as_deref() == Some(VERSION_2012);
        let statements = match statement_value {
            None => return Err(PolicyError::malformed("Missing required field Statement")),
            Some(Value::Object(one)) => vec![compile_statement(one, kind, variables)?],
            Some(Value::Array(many)) => many
                .iter()
                .map(|s| match s {
                    Value::Object(s) => compile_statement(s, kind, variables),
                    _ => Err(PolicyError::syntax()),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => return Err(PolicyError::syntax()),
        };
        if kind.is_iam() {
            let mut sids: Vec<&str> = statements.iter().filter_map(|s| s.sid()).collect();
            sids.sort_unstable();
            if sids.windows(2).any(|w| w[0] == w[1]) {
                return Err(PolicyError::malformed(
                    "Statement IDs (SID) in a single policy must be unique.",
                ));
            }
        }
        let reads_clock = statements.iter().any(Statement::reads_clock);
        Ok(Policy {
            text: text.to_owned(),
            kind,
            version,
            id,
            statements,
            reads_clock,
        })
    }

    /// Whether the decisions of this policy can depend on the time of the request
    /// (`aws:CurrentTime` or `aws:EpochTime` read by a condition or a policy variable). Every
    /// other input of an evaluation is the principal, the action, the resource and the
    /// request's context keys, so a decision of policies that do not read the clock can be
    /// reused for an identical request.
    pub fn reads_clock(&self) -> bool {
        self.reads_clock
    }

    /// The document exactly as it was given.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn kind(&self) -> PolicyKind {
        self.kind
    }

    /// `Version` as written (`None` when absent: 2008-10-17 behavior).
    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    pub fn statements(&self) -> &[Statement] {
        &self.statements
    }

    /// Does any `Resource`/`NotResource` or condition value use a policy variable? Such
    /// statements allocate a little per match.
    pub fn uses_variables(&self) -> bool {
        self.statements.iter().any(|s| {
            s.resource
                .as_ref()
                .is_some_and(|r| r.matchers.iter().any(ResourceMatcher::has_variables))
                || s.conditions.iter().any(Clause::has_variables)
        })
    }

    /// Every `AWS` principal string in `Principal` and `NotPrincipal`, in document order.
    pub fn aws_principals(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for statement in &self.statements {
            if let Some(PrincipalElement {
                text: PrincipalText::Map(entries),
                ..
            }) = &statement.principal
            {
                for (kind, values) in entries {
                    if kind == "AWS" {
                        out.extend(values.iter().map(String::as_str));
                    }
                }
            }
        }
        out
    }

    /// Canonical JSON: keys sorted, every list an array, `Statement` always an array. Parsing
    /// it again gives a policy with the same decisions.
    pub fn to_json(&self) -> String {
        let mut top = Map::new();
        if let Some(v) = &self.version {
            top.insert("Version".into(), Value::String(v.clone()));
        }
        if let Some(id) = &self.id {
            top.insert("Id".into(), Value::String(id.clone()));
        }
        let statements = self.statements.iter().map(statement_json).collect();
        top.insert("Statement".into(), Value::Array(statements));
        Value::Object(top).to_string()
    }
}

fn strings(values: &[String]) -> Value {
    Value::Array(values.iter().cloned().map(Value::String).collect())
}

fn statement_json(s: &Statement) -> Value {
    let mut m = Map::new();
    if let Some(sid) = &s.sid {
        m.insert("Sid".into(), Value::String(sid.to_string()));
    }
    m.insert("Effect".into(), Value::String(s.effect.as_str().into()));
    let action_key = if s.action.negated {
        "NotAction"
    } else {
        "Action"
    };
    m.insert(action_key.into(), strings(&s.action.texts));
    if let Some(r) = &s.resource {
        let key = if r.negated { "NotResource" } else { "Resource" };
        m.insert(key.into(), strings(&r.texts));
    }
    if let Some(p) = &s.principal {
        let key = if p.negated {
            "NotPrincipal"
        } else {
            "Principal"
        };
        let value = match &p.text {
            PrincipalText::Star => Value::String("*".into()),
            PrincipalText::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), strings(v)))
                    .collect(),
            ),
        };
        m.insert(key.into(), value);
    }
    if !s.conditions.is_empty() {
        let mut operators = Map::new();
        for clause in &s.conditions {
            let entry = operators
                .entry(clause.operator_text.clone())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(keys) = entry {
                keys.insert(clause.key_text.clone(), strings(&clause.value_texts));
            }
        }
        m.insert("Condition".into(), Value::Object(operators));
    }
    Value::Object(m)
}

/// A string or a non-empty-or-empty array of strings.
fn string_list(value: &Value) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(PolicyError::syntax)
            })
            .collect(),
        _ => Err(PolicyError::syntax()),
    }
}

/// Condition values may also be JSON numbers and booleans (`"aws:SecureTransport": false`).
fn condition_values(value: &Value) -> Result<Vec<String>, PolicyError> {
    fn scalar(v: &Value) -> Result<String, PolicyError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            _ => Err(PolicyError::syntax()),
        }
    }
    match value {
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

/// One of two mutually exclusive keys (`Action`/`NotAction` …): `(negated, value)`.
fn one_of<'a>(
    s: &'a Map<String, Value>,
    positive: &str,
    negative: &str,
) -> Result<Option<(bool, &'a Value)>, PolicyError> {
    match (s.get(positive), s.get(negative)) {
        (Some(_), Some(_)) => Err(PolicyError::syntax()),
        (Some(v), None) => Ok(Some((false, v))),
        (None, Some(v)) => Ok(Some((true, v))),
        (None, None) => Ok(None),
    }
}

fn compile_statement(
    s: &Map<String, Value>,
    kind: PolicyKind,
    variables: bool,
) -> Result<Statement, PolicyError> {
    for key in s.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(PolicyError::malformed(format!("Unknown field {key}")));
        }
    }

    let sid = match s.get("Sid") {
        None => None,
        Some(Value::String(sid)) => {
            // Source: IAM User Guide, "IAM JSON policy elements: Sid" — IAM accepts only ASCII
            // letters and digits; resource-based policies (KMS "Enable IAM User Permissions")
            // allow spaces.
            if matches!(kind, PolicyKind::Identity | PolicyKind::Boundary)
                && !sid.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(PolicyError::malformed(
                    "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies \
                     the regular expression [0-9A-Za-z]*",
                ));
            }
            Some(Arc::from(sid.as_str()))
        }
        Some(_) => return Err(PolicyError::syntax()),
    };

    let effect = match s.get("Effect") {
        None => return Err(PolicyError::malformed("Missing required field Effect")),
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(Value::String(e)) => {
            return Err(PolicyError::malformed(format!("Invalid effect: {e}")));
        }
        Some(_) => return Err(PolicyError::syntax()),
    };

    let action = match one_of(s, "Action", "NotAction")? {
        None => {
            return Err(PolicyError::malformed(
                "Policy statement must contain actions.",
            ));
        }
        Some((negated, value)) => {
            let texts = string_list(value)?;
            if texts.is_empty() {
                return Err(PolicyError::malformed(
                    "Policy statement must contain actions.",
                ));
            }
            // IAM's MalformedPolicyDocument message for a trust policy naming other actions.
            if kind == PolicyKind::Trust
                && texts.iter().any(|a| {
                    a != "*" && !a.get(..4).is_some_and(|v| v.eq_ignore_ascii_case("sts:"))
                })
            {
                return Err(PolicyError::malformed(
                    "AssumeRole policy may only specify STS AssumeRole actions.",
                ));
            }
            let matchers = texts
                .iter()
                .map(|a| compile_action(a))
                .collect::<Result<_, _>>()?;
            Element {
                negated,
                matchers,
                texts,
            }
        }
    };

    let resource = match (one_of(s, "Resource", "NotResource")?, kind) {
        (Some((negated, _)), PolicyKind::Trust) => {
            let field = if negated { "NotResource" } else { "Resource" };
            return Err(PolicyError::malformed(format!(
                "Has prohibited field {field}"
            )));
        }
        (None, PolicyKind::Trust) => None,
        (None, _) => {
            return Err(PolicyError::malformed(
                "Policy statement must contain resources.",
            ));
        }
        (Some((negated, value)), _) => {
            let texts = string_list(value)?;
            if texts.is_empty() {
                return Err(PolicyError::malformed(
                    "Policy statement must contain resources.",
                ));
            }
            let matchers = texts
                .iter()
                .map(|r| compile_resource(r, variables))
                .collect::<Result<_, _>>()?;
            Some(Element {
                negated,
                matchers,
                texts,
            })
        }
    };

    let principal = match one_of(s, "Principal", "NotPrincipal")? {
        Some(_) if kind.forbids_principal() => {
            return Err(PolicyError::malformed(
                "Policy document should not specify a principal.",
            ));
        }
        None if !kind.forbids_principal() => {
            return Err(PolicyError::malformed("Missing required field Principal"));
        }
        None => None,
        Some((negated, value)) => Some(compile_principal(negated, value)?),
    };

    let conditions = match s.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(operators)) => {
            let mut clauses = Vec::new();
            for (operator, keys) in operators {
                let Value::Object(keys) = keys else {
                    return Err(PolicyError::syntax());
                };
                for (key, values) in keys {
                    clauses.push(Clause::compile(
                        operator,
                        key,
                        condition_values(values)?,
                        variables,
                    )?);
                }
            }
            clauses
        }
        Some(_) => return Err(PolicyError::syntax()),
    };

    Ok(Statement {
        sid,
        effect,
        action,
        resource,
        principal,
        conditions,
    })
}

fn compile_action(text: &str) -> Result<Pattern, PolicyError> {
    if text == "*" {
        return Ok(Pattern::Any);
    }
    // Source: IAM's MalformedPolicyDocument message for actions without a service prefix.
    match text.split_once(':') {
        Some((vendor, _))
            if !vendor.is_empty()
                && vendor
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-') => {}
        _ => return Err(PolicyError::malformed(VENDOR_MESSAGE)),
    }
    Ok(Pattern::compile(text, true, false))
}

fn compile_resource(text: &str, variables: bool) -> Result<ResourceMatcher, PolicyError> {
    let matcher = ResourceMatcher::compile(text, variables);
    let ok = match &matcher {
        ResourceMatcher::Arn(_) => true,
        ResourceMatcher::Plain(p) => *p == Pattern::Any,
    };
    if ok {
        Ok(matcher)
    } else {
        Err(PolicyError::malformed(format!(
            "Resource {text} must be in ARN format or \"*\"."
        )))
    }
}

fn compile_principal(negated: bool, value: &Value) -> Result<PrincipalElement, PolicyError> {
    match value {
        Value::String(s) if s == "*" => Ok(PrincipalElement {
            negated,
            patterns: vec![PrincipalPattern::Everyone],
            text: PrincipalText::Star,
        }),
        Value::Object(map) if !map.is_empty() => {
            let mut patterns = Vec::new();
            let mut entries = Vec::new();
            for (kind, values) in map {
                let values = string_list(values)
                    .map_err(|_| PolicyError::malformed("Invalid principal in policy"))?;
                for v in &values {
                    patterns.push(PrincipalPattern::parse(kind, v)?);
                }
                entries.push((kind.clone(), values));
            }
            Ok(PrincipalElement {
                negated,
                patterns,
                text: PrincipalText::Map(entries),
            })
        }
        _ => Err(PolicyError::malformed("Invalid principal in policy")),
    }
}

/// Rewrite every `AWS` principal string of every statement's `Principal`/`NotPrincipal`
/// through `f` (`None` keeps the value), leaving the rest of the text — formatting, key order,
/// other principals — untouched.
///
/// Secrets Manager uses this for principal capture (IAM User Guide, "AWS JSON policy elements:
/// Principal": role and user ARNs are bound to the entity's unique id when the policy is saved,
/// and shown as the unique id once the entity is deleted).
pub fn map_aws_principals(
    doc: &str,
    mut f: impl FnMut(&str) -> Option<String>,
) -> Result<String, PolicyError> {
    serde_json::from_str::<Value>(doc).map_err(|_| PolicyError::syntax())?;
    let edits = crate::json::scan(doc)
        .ok_or_else(PolicyError::syntax)?
        .aws_principals;
    let mut out = String::with_capacity(doc.len());
    let mut at = 0;
    for (start, end, original) in edits {
        if let Some(replacement) = f(&original) {
            out.push_str(&doc[at..start]);
            out.push_str(&Value::String(replacement).to_string());
            at = end;
        }
    }
    out.push_str(&doc[at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, kind: PolicyKind) -> PolicyError {
        match Policy::parse(text, kind) {
            Ok(_) => panic!("expected an error for {text}"),
            Err(e) => e,
        }
    }

    fn malformed(m: &str) -> PolicyError {
        PolicyError::Malformed(m.to_owned())
    }

    const ALLOW_ALL: &str =
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#;

    #[test]
    fn parses_identity_policy_with_single_statement_object() {
        let p = Policy::parse(ALLOW_ALL, PolicyKind::Identity).unwrap();
        assert_eq!(p.statements().len(), 1);
        assert_eq!(p.version(), Some("2012-10-17"));
        assert_eq!(p.text(), ALLOW_ALL);
        assert_eq!(p.statements()[0].effect(), Effect::Allow);
    }

    /// A policy reads the clock when a condition key or a policy variable (in a resource or a
    /// condition value) is `aws:CurrentTime` or `aws:EpochTime`, in any case and however the
    /// JSON spells it; no other key counts.
    #[test]
    fn reads_clock_finds_every_clock_key() {
        let statement = |body: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":{{"Effect":"Allow","Action":"*",{body}}}}}"#
            )
        };
        let clock = [
            r#""Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#,
            r#""Resource":"*","Condition":{"NumericLessThan":{"AWS:EPOCHTIME":"1900000000"}}"#,
            r#""Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}"#,
            r#""Resource":"arn:aws:s3:::b/${aws:EpochTime}","Condition":{"Bool":{"aws:SecureTransport":"true"}}"#,
            r#""NotResource":"arn:aws:s3:::b/${aws:currenttime}""#,
            r#""Resource":"*","Condition":{"StringLike":{"aws:PrincipalTag/t":"${aws:CurrentTime}"}}"#,
            r#""Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:s3:::${aws:EpochTime}"}}"#,
        ];
        for body in clock {
            let p = Policy::parse(&statement(body), PolicyKind::Identity).unwrap();
            assert!(p.reads_clock(), "{body}");
        }
        let timeless = [
            r#""Resource":"*""#,
            r#""Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            r#""Resource":"*","Condition":{"DateLessThan":{"aws:TokenIssueTime":"2030-01-01T00:00:00Z"}}"#,
            r#""Resource":"arn:aws:s3:::b/${aws:username}/aws:CurrentTime""#,
            r#""Resource":"*","Condition":{"StringEquals":{"aws:RequestTag/aws:CurrentTime":"x"}}"#,
        ];
        for body in timeless {
            let p = Policy::parse(&statement(body), PolicyKind::Identity).unwrap();
            assert!(!p.reads_clock(), "{body}");
        }
        // With 2008-10-17, `${…}` is literal text, not a variable.
        let old = r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"arn:aws:s3:::${aws:CurrentTime}"}}"#;
        assert!(
            !Policy::parse(old, PolicyKind::Identity)
                .unwrap()
                .reads_clock()
        );
    }

    /// Source: IAM API reference, MalformedPolicyDocument messages as observed; IAM User Guide,
    /// "IAM JSON policy element reference".
    #[test]
    fn parse_errors() {
        use PolicyKind::*;
        let rows: &[(&str, PolicyKind, PolicyError)] = &[
            ("not json", Identity, PolicyError::syntax()),
            ("[]", Identity, PolicyError::syntax()),
            (
                r#"{"Version":"2012-10-17"}"#,
                Identity,
                malformed("Missing required field Statement"),
            ),
            (
                r#"{"Version":"2012-10-18","Statement":[]}"#,
                Identity,
                PolicyError::syntax(),
            ),
            (
                r#"{"Version":"2012-10-17","Statment":[]}"#,
                Identity,
                malformed("Unknown field Statment"),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":"*"}]}"#,
                Identity,
                malformed("Policy document should not specify a principal."),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","NotPrincipal":{"AWS":"*"}}]}"#,
                Session,
                malformed("Policy document should not specify a principal."),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
                Resource,
                malformed("Missing required field Principal"),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#,
                Trust,
                malformed("Missing required field Principal"),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Principal":{"Service":"ec2.amazonaws.com"},"Resource":"*"}]}"#,
                Trust,
                malformed("Has prohibited field Resource"),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"s3:GetObject","Principal":{"Service":"ec2.amazonaws.com"}}]}"#,
                Trust,
                malformed("AssumeRole policy may only specify STS AssumeRole actions."),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*"}]}"#,
                Identity,
                malformed("Policy statement must contain resources."),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
                Identity,
                malformed("Policy statement must contain actions."),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"x:y","Resource":"*"}]}"#,
                Identity,
                PolicyError::syntax(),
            ),
            (
                r#"{"Statement":[{"Action":"*","Resource":"*"}]}"#,
                Identity,
                malformed("Missing required field Effect"),
            ),
            (
                r#"{"Statement":[{"Effect":"allow","Action":"*","Resource":"*"}]}"#,
                Identity,
                malformed("Invalid effect: allow"),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"GetSecretValue","Resource":"*"}]}"#,
                Identity,
                malformed(VENDOR_MESSAGE),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"secret/x"}]}"#,
                Identity,
                malformed("Resource secret/x must be in ARN format or \"*\"."),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Foo":1}]}"#,
                Identity,
                malformed("Unknown field Foo"),
            ),
            (
                r#"{"Statement":[{"Sid":"a","Effect":"Allow","Action":"*","Resource":"*"},{"Sid":"a","Effect":"Deny","Action":"*","Resource":"*"}]}"#,
                Identity,
                malformed("Statement IDs (SID) in a single policy must be unique."),
            ),
            (
                r#"{"Statement":[{"Sid":"has space","Effect":"Allow","Action":"*","Resource":"*"}]}"#,
                Identity,
                malformed(
                    "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*",
                ),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":{"AWS":"arn:aws:iam::111122223333:user/*"}}]}"#,
                Resource,
                malformed(
                    "Invalid principal in policy: \"AWS\":\"arn:aws:iam::111122223333:user/*\"",
                ),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":"arn:aws:iam::111122223333:root"}]}"#,
                KeyPolicy,
                malformed("Invalid principal in policy"),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":{"Bogus":"x"}}]}"#,
                Resource,
                malformed("Invalid principal in policy"),
            ),
            (
                r#"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Condition":{"StringEquals":{"aws:x":{"a":1}}}}]}"#,
                Identity,
                PolicyError::syntax(),
            ),
            (
                "{\"Statement\":[{\"Effect\":\"Allow\",\"Action\":\"*\",\"Resource\":\"arn:aws:s3:::\u{4e2d}\"}]}",
                Identity,
                PolicyError::syntax(),
            ),
        ];
        for (i, (text, kind, want)) in rows.iter().enumerate() {
            assert_eq!(&err(text, *kind), want, "row {i}: {text}");
        }
    }

    #[test]
    fn kms_sids_may_contain_spaces_and_trust_policies_need_no_resource() {
        let key_policy = r#"{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}]}"#;
        let p = Policy::parse(key_policy, PolicyKind::KeyPolicy).unwrap();
        assert_eq!(p.id(), Some("key-default-1"));
        assert_eq!(p.statements()[0].sid(), Some("Enable IAM User Permissions"));
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":["ec2.amazonaws.com"]},"Action":"sts:AssumeRole"}]}"#;
        assert!(Policy::parse(trust, PolicyKind::Trust).is_ok());
    }

    #[test]
    fn size_limits_per_kind() {
        let pad = |n: usize| {
            format!(
                r#"{{"Statement":[{{"Sid":"{}","Effect":"Allow","Action":"*","Resource":"*"}}]}}"#,
                "a".repeat(n)
            )
        };
        // 57 characters of fixed text plus the Sid.
        let base = non_whitespace_len(&pad(0));
        let at_limit = pad(crate::MANAGED_POLICY_MAX_SIZE - base);
        assert!(Policy::parse(&at_limit, PolicyKind::Boundary).is_ok());
        let over = pad(crate::MANAGED_POLICY_MAX_SIZE - base + 1);
        assert_eq!(
            Policy::parse(&over, PolicyKind::Boundary).unwrap_err(),
            PolicyError::TooLarge {
                size: crate::MANAGED_POLICY_MAX_SIZE + 1,
                limit: crate::MANAGED_POLICY_MAX_SIZE
            }
        );
        assert!(Policy::parse(&over, PolicyKind::Identity).is_ok());
        assert!(
            Policy::parse_with_limit(&over, PolicyKind::Identity, crate::MANAGED_POLICY_MAX_SIZE)
                .is_err()
        );
        // Whitespace does not count for IAM kinds …
        let spaced = at_limit.replace(',', " ,\n ");
        assert!(Policy::parse(&spaced, PolicyKind::Boundary).is_ok());
        // … but counts for a session policy (STS parameter length).
        let session = pad(crate::SESSION_POLICY_MAX_SIZE - base);
        assert!(Policy::parse(&session, PolicyKind::Session).is_ok());
        assert!(Policy::parse(&session.replace(',', ", "), PolicyKind::Session).is_err());
        let err = Policy::parse(&"x".repeat(2049), PolicyKind::Trust).unwrap_err();
        assert_eq!(err.to_string(), "Cannot exceed quota for PolicySize: 2048");
    }

    #[test]
    fn aws_principals_and_capture_rewrite() {
        let doc = r#"{
  "Version": "2012-10-17",
  "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:role/ci", "Service": "arn:aws:iam::111122223333:role/ci"},
     "Action": "secretsmanager:GetSecretValue", "Resource": "*"},
    {"Effect": "Deny", "NotPrincipal": {"AWS": ["111122223333", "arn:aws:iam::111122223333:user/a\u0062"]},
     "Action": "*", "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalArn": "arn:aws:iam::111122223333:role/ci"}}}
  ]
}"#;
        let p = Policy::parse(doc, PolicyKind::Resource).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.aws_principals(),
            vec![
                "arn:aws:iam::111122223333:role/ci",
                "111122223333",
                "arn:aws:iam::111122223333:user/ab"
            ]
        );
        let rewritten = map_aws_principals(doc, |arn| match arn {
            "arn:aws:iam::111122223333:role/ci" => Some("AROACIEXAMPLE12345678".into()),
            "arn:aws:iam::111122223333:user/ab" => Some("AIDAABEXAMPLE12345678".into()),
            _ => None,
        })
        .unwrap();
        let again = Policy::parse(&rewritten, PolicyKind::Resource).unwrap();
        assert_eq!(
            again.aws_principals(),
            vec![
                "AROACIEXAMPLE12345678",
                "111122223333",
                "AIDAABEXAMPLE12345678"
            ]
        );
        // Formatting and the non-AWS principal / condition value are untouched.
        assert!(rewritten.starts_with("{\n  \"Version\": \"2012-10-17\","));
        assert!(rewritten.contains(r#""Service": "arn:aws:iam::111122223333:role/ci""#));
        assert!(
            rewritten.contains(r#"{"aws:PrincipalArn": "arn:aws:iam::111122223333:role/ci"}}}"#)
        );
        assert!(map_aws_principals("{", |_| None).is_err());
    }

    #[test]
    fn canonical_json_round_trips() {
        let doc = r#"{"Version":"2012-10-17","Statement":[{"Sid":"A","Effect":"Allow","NotAction":"kms:*","NotResource":["arn:aws:kms:*:111122223333:key/*"],"Principal":"*","Condition":{"Bool":{"aws:SecureTransport":false},"NumericLessThan":{"k:n":[1,2]}}}]}"#;
        let p = Policy::parse(doc, PolicyKind::Resource).unwrap();
        let canonical = p.to_json();
        let again = Policy::parse(&canonical, PolicyKind::Resource).unwrap();
        assert_eq!(again.to_json(), canonical);
        assert!(canonical.contains(r#""Bool":{"aws:SecureTransport":["false"]}"#));
    }

    #[test]
    fn policy_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Policy>();
        assert_send_sync::<Arc<Policy>>();
    }
}
