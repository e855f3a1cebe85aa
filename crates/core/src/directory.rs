//! The kernel's questions about principals, answered by the IAM crate: which credential an
//! access key id is, and which identity policies apply to a caller. The kernel (the
//! Authorizer and the credential cache) knows nothing of IAM's records; it asks through this
//! trait, so that `core` never depends on `iam`.

use time::OffsetDateTime;
use tresor_crypto::RootKey;
use tresor_store::{ReadTxn, Store};

use crate::credential::{CredentialError, ResolvedCredential};
use crate::ctx::Caller;
use crate::error::ServiceError;

/// The identity-based policies that apply to a caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityPolicies {
    /// (label, document): `inline policy X of user Y` / `inline policy X of group G` /
    /// `inline policy X of role R` for inline policies, the policy ARN for managed ones
    /// (default version).
    pub policies: Vec<(String, String)>,
    /// The permissions boundary's document (default version), if one is set.
    pub boundary: Option<String>,
    /// Session policies of a role session (`Policy` and the `PolicyArns` documents, as they
    /// were when the session was created). Empty: the session is not narrowed.
    pub session_policies: Vec<String>,
    /// `aws:PrincipalTag/*`: the user's or role's tags, overridden by session tags.
    pub principal_tags: Vec<(String, String)>,
}

/// Principals as the kernel needs them. Implemented by `tresor_iam::Directory`.
pub trait Directory: Send + Sync {
    /// Looks up an access key (and checks the session token of a temporary credential).
    fn resolve_credential(
        &self,
        store: &dyn Store,
        root: &RootKey,
        access_key_id: &str,
        session_token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<ResolvedCredential, CredentialError>;

    /// The identity policies in force for `caller`, read through `txn`.
    fn identity_policies(
        &self,
        txn: &dyn ReadTxn,
        caller: &Caller,
    ) -> Result<IdentityPolicies, ServiceError>;
}
