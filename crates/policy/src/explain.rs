//! The outcome of an evaluation ([`Decision`]) and how to tell it: AWS's `AccessDenied`
//! message, the simulation API's `EvalDecision`, and a readable trace of matched statements.
//! No evaluation logic lives here.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::document::Effect;

/// IAM simulation API `SourcePolicyType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourcePolicyType {
    User,
    Group,
    Role,
    AwsManaged,
    UserManaged,
    Resource,
    None,
}

impl SourcePolicyType {
    /// The value as the IAM API spells it (`user`, `aws-managed` …).
    pub fn as_str(self) -> &'static str {
        match self {
            SourcePolicyType::User => "user",
            SourcePolicyType::Group => "group",
            SourcePolicyType::Role => "role",
            SourcePolicyType::AwsManaged => "aws-managed",
            SourcePolicyType::UserManaged => "user-managed",
            SourcePolicyType::Resource => "resource",
            SourcePolicyType::None => "none",
        }
    }
}

/// The kind of policy a statement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PolicyType {
    Identity,
    Resource,
    Boundary,
    Session,
}

impl PolicyType {
    /// The phrase AWS uses in denial messages ("an explicit deny in an identity-based policy").
    pub fn phrase(self) -> &'static str {
        match self {
            PolicyType::Identity => "an identity-based policy",
            PolicyType::Resource => "a resource-based policy",
            PolicyType::Boundary => "a permissions boundary",
            PolicyType::Session => "a session policy",
        }
    }
}

/// A statement that applied to the request (action, resource, principal and conditions all
/// matched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedStatement {
    pub policy_type: PolicyType,
    /// The policy's id as the caller named it in the `PolicySet` (policy ARN, inline policy
    /// name, secret ARN …); `None` for boundary and session policies.
    pub source_id: Option<String>,
    pub source_type: Option<SourcePolicyType>,
    pub sid: Option<Arc<str>>,
    /// Zero-based position of the statement in its policy.
    pub statement_index: usize,
    pub effect: Effect,
}

/// Why the decision came out as it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A matching `Deny` statement in a policy of this type.
    ExplicitDeny(PolicyType),
    NoIdentityAllow,
    NoResourceAllow,
    NoBoundaryAllow,
    NoSessionAllow,
    /// Allowed by this statement; `None` when the account root user's implicit permissions
    /// sufficed (no policy is needed for root in its own account).
    Allowed(Option<MatchedStatement>),
}

/// The result of [`crate::evaluate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub reason: Reason,
    /// Every statement that applied, allow and deny, in evaluation order (identity, boundary,
    /// session, resource).
    pub matched: Vec<MatchedStatement>,
}

impl Decision {
    /// AWS's `AccessDenied` message. Source: IAM User Guide, "Troubleshoot access denied error
    /// messages" (`User: <arn> is not authorized to perform: <action> on resource: <resource>
    /// because no identity-based policy allows the <action> action`, `… with an explicit deny in
    /// a resource-based policy`). Without a resource the `on resource:` part is left out.
    pub fn denial_message(&self, caller_arn: &str, action: &str, resource: Option<&str>) -> String {
        let mut message = format!("User: {caller_arn} is not authorized to perform: {action}");
        if let Some(resource) = resource {
            let _ = write!(message, " on resource: {resource}");
        }
        let because = |what: &str| format!(" because no {what} allows the {action} action");
        let tail = match &self.reason {
            Reason::ExplicitDeny(t) => format!(" with an explicit deny in {}", t.phrase()),
            Reason::NoIdentityAllow => because("identity-based policy"),
            Reason::NoResourceAllow => because("resource-based policy"),
            Reason::NoBoundaryAllow => because("permissions boundary"),
            Reason::NoSessionAllow => because("session policy"),
            Reason::Allowed(_) => String::new(),
        };
        message.push_str(&tail);
        message
    }

    /// IAM simulation API `EvalDecision`: `allowed`, `explicitDeny` or `implicitDeny`.
    pub fn eval_decision(&self) -> &'static str {
        match self.reason {
            Reason::Allowed(_) => "allowed",
            Reason::ExplicitDeny(_) => "explicitDeny",
            _ => "implicitDeny",
        }
    }

    /// A short human-readable account of the decision, one line per matched statement.
    pub fn explain(&self) -> String {
        let mut out = format!("{}: {:?}\n", self.eval_decision(), self.reason_summary());
        for m in &self.matched {
            let _ = writeln!(
                out,
                "  {} {:?} policy {} statement #{}{}",
                m.effect.as_str(),
                m.policy_type,
                m.source_id.as_deref().unwrap_or("-"),
                m.statement_index,
                m.sid
                    .as_deref()
                    .map(|s| format!(" (Sid {s})"))
                    .unwrap_or_default(),
            );
        }
        out
    }

    fn reason_summary(&self) -> String {
        match &self.reason {
            Reason::ExplicitDeny(t) => format!("explicit deny in {}", t.phrase()),
            Reason::NoIdentityAllow => "no identity-based policy allows".into(),
            Reason::NoResourceAllow => "no resource-based policy allows".into(),
            Reason::NoBoundaryAllow => "no permissions boundary allows".into(),
            Reason::NoSessionAllow => "no session policy allows".into(),
            Reason::Allowed(None) => "allowed as the account root user".into(),
            Reason::Allowed(Some(m)) => format!(
                "allowed by {} statement #{}",
                m.policy_type.phrase(),
                m.statement_index
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied(reason: Reason) -> Decision {
        Decision {
            allowed: false,
            reason,
            matched: Vec::new(),
        }
    }

    /// Source: IAM User Guide, "Troubleshoot access denied error messages".
    #[test]
    fn denial_messages_use_aws_wording() {
        let caller = "arn:aws:sts::111122223333:assumed-role/ci/i-1";
        let action = "secretsmanager:GetSecretValue";
        let res = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci-AbCdEf";
        let prefix =
            format!("User: {caller} is not authorized to perform: {action} on resource: {res}");
        let rows = [
            (
                Reason::NoIdentityAllow,
                format!("{prefix} because no identity-based policy allows the {action} action"),
            ),
            (
                Reason::ExplicitDeny(PolicyType::Identity),
                format!("{prefix} with an explicit deny in an identity-based policy"),
            ),
            (
                Reason::ExplicitDeny(PolicyType::Resource),
                format!("{prefix} with an explicit deny in a resource-based policy"),
            ),
            (
                Reason::NoResourceAllow,
                format!("{prefix} because no resource-based policy allows the {action} action"),
            ),
            (
                Reason::NoBoundaryAllow,
                format!("{prefix} because no permissions boundary allows the {action} action"),
            ),
            (
                Reason::NoSessionAllow,
                format!("{prefix} because no session policy allows the {action} action"),
            ),
        ];
        for (reason, want) in rows {
            assert_eq!(
                denied(reason).denial_message(caller, action, Some(res)),
                want
            );
        }
        assert_eq!(
            denied(Reason::NoIdentityAllow).denial_message(
                caller,
                "secretsmanager:ListSecrets",
                None
            ),
            format!(
                "User: {caller} is not authorized to perform: secretsmanager:ListSecrets because \
                 no identity-based policy allows the secretsmanager:ListSecrets action"
            )
        );
    }

    #[test]
    fn eval_decision_strings() {
        assert_eq!(
            denied(Reason::NoIdentityAllow).eval_decision(),
            "implicitDeny"
        );
        assert_eq!(
            denied(Reason::ExplicitDeny(PolicyType::Session)).eval_decision(),
            "explicitDeny"
        );
        assert!(
            denied(Reason::NoSessionAllow)
                .explain()
                .starts_with("implicitDeny")
        );
    }
}
