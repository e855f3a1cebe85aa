//! IAM and STS: identity records (accounts, users, roles, access keys, STS sessions), the IAM
//! API (awsQuery, version 2010-05-08), STS (2011-06-15), the first start of a deployment, and
//! the [`Directory`](tresor_core::Directory) through which the kernel resolves credentials and identity policies.
//!
//! Every operation names its IAM action and the target's ARN to the Authorizer
//! (`tresor_core::Services::authorize`) before it reads or writes anything the caller could
//! learn from; every write is one store transaction.

pub mod api;
pub mod bootstrap;
pub mod error;
pub mod identity;
pub mod keys;
pub mod oidc;
pub mod records;
pub mod shapes;
pub mod sts;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upstream;
pub mod web_identity;

use time::OffsetDateTime;
use tresor_core::{Caller, CredentialError, IdentityPolicies, ResolvedCredential, ServiceError};
use tresor_crypto::RootKey;
use tresor_store::{ReadTxn, Store};

pub use api::{RoleRecord, arn_for_unique_id, unique_id_for_arn};
pub use identity::UserRecord;

/// IAM's answers to the kernel's questions about principals.
#[derive(Clone, Copy, Debug, Default)]
pub struct IamDirectory;

impl tresor_core::Directory for IamDirectory {
    fn resolve_credential(
        &self,
        store: &dyn Store,
        root: &RootKey,
        access_key_id: &str,
        session_token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<ResolvedCredential, CredentialError> {
        identity::resolve_credential(store, root, access_key_id, session_token, now)
    }

    fn identity_policies(
        &self,
        txn: &dyn ReadTxn,
        caller: &Caller,
    ) -> Result<IdentityPolicies, ServiceError> {
        api::identity_policies(txn, caller)
    }
}
