//! The request side of an evaluation: who is calling ([`Principal`]) and the condition keys
//! of the request ([`Context`]). The engine derives the principal's own keys
//! (`aws:PrincipalArn`, `aws:userid`, `aws:PrincipalTag/*`, …) from the [`Principal`]; every
//! other key (time, source IP, TLS, region, service keys) is set by the caller.
//! Condition key names are case-insensitive (IAM User Guide, "IAM JSON policy elements:
//! Condition": "Condition key names are not case-sensitive").

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The caller ARN as AWS reports it: user ARN, assumed-role session ARN, or account root.
    pub arn: String,
    /// The caller's account id.
    pub account: String,
    pub kind: PrincipalKind,
    /// `aws:userid`: `AIDA…` for users, `AROA…:<session>` for role sessions, the account id
    /// for root.
    pub user_id: String,
    /// `aws:PrincipalTag/*` (user or role tags, plus session tags for sessions).
    pub tags: Vec<(String, String)>,
}

/// What kind of caller a [`Principal`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    User {
        name: String,
        unique_id: String,
    },
    AssumedRole {
        /// `arn:aws:iam::<account>:role/<path><name>`.
        role_arn: String,
        /// `AROA…`.
        role_unique_id: String,
        session_name: String,
    },
    Root,
    /// An AWS service acting on its own behalf (`lambda.amazonaws.com`).
    Service(String),
    /// A web-identity caller before it has a session (`sts:AssumeRoleWithWebIdentity`): the
    /// provider as trust policies name it, `arn:aws:iam::<account>:oidc-provider/<host/path>`.
    Federated(String),
}

impl Principal {
    /// An IAM user.
    pub fn user(account: &str, path_and_name: &str, unique_id: &str) -> Principal {
        let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
        Principal {
            arn: format!(
                "arn:{}:iam::{account}:user/{path_and_name}",
                crate::arn::partition()
            ),
            account: account.to_owned(),
            kind: PrincipalKind::User {
                name: name.to_owned(),
                unique_id: unique_id.to_owned(),
            },
            user_id: unique_id.to_owned(),
            tags: Vec::new(),
        }
    }

    /// A session of a role (`path_and_name` may carry the role's path, `app/ci-role`).
    pub fn assumed_role(
        account: &str,
        path_and_name: &str,
        role_unique_id: &str,
        session_name: &str,
    ) -> Principal {
        let name = path_and_name.rsplit('/').next().unwrap_or(path_and_name);
        Principal {
            arn: format!(
                "arn:{}:sts::{account}:assumed-role/{name}/{session_name}",
                crate::arn::partition()
            ),
            account: account.to_owned(),
            kind: PrincipalKind::AssumedRole {
                role_arn: format!(
                    "arn:{}:iam::{account}:role/{path_and_name}",
                    crate::arn::partition()
                ),
                role_unique_id: role_unique_id.to_owned(),
                session_name: session_name.to_owned(),
            },
            user_id: format!("{role_unique_id}:{session_name}"),
            tags: Vec::new(),
        }
    }

    /// The account root user.
    pub fn root(account: &str) -> Principal {
        Principal {
            arn: format!("arn:{}:iam::{account}:root", crate::arn::partition()),
            account: account.to_owned(),
            kind: PrincipalKind::Root,
            user_id: account.to_owned(),
            tags: Vec::new(),
        }
    }

    /// An AWS service principal such as `secretsmanager.amazonaws.com`.
    pub fn service(name: &str) -> Principal {
        Principal {
            arn: name.to_owned(),
            account: String::new(),
            kind: PrincipalKind::Service(name.to_owned()),
            user_id: name.to_owned(),
            tags: Vec::new(),
        }
    }

    /// A caller federated through the identity provider `provider` (its ARN).
    pub fn federated(provider: &str, account: &str) -> Principal {
        Principal {
            arn: provider.to_owned(),
            account: account.to_owned(),
            kind: PrincipalKind::Federated(provider.to_owned()),
            user_id: provider.to_owned(),
            tags: Vec::new(),
        }
    }

    /// Add a principal tag (`aws:PrincipalTag/<key>`).
    pub fn with_tag(mut self, key: &str, value: &str) -> Principal {
        self.tags.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `aws:PrincipalArn`: the role ARN for role sessions, otherwise the caller ARN.
    /// Source: IAM User Guide, "AWS global condition context keys", aws:PrincipalArn.
    pub fn principal_arn(&self) -> &str {
        match &self.kind {
            PrincipalKind::AssumedRole { role_arn, .. } => role_arn,
            _ => &self.arn,
        }
    }
}

/// Up to this many distinct keys, [`Context::append_all`] finds a key by a linear scan.
const LINEAR_KEYS: usize = 16;

/// Condition keys of one request: case-insensitive names, one or more string values each
/// (booleans `"true"`/`"false"`, numbers, ISO-8601 dates, IPs and base64 binaries as text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// (lower-cased key, values); small, so a linear scan beats hashing.
    entries: Vec<(Box<str>, Vec<String>)>,
}

impl Context {
    pub fn new() -> Context {
        Context::default()
    }

    /// Set a single-valued key (replaces any earlier value).
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Context {
        self.set(key, vec![value.into()]);
        self
    }

    /// Set a multi-valued key such as `aws:TagKeys` (an empty list is "present but empty").
    pub fn with_values<I, S>(mut self, key: &str, values: I) -> Context
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.set(key, values.into_iter().map(Into::into).collect());
        self
    }

    /// Set a boolean key (`aws:SecureTransport`).
    pub fn with_bool(self, key: &str, value: bool) -> Context {
        self.with(key, if value { "true" } else { "false" })
    }

    /// Set `aws:CurrentTime` (ISO-8601 UTC) and `aws:EpochTime` from the given instant.
    pub fn with_current_time(self, now: time::OffsetDateTime) -> Context {
        let utc = now.to_offset(time::UtcOffset::UTC);
        let iso = utc
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        self.with("aws:CurrentTime", iso)
            .with("aws:EpochTime", utc.unix_timestamp().to_string())
    }

    /// Replace the values of a key.
    pub fn set(&mut self, key: &str, values: Vec<String>) {
        let lower = key.to_ascii_lowercase();
        if let Some(entry) = self.entries.iter_mut().find(|(k, _)| **k == *lower) {
            entry.1 = values;
        } else {
            self.entries.push((lower.into_boxed_str(), values));
        }
    }

    /// Appends each `(key, value)` pair to the values of its key (creating the key when new),
    /// in time linear in the number of pairs: a request may carry thousands of
    /// `aws:TagKeys` values, and each must not cost a scan of everything added before it.
    ///
    /// A request's context has a handful of distinct keys, so they are found by a scan (no
    /// allocation for a key already present, no hashing); only once the context holds more
    /// than [`LINEAR_KEYS`] distinct keys is an index built, which keeps a request with
    /// thousands of distinct keys (`aws:RequestTag/<key>`) linear.
    pub fn append_all<I, K, V>(&mut self, pairs: I)
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut index: Option<std::collections::HashMap<Box<str>, usize>> = None;
        for (key, value) in pairs {
            let key = key.as_ref();
            if index.is_none() && self.entries.len() > LINEAR_KEYS {
                index = Some(
                    self.entries
                        .iter()
                        .enumerate()
                        .map(|(i, (k, _))| (k.clone(), i))
                        .collect(),
                );
            }
            match &mut index {
                None => {
                    // Stored keys are lower-case, so a case-insensitive comparison with the
                    // key as given is a comparison with its lower-case form.
                    match self
                        .entries
                        .iter_mut()
                        .find(|(k, _)| k.eq_ignore_ascii_case(key))
                    {
                        Some(entry) => entry.1.push(value.into()),
                        None => self.entries.push((
                            key.to_ascii_lowercase().into_boxed_str(),
                            vec![value.into()],
                        )),
                    }
                }
                Some(index) => {
                    let lower = key.to_ascii_lowercase().into_boxed_str();
                    match index.get(&lower) {
                        Some(&i) => self.entries[i].1.push(value.into()),
                        None => {
                            index.insert(lower.clone(), self.entries.len());
                            self.entries.push((lower, vec![value.into()]));
                        }
                    }
                }
            }
        }
    }

    /// The values of a key (case-insensitive name).
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_slice())
    }

    fn get_lower(&self, lower_key: &str) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|(k, _)| **k == *lower_key)
            .map(|(_, v)| v.as_slice())
    }
}

/// A condition key or variable name as compiled: lower-cased, with the keys the engine derives
/// from the principal resolved once at parse time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyRef {
    pub(crate) lower: Box<str>,
    pub(crate) derived: Option<Derived>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Derived {
    PrincipalArn,
    PrincipalAccount,
    PrincipalType,
    PrincipalServiceName,
    UserId,
    Username,
    /// Lower-cased tag key.
    PrincipalTag(Box<str>),
}

impl KeyRef {
    pub(crate) fn new(name: &str) -> KeyRef {
        let lower = name.to_ascii_lowercase();
        let derived = match lower.as_str() {
            "aws:principalarn" => Some(Derived::PrincipalArn),
            "aws:principalaccount" => Some(Derived::PrincipalAccount),
            "aws:principaltype" => Some(Derived::PrincipalType),
            "aws:principalservicename" => Some(Derived::PrincipalServiceName),
            "aws:userid" => Some(Derived::UserId),
            "aws:username" => Some(Derived::Username),
            _ => lower
                .strip_prefix("aws:principaltag/")
                .map(|tag| Derived::PrincipalTag(tag.into())),
        };
        KeyRef {
            lower: lower.into_boxed_str(),
            derived,
        }
    }
}

/// The values of one key in a request: borrowed, never copied.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Values<'a> {
    One(&'a str),
    Many(&'a [String]),
}

impl<'a> Values<'a> {
    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Values::Many(v) if v.is_empty())
    }

    #[cfg(test)]
    pub(crate) fn first(&self) -> Option<&'a str> {
        match *self {
            Values::One(s) => Some(s),
            Values::Many(v) => v.first().map(String::as_str),
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let (one, many): (Option<&'a str>, &'a [String]) = match *self {
            Values::One(s) => (Some(s), &[]),
            Values::Many(v) => (None, v),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }
}

/// Everything a statement is evaluated against, borrowed for one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env<'a> {
    pub(crate) principal: &'a Principal,
    pub(crate) context: &'a Context,
}

impl<'a> Env<'a> {
    /// Look a key up: derived principal keys first (the engine is authoritative for them),
    /// then the caller's context.
    pub(crate) fn lookup(&self, key: &KeyRef) -> Option<Values<'a>> {
        if let Some(derived) = &key.derived {
            return self.derived(derived).map(Values::One);
        }
        self.context.get_lower(&key.lower).map(Values::Many)
    }

    /// A single value for a policy variable; multi-valued keys cannot be variables.
    pub(crate) fn variable(&self, key: &KeyRef) -> Option<&'a str> {
        match self.lookup(key)? {
            Values::One(s) => Some(s),
            Values::Many([single]) => Some(single.as_str()),
            Values::Many(_) => None,
        }
    }

    fn derived(&self, derived: &Derived) -> Option<&'a str> {
        let p = self.principal;
        // Source: IAM User Guide, "AWS global condition context keys" (aws:PrincipalType is
        // Account | User | AssumedRole …; aws:username only for IAM users).
        match derived {
            Derived::PrincipalArn => match p.kind {
                PrincipalKind::Service(_) | PrincipalKind::Federated(_) => None,
                _ => Some(p.principal_arn()),
            },
            Derived::PrincipalAccount => match p.kind {
                PrincipalKind::Service(_) | PrincipalKind::Federated(_) => None,
                _ => Some(p.account.as_str()),
            },
            Derived::PrincipalType => match p.kind {
                PrincipalKind::User { .. } => Some("User"),
                PrincipalKind::AssumedRole { .. } => Some("AssumedRole"),
                PrincipalKind::Root => Some("Account"),
                PrincipalKind::Service(_) => None,
                PrincipalKind::Federated(_) => Some("WebIdentityUser"),
            },
            Derived::PrincipalServiceName => match &p.kind {
                PrincipalKind::Service(name) => Some(name.as_str()),
                _ => None,
            },
            Derived::UserId => match p.kind {
                PrincipalKind::Service(_) | PrincipalKind::Federated(_) => None,
                _ => Some(p.user_id.as_str()),
            },
            Derived::Username => match &p.kind {
                PrincipalKind::User { name, .. } => Some(name.as_str()),
                _ => None,
            },
            Derived::PrincipalTag(tag) => p
                .tags
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(tag))
                .map(|(_, v)| v.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn append_all_adds_values_to_existing_and_new_keys_case_insensitively() {
        let mut c = super::Context::new().with("aws:TagKeys", "a");
        c.append_all([
            ("AWS:TagKeys", "b"),
            ("kms:ViaService", "x"),
            ("aws:tagkeys", "c"),
        ]);
        assert_eq!(
            c.get("aws:tagkeys"),
            Some(&["a".to_string(), "b".into(), "c".into()][..])
        );
        assert_eq!(c.get("KMS:VIASERVICE"), Some(&["x".to_string()][..]));
    }

    #[test]
    fn append_all_past_the_scan_limit_keeps_keys_distinct_and_case_insensitive() {
        let mut c = super::Context::new().with("aws:SourceIp", "10.0.0.1");
        let n = super::LINEAR_KEYS * 3;
        c.append_all((0..n).map(|i| (format!("aws:RequestTag/K{i}"), format!("v{i}"))));
        c.append_all((0..n).map(|i| (format!("AWS:REQUESTTAG/k{i}"), format!("w{i}"))));
        c.append_all([("aws:sourceip", "10.0.0.2")]);
        assert_eq!(c.entries.len(), n + 1);
        for i in 0..n {
            assert_eq!(
                c.get(&format!("aws:requesttag/k{i}")),
                Some(&[format!("v{i}"), format!("w{i}")][..])
            );
        }
        assert_eq!(
            c.get("aws:SourceIp"),
            Some(&["10.0.0.1".to_string(), "10.0.0.2".into()][..])
        );
    }

    use super::*;

    #[test]
    fn context_keys_are_case_insensitive() {
        let ctx = Context::new().with("AWS:SourceIp", "10.0.0.1");
        assert_eq!(ctx.get("aws:sourceip"), Some(&["10.0.0.1".to_owned()][..]));
        let p = Principal::root("111122223333");
        let env = Env {
            principal: &p,
            context: &ctx,
        };
        assert!(env.lookup(&KeyRef::new("aws:SOURCEIP")).is_some());
    }

    #[test]
    fn derived_keys_come_from_the_principal() {
        let p = Principal::assumed_role("111122223333", "app/ci", "AROAEXAMPLE", "i-123")
            .with_tag("Team", "blue");
        let ctx = Context::new();
        let env = Env {
            principal: &p,
            context: &ctx,
        };
        let get = |k: &str| env.lookup(&KeyRef::new(k)).and_then(|v| v.first());
        assert_eq!(
            get("aws:PrincipalArn"),
            Some("arn:aws:iam::111122223333:role/app/ci")
        );
        assert_eq!(get("aws:userid"), Some("AROAEXAMPLE:i-123"));
        assert_eq!(get("aws:PrincipalType"), Some("AssumedRole"));
        assert_eq!(get("aws:username"), None);
        assert_eq!(get("aws:PrincipalTag/team"), Some("blue"));
        assert_eq!(p.arn, "arn:aws:sts::111122223333:assumed-role/ci/i-123");
    }

    #[test]
    fn current_time_sets_both_keys() {
        let t = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let ctx = Context::new().with_current_time(t);
        assert_eq!(
            ctx.get("aws:CurrentTime"),
            Some(&["2023-11-14T22:13:20Z".to_owned()][..])
        );
        assert_eq!(
            ctx.get("aws:epochtime"),
            Some(&["1700000000".to_owned()][..])
        );
    }
}
