//! AWS's policy evaluation logic over compiled policies: explicit deny first, then the
//! resource-policy rules that depend on how the caller is named, then identity policies
//! intersected with the permissions boundary and session policies.
//!
//! Sources (IAM User Guide): "Policy evaluation logic", "How AWS enforcement code logic
//! evaluates requests to allow or deny access", "Policy evaluation for requests within a single
//! account", "Cross-account policy evaluation logic"; AWS KMS Developer Guide, "Key policies in
//! AWS KMS" (the key policy is required; an account principal only enables IAM policies). The
//! evaluation is a pure function; it reads no clock and allocates only for matched statements
//! and policy variables.

use crate::context::Context;
use crate::context::{Env, Principal, PrincipalKind};
use crate::document::{Effect, Policy, Statement};
use crate::explain::{Decision, MatchedStatement, PolicyType, Reason, SourcePolicyType};
use crate::principal::{Grant, not_principal_applies, not_principal_grant};

/// One authorization question.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: &'a Principal,
    /// `service:Action`, e.g. `secretsmanager:GetSecretValue`.
    pub action: &'a str,
    /// The resource ARN, or `*` for actions without resource-level permissions.
    pub resource: &'a str,
    /// The account owning the resource; `None` means the caller's own account.
    pub resource_account: Option<&'a str>,
    pub context: &'a Context,
}

/// Where an identity or resource policy came from, for explanations and the simulation API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicySource<'a> {
    /// Policy ARN for managed policies, the inline policy name, or the resource ARN.
    pub id: &'a str,
    pub source_type: SourcePolicyType,
}

/// What kind of resource policy the target has; decides whether it is mandatory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    /// No resource policy applies (IAM identity-only decisions).
    None,
    /// An optional resource policy, e.g. a Secrets Manager secret policy.
    Generic,
    /// A KMS key: the key policy must allow, directly or by delegating to the account.
    KmsKey,
    /// A role trust policy for `sts:AssumeRole`: must allow, same rule as KMS.
    RoleTrust,
}

/// Every policy that applies to one request.
#[derive(Debug, Clone)]
pub struct PolicySet<'a> {
    /// Inline and managed policies of the user (and its groups) or of the session's role.
    pub identity: Vec<(PolicySource<'a>, &'a Policy)>,
    pub boundary: Option<&'a Policy>,
    /// Session policies (inline and managed `PolicyArns`); together they are one filter.
    pub session: Vec<&'a Policy>,
    pub resource: Option<(PolicySource<'a>, &'a Policy)>,
    pub resource_kind: ResourceKind,
}

impl Default for PolicySet<'_> {
    fn default() -> Self {
        PolicySet {
            identity: Vec::new(),
            boundary: None,
            session: Vec::new(),
            resource: None,
            resource_kind: ResourceKind::None,
        }
    }
}

/// What one group of policies said about the request.
#[derive(Debug, Default)]
struct Scan {
    /// Index into `matched` of the first applicable Allow.
    allow: Option<usize>,
    deny: bool,
    /// Strongest way a resource-policy Allow named the caller, and its index into `matched`.
    grant: Option<(Grant, usize)>,
}

struct Evaluator<'r> {
    req: &'r Request<'r>,
    env: Env<'r>,
    matched: Vec<MatchedStatement>,
}

impl<'r> Evaluator<'r> {
    fn scan(
        &mut self,
        scan: &mut Scan,
        policy: &Policy,
        policy_type: PolicyType,
        source: Option<&PolicySource<'_>>,
    ) {
        let check_principal = policy_type == PolicyType::Resource;
        for (index, statement) in policy.statements.iter().enumerate() {
            let Some(grant) = self.applies(statement, check_principal) else {
                continue;
            };
            self.matched.push(MatchedStatement {
                policy_type,
                source_id: source.map(|s| s.id.to_owned()),
                source_type: source.map(|s| s.source_type),
                sid: statement.sid.clone(),
                statement_index: index,
                effect: statement.effect,
            });
            let at = self.matched.len() - 1;
            match statement.effect {
                Effect::Deny => scan.deny = true,
                Effect::Allow => {
                    scan.allow.get_or_insert(at);
                    if check_principal && scan.grant.is_none_or(|(g, _)| grant > g) {
                        scan.grant = Some((grant, at));
                    }
                }
            }
        }
    }

    /// Does the statement apply to the request? Returns how it names the caller (always
    /// `Direct` when principals are not checked).
    fn applies(&self, s: &Statement, check_principal: bool) -> Option<Grant> {
        let req = self.req;
        let env = &self.env;
        let action_hit = s
            .action
            .matchers
            .iter()
            .any(|m| m.matches(req.action, true, env));
        if action_hit == s.action.negated {
            return None;
        }
        if let Some(resource) = &s.resource {
            let hit = resource
                .matchers
                .iter()
                .any(|m| m.matches(req.resource, env));
            if hit == resource.negated {
                return None;
            }
        }
        let grant = if check_principal {
            // A resource policy statement without a principal names nobody.
            let p = s.principal.as_ref()?;
            if p.negated {
                if !not_principal_applies(&p.patterns, req.principal) {
                    return None;
                }
                not_principal_grant(req.principal)
            } else {
                p.patterns
                    .iter()
                    .filter_map(|pat| pat.grant_for(req.principal))
                    .max()?
            }
        } else {
            Grant::Direct
        };
        s.conditions
            .iter()
            .all(|c| c.evaluate(env))
            .then_some(grant)
    }
}

/// Decide a request. See the module documentation for the rules and their sources.
pub fn evaluate(req: &Request<'_>, set: &PolicySet<'_>) -> Decision {
    let mut ev = Evaluator {
        req,
        env: Env {
            principal: req.principal,
            context: req.context,
        },
        matched: Vec::new(),
    };
    let mut identity = Scan::default();
    for (source, policy) in &set.identity {
        ev.scan(&mut identity, policy, PolicyType::Identity, Some(source));
    }
    let mut boundary = Scan::default();
    if let Some(policy) = set.boundary {
        ev.scan(&mut boundary, policy, PolicyType::Boundary, None);
    }
    let mut session = Scan::default();
    for policy in &set.session {
        ev.scan(&mut session, policy, PolicyType::Session, None);
    }
    let mut resource = Scan::default();
    if let Some((source, policy)) = &set.resource {
        ev.scan(&mut resource, policy, PolicyType::Resource, Some(source));
    }
    let reason = decide(
        req,
        set,
        &identity,
        &boundary,
        &session,
        &resource,
        &ev.matched,
    );
    Decision {
        allowed: matches!(reason, Reason::Allowed(_)),
        reason,
        matched: ev.matched,
    }
}

fn decide(
    req: &Request<'_>,
    set: &PolicySet<'_>,
    identity: &Scan,
    boundary: &Scan,
    session: &Scan,
    resource: &Scan,
    matched: &[MatchedStatement],
) -> Reason {
    // 1. An explicit deny in any applicable policy wins.
    for (scan, policy_type) in [
        (identity, PolicyType::Identity),
        (boundary, PolicyType::Boundary),
        (session, PolicyType::Session),
        (resource, PolicyType::Resource),
    ] {
        if scan.deny {
            return Reason::ExplicitDeny(policy_type);
        }
    }
    let allowed_by = |i: usize| Reason::Allowed(matched.get(i).cloned());
    let principal = req.principal;

    // 2. Identity side: identity Allow ∩ boundary ∩ session policies. The account root user
    //    needs no identity policy ("all requests are implicitly denied with the exception of
    //    the AWS account root user, which has full access").
    let is_root = matches!(principal.kind, PrincipalKind::Root);
    let boundary_ok = set.boundary.is_none() || boundary.allow.is_some();
    let session_ok = set.session.is_empty() || session.allow.is_some();
    let identity_allows = is_root || identity.allow.is_some();
    let identity_outcome = || {
        if !identity_allows {
            Reason::NoIdentityAllow
        } else if !boundary_ok {
            Reason::NoBoundaryAllow
        } else if !session_ok {
            Reason::NoSessionAllow
        } else {
            match identity.allow {
                Some(i) => allowed_by(i),
                None => Reason::Allowed(None),
            }
        }
    };

    // A service or web-identity principal has no identity policies: only a resource policy
    // can allow it.
    if matches!(
        principal.kind,
        PrincipalKind::Service(_) | PrincipalKind::Federated(_)
    ) {
        return match resource.grant {
            Some((_, i)) => allowed_by(i),
            None => Reason::NoResourceAllow,
        };
    }

    let same_account = req
        .resource_account
        .is_none_or(|account| account == principal.account);
    if !same_account {
        // 3. Cross-account: the resource policy must name the caller or its account AND the
        //    caller's own account must allow it ("Cross-account policy evaluation logic").
        //    Without a resource policy nothing can grant access across accounts.
        return match resource.grant {
            Some((_, i)) => match identity_outcome() {
                Reason::Allowed(_) => allowed_by(i),
                denied => denied,
            },
            None => Reason::NoResourceAllow,
        };
    }

    let resource_required = match set.resource_kind {
        // A resource policy passed with `ResourceKind::None` is treated as a generic one.
        ResourceKind::None if set.resource.is_none() => return identity_outcome(),
        ResourceKind::None | ResourceKind::Generic => false,
        ResourceKind::KmsKey | ResourceKind::RoleTrust => true,
    };

    // 4. Same account: how the resource policy names the caller decides whether it suffices.
    match resource.grant {
        // The user ARN, the exact session ARN (or a service / wildcard for a non-session
        // caller): not limited by an implicit deny in identity policies, boundaries or session
        // policies.
        Some((Grant::Direct, i)) => allowed_by(i),
        // The role ARN: allows the role's sessions unless a permissions boundary or session
        // policy implicitly denies.
        Some((Grant::Role, i)) => {
            if !boundary_ok {
                Reason::NoBoundaryAllow
            } else if !session_ok {
                Reason::NoSessionAllow
            } else {
                allowed_by(i)
            }
        }
        // The account: delegates to the identity policies (KMS: "enables IAM policies").
        Some((Grant::Account, _)) => identity_outcome(),
        // KMS keys and role trust: the resource policy is mandatory; IAM alone never suffices.
        None if resource_required => Reason::NoResourceAllow,
        None => identity_outcome(),
    }
}
