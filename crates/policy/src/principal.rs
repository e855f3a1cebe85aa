//! `Principal` / `NotPrincipal` of resource, key and trust policies: validation of the
//! accepted forms and matching against the caller.
//!
//! Accepted `AWS` values (IAM User Guide, "AWS JSON policy elements: Principal"): `*`, an account
//! id, `arn:<partition>:iam::<account>:root`, a user ARN, a role ARN, an assumed-role session
//! ARN, a federated-user ARN, and unique ids (`AIDA…`/`AROA…`) as IAM shows them after the named
//! entity was deleted. No partial wildcards ("You cannot use a wildcard to match part of a
//! principal name or ARN"). A role ARN matches every session of the role; a session ARN only
//! that session; an account matches every principal of the account but, in evaluation, only
//! delegates to identity policies.

use crate::PolicyError;
use crate::arn::split_arn;
use crate::context::{Principal, PrincipalKind};

/// How strongly a resource-policy statement names the caller; ordered weakest first.
/// Source: IAM User Guide, "How AWS enforcement code logic evaluates requests to allow or deny
/// access", resource-based policies within the same account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Grant {
    /// The caller's account (`123456789012`, `…:root`): delegation to identity policies.
    Account,
    /// The caller's role (role ARN or `AROA…`): allows the session unless a permissions
    /// boundary or session policy implicitly denies.
    Role,
    /// The caller itself (user ARN/`AIDA…`, exact session ARN, service, or a wildcard for a
    /// non-session caller): not limited by identity policies, boundaries or session policies.
    Direct,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalPattern {
    /// `"Principal": "*"`.
    Everyone,
    /// `{"AWS": "*"}`.
    AnyAws,
    Account(Box<str>),
    User(Box<str>),
    Role(Box<str>),
    Session(Box<str>),
    UniqueId(Box<str>),
    /// Federated users (`federated-user/…`), SAML providers and `CanonicalUser`s are not
    /// issued by tresor: these validate but match nothing.
    NeverMatches,
    Service(Box<str>),
    /// `{"Federated": "arn:aws:iam::<account>:oidc-provider/<host/path>"}` (or a bare provider
    /// name such as `cognito-identity.amazonaws.com`): web-identity callers of that provider.
    Federated(Box<str>),
}

/// One facet of the caller, for `NotPrincipal`: AWS excludes a caller only when every facet is
/// listed (IAM User Guide, "AWS JSON policy elements: NotPrincipal": to exclude a role session,
/// list the session ARN, the role ARN and the account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Facet {
    Account,
    User,
    Role,
    Session,
    Service,
    Federated,
}

fn invalid(kind: &str, value: &str) -> PolicyError {
    PolicyError::malformed(format!(
        "Invalid principal in policy: \"{kind}\":\"{value}\""
    ))
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_unique_id(s: &str) -> bool {
    // Source: IAM User Guide, "IAM identifiers", unique IDs (prefix + base32 upper case).
    ["AIDA", "AROA"].iter().any(|p| s.starts_with(p))
        && (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl PrincipalPattern {
    pub(crate) fn parse(kind: &str, value: &str) -> Result<PrincipalPattern, PolicyError> {
        match kind {
            "AWS" => Self::parse_aws(value).ok_or_else(|| invalid(kind, value)),
            "Service" => {
                if value.is_empty() || value.contains(['*', '?', ' ']) {
                    Err(invalid(kind, value))
                } else {
                    Ok(PrincipalPattern::Service(value.into()))
                }
            }
            "Federated" => {
                if value.is_empty() || value.contains(['*', '?', ' ']) {
                    Err(invalid(kind, value))
                } else if value.contains(":saml-provider/") {
                    Ok(PrincipalPattern::NeverMatches)
                } else {
                    Ok(PrincipalPattern::Federated(value.into()))
                }
            }
            "CanonicalUser" => {
                if value.is_empty() {
                    Err(invalid(kind, value))
                } else {
                    Ok(PrincipalPattern::NeverMatches)
                }
            }
            _ => Err(PolicyError::malformed("Invalid principal in policy")),
        }
    }

    fn parse_aws(value: &str) -> Option<PrincipalPattern> {
        if value == "*" {
            return Some(PrincipalPattern::AnyAws);
        }
        if is_account_id(value) {
            return Some(PrincipalPattern::Account(value.into()));
        }
        if is_unique_id(value) {
            return Some(PrincipalPattern::UniqueId(value.into()));
        }
        if value.contains(['*', '?']) {
            return None;
        }
        let [prefix, partition, service, region, account, resource] = split_arn(value)?;
        if prefix != "arn" || partition.is_empty() || !region.is_empty() || !is_account_id(account)
        {
            return None;
        }
        let named = |rest: &str| !rest.is_empty() && !rest.ends_with('/');
        match service {
            "iam" if resource == "root" => Some(PrincipalPattern::Account(account.into())),
            "iam" if resource.strip_prefix("user/").is_some_and(named) => {
                Some(PrincipalPattern::User(value.into()))
            }
            "iam" if resource.strip_prefix("role/").is_some_and(named) => {
                Some(PrincipalPattern::Role(value.into()))
            }
            "sts" => {
                if let Some(rest) = resource.strip_prefix("assumed-role/") {
                    let (role, session) = rest.split_once('/')?;
                    (!role.is_empty() && !session.is_empty() && !session.contains('/'))
                        .then(|| PrincipalPattern::Session(value.into()))
                } else if resource.strip_prefix("federated-user/").is_some_and(named) {
                    Some(PrincipalPattern::NeverMatches)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// How this entry names the caller, if it does.
    pub(crate) fn grant_for(&self, p: &Principal) -> Option<Grant> {
        let is_service = matches!(
            p.kind,
            PrincipalKind::Service(_) | PrincipalKind::Federated(_)
        );
        match self {
            PrincipalPattern::Everyone => Some(wildcard_grant(p)),
            PrincipalPattern::AnyAws => (!is_service).then(|| wildcard_grant(p)),
            PrincipalPattern::Account(a) => {
                (!is_service && p.account == **a).then_some(Grant::Account)
            }
            PrincipalPattern::User(arn) => (matches!(p.kind, PrincipalKind::User { .. })
                && p.arn == **arn)
                .then_some(Grant::Direct),
            PrincipalPattern::Role(arn) => match &p.kind {
                PrincipalKind::AssumedRole { role_arn, .. } if role_arn == &**arn => {
                    Some(Grant::Role)
                }
                _ => None,
            },
            PrincipalPattern::Session(arn) => (matches!(p.kind, PrincipalKind::AssumedRole { .. })
                && p.arn == **arn)
                .then_some(Grant::Direct),
            PrincipalPattern::UniqueId(id) => match &p.kind {
                PrincipalKind::User { unique_id, .. } if unique_id == &**id => Some(Grant::Direct),
                PrincipalKind::AssumedRole { role_unique_id, .. } if role_unique_id == &**id => {
                    Some(Grant::Role)
                }
                _ => None,
            },
            PrincipalPattern::Service(s) => match &p.kind {
                PrincipalKind::Service(name) if name.eq_ignore_ascii_case(s) => Some(Grant::Direct),
                _ => None,
            },
            PrincipalPattern::Federated(f) => match &p.kind {
                PrincipalKind::Federated(provider) if provider == &**f => Some(Grant::Direct),
                _ => None,
            },
            PrincipalPattern::NeverMatches => None,
        }
    }

    fn covers(&self, facet: Facet, p: &Principal) -> bool {
        match self {
            PrincipalPattern::Everyone => true,
            PrincipalPattern::AnyAws => !matches!(facet, Facet::Service | Facet::Federated),
            PrincipalPattern::Account(a) => facet == Facet::Account && p.account == **a,
            PrincipalPattern::User(arn) => facet == Facet::User && p.arn == **arn,
            PrincipalPattern::Session(arn) => facet == Facet::Session && p.arn == **arn,
            PrincipalPattern::Role(arn) => facet == Facet::Role && p.principal_arn() == &**arn,
            PrincipalPattern::UniqueId(id) => match (&p.kind, facet) {
                (PrincipalKind::User { unique_id, .. }, Facet::User) => unique_id == &**id,
                (PrincipalKind::AssumedRole { role_unique_id, .. }, Facet::Role) => {
                    role_unique_id == &**id
                }
                _ => false,
            },
            PrincipalPattern::Service(s) => match &p.kind {
                PrincipalKind::Service(name) => {
                    facet == Facet::Service && name.eq_ignore_ascii_case(s)
                }
                _ => false,
            },
            PrincipalPattern::Federated(f) => match &p.kind {
                PrincipalKind::Federated(provider) => facet == Facet::Federated && provider == &**f,
                _ => false,
            },
            PrincipalPattern::NeverMatches => false,
        }
    }
}

/// A wildcard (`"*"`, `{"AWS": "*"}`) matches the caller's own ARN — for a role session the
/// session ARN — so it names the caller directly: a resource-based policy that names the
/// session is not limited by session policies or permissions boundaries (IAM User Guide,
/// "Session policies"). This is what lets a session whose session policy allows only
/// `secretsmanager:GetSecretValue` decrypt under `aws/secretsmanager`, whose key policy allows
/// `{"AWS": "*"}` with `kms:ViaService` and `kms:CallerAccount`.
const fn wildcard_grant(_p: &Principal) -> Grant {
    Grant::Direct
}

/// Does a `NotPrincipal` list leave this caller in the statement's scope?
pub(crate) fn not_principal_applies(patterns: &[PrincipalPattern], p: &Principal) -> bool {
    let facets: &[Facet] = match p.kind {
        PrincipalKind::User { .. } => &[Facet::User, Facet::Account],
        PrincipalKind::AssumedRole { .. } => &[Facet::Session, Facet::Role, Facet::Account],
        PrincipalKind::Root => &[Facet::Account],
        PrincipalKind::Service(_) => &[Facet::Service],
        PrincipalKind::Federated(_) => &[Facet::Federated],
    };
    facets
        .iter()
        .any(|&facet| !patterns.iter().any(|pat| pat.covers(facet, p)))
}

/// Grant of a `NotPrincipal` statement that applies.
pub(crate) fn not_principal_grant(p: &Principal) -> Grant {
    wildcard_grant(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCT: &str = "111122223333";

    fn aws(v: &str) -> PrincipalPattern {
        PrincipalPattern::parse("AWS", v).unwrap()
    }

    #[test]
    fn principal_forms_and_grants() {
        let user = Principal::user(ACCT, "alice", "AIDAALICEEXAMPLE12345");
        let session = Principal::assumed_role(ACCT, "ci", "AROACIEXAMPLE12345678", "i-1");
        let other = Principal::user("999988887777", "bob", "AIDABOBEXAMPLE123456");
        let table: [(&str, &Principal, Option<Grant>); 14] = [
            ("*", &user, Some(Grant::Direct)),
            ("*", &session, Some(Grant::Direct)),
            (ACCT, &user, Some(Grant::Account)),
            (
                "arn:aws:iam::111122223333:root",
                &session,
                Some(Grant::Account),
            ),
            ("arn:aws:iam::111122223333:root", &other, None),
            (
                "arn:aws:iam::111122223333:user/alice",
                &user,
                Some(Grant::Direct),
            ),
            ("arn:aws:iam::111122223333:user/alice", &session, None),
            ("AIDAALICEEXAMPLE12345", &user, Some(Grant::Direct)),
            (
                "arn:aws:iam::111122223333:role/ci",
                &session,
                Some(Grant::Role),
            ),
            ("AROACIEXAMPLE12345678", &session, Some(Grant::Role)),
            (
                "arn:aws:sts::111122223333:assumed-role/ci/i-1",
                &session,
                Some(Grant::Direct),
            ),
            (
                "arn:aws:sts::111122223333:assumed-role/ci/i-2",
                &session,
                None,
            ),
            ("AROAOTHERROLE12345678", &session, None),
            ("arn:aws:iam::111122223333:role/ci", &user, None),
        ];
        for (value, who, want) in table {
            assert_eq!(aws(value).grant_for(who), want, "{value} vs {}", who.arn);
        }
    }

    #[test]
    fn partial_wildcards_and_junk_are_invalid() {
        for bad in [
            "arn:aws:iam::111122223333:user/*",
            "arn:aws:iam::*:root",
            "arn:aws:iam::1234:root",
            "alice",
            "arn:aws:s3:::bucket",
            "arn:aws:iam::111122223333:group/devs",
        ] {
            let err = PrincipalPattern::parse("AWS", bad).unwrap_err();
            assert_eq!(
                err,
                PolicyError::Malformed(format!("Invalid principal in policy: \"AWS\":\"{bad}\""))
            );
        }
    }

    #[test]
    fn not_principal_needs_every_facet_listed() {
        let session = Principal::assumed_role(ACCT, "ci", "AROACIEXAMPLE12345678", "i-1");
        let only_session = [aws("arn:aws:sts::111122223333:assumed-role/ci/i-1")];
        assert!(not_principal_applies(&only_session, &session));
        let all = [
            aws("arn:aws:sts::111122223333:assumed-role/ci/i-1"),
            aws("arn:aws:iam::111122223333:role/ci"),
            aws(ACCT),
        ];
        assert!(!not_principal_applies(&all, &session));
    }
}
