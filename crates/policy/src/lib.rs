//! The IAM policy language for tresor: parse and validate policy documents, compile them into
//! matchers once, evaluate requests with AWS's evaluation logic, and explain the result in
//! AWS's wording.
//!
//! This crate is pure: no I/O, no storage, no HTTP and no clock reads. Everything a decision
//! depends on (the caller, the action, the resource, the request context including the current
//! time) comes in as data. Services gather the policies; this crate only decides.
//!
//! Entry points: [`Policy::parse`] (once, when a policy is stored), [`evaluate`] (per request),
//! [`Decision::denial_message`] (AWS's `AccessDenied` text).
//!
//! ```
//! use tresor_policy::*;
//!
//! let policy = Policy::parse(
//!     r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow",
//!         "Action":"secretsmanager:Get*","Resource":"arn:aws:secretsmanager:*:*:secret:ci/*"}}"#,
//!     PolicyKind::Identity,
//! )?;
//! let caller = Principal::assumed_role("111122223333", "ci", "AROACIEXAMPLE12345678", "i-1");
//! let context = Context::new().with_bool("aws:SecureTransport", true);
//! let secret = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ci/token-AbCdEf";
//! let source = PolicySource { id: "ci-read", source_type: SourcePolicyType::Role };
//! let set = PolicySet { identity: vec![(source, &policy)], ..PolicySet::default() };
//! let request = Request {
//!     principal: &caller,
//!     action: "secretsmanager:PutSecretValue",
//!     resource: secret,
//!     resource_account: Some("111122223333"),
//!     context: &context,
//! };
//! let decision = evaluate(&request, &set);
//! assert!(!decision.allowed);
//! assert!(decision
//!     .denial_message(&caller.arn, request.action, Some(secret))
//!     .ends_with("because no identity-based policy allows the secretsmanager:PutSecretValue action"));
//! # Ok::<(), PolicyError>(())
//! ```

#![forbid(unsafe_code)]

pub mod arn;
mod condition;
mod context;
mod document;
mod evaluate;
mod explain;
mod json;
mod matcher;
mod principal;
mod variables;

pub use context::{Context, Principal, PrincipalKind};
pub use document::{Effect, Policy, PolicyKind, Statement, map_aws_principals, non_whitespace_len};
pub use evaluate::{PolicySet, PolicySource, Request, ResourceKind, evaluate};
pub use explain::SourcePolicyType;
pub use explain::{Decision, MatchedStatement, PolicyType, Reason};
pub use json::{Position, statement_positions};

/// Managed policy document size, in characters excluding whitespace.
/// Source: AWS IAM User Guide, "IAM and AWS STS quotas" (managed policy size 6,144 characters;
/// "IAM does not count white space when calculating the size of a policy").
pub const MANAGED_POLICY_MAX_SIZE: usize = 6_144;
/// Aggregate size of all inline policies of one user (excluding whitespace); the caller sums.
/// Source: "IAM and AWS STS quotas".
pub const USER_INLINE_POLICIES_MAX_SIZE: usize = 2_048;
/// Aggregate size of all inline policies of one group (excluding whitespace); the caller sums.
pub const GROUP_INLINE_POLICIES_MAX_SIZE: usize = 5_120;
/// Aggregate size of all inline policies of one role (excluding whitespace); the caller sums.
pub const ROLE_INLINE_POLICIES_MAX_SIZE: usize = 10_240;
/// Role trust policy length (excluding whitespace), default quota. Source: "IAM and AWS STS quotas".
pub const TRUST_POLICY_MAX_SIZE: usize = 2_048;
/// Secrets Manager `ResourcePolicy` length (1–20480, whitespace counts: it is the API
/// parameter's length constraint). Source: Secrets Manager API reference, PutResourcePolicy.
pub const SECRET_RESOURCE_POLICY_MAX_SIZE: usize = 20_480;
/// KMS key policy size, 32 KB (32,768 bytes). Source: AWS KMS Developer Guide, "Quotas".
pub const KEY_POLICY_MAX_SIZE: usize = 32_768;
/// Inline session policy passed to `AssumeRole` (`Policy`, 1–2048 characters).
/// Source: AWS STS API reference, AssumeRole.
pub const SESSION_POLICY_MAX_SIZE: usize = 2_048;

/// Why a policy document was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The document is not a valid policy of its kind; the message is AWS's wording where known
    /// (IAM `MalformedPolicyDocument`, Secrets Manager / KMS `MalformedPolicyDocumentException`).
    #[error("{0}")]
    Malformed(String),
    /// The document exceeds the size quota of its kind (IAM reports this as `LimitExceeded`).
    #[error("Cannot exceed quota for PolicySize: {limit}")]
    TooLarge {
        /// Size as AWS counts it for this kind (characters, excluding whitespace for IAM kinds).
        size: usize,
        /// The quota.
        limit: usize,
    },
}

impl PolicyError {
    pub(crate) fn malformed(message: impl Into<String>) -> Self {
        PolicyError::Malformed(message.into())
    }

    /// AWS's generic message for a document that is not valid policy grammar.
    pub(crate) fn syntax() -> Self {
        PolicyError::Malformed("Syntax errors in policy.".to_owned())
    }
}
