//! IAM and STS: identity records (accounts, users, roles, access keys, STS sessions), the IAM
//! API (awsQuery, version 2010-05-08), STS (2011-06-15), the first start of a deployment, and
//! the [`Directory`] through which the kernel resolves credentials and identity policies.
//!
//! Every operation names its IAM action and the target's ARN to the Authorizer
//! (`tresor_core::Services::authorize`) before it reads or writes anything the caller could
//! learn from; every write is one store transaction.

pub mod api;
pub mod bootstrap;
pub mod identity;
pub mod keys;
pub mod sts;
#[cfg(feature = "testing")]
pub mod testing;

use time::OffsetDateTime;
use tresor_core::{
    Caller, CredentialError, IdentityPolicies, RequestCtx, ResolvedCredential, ServiceError,
    Services,
};
use tresor_crypto::RootKey;
use tresor_store::{ReadTxn, Store};
use tresor_wire::query::QueryParams;
use tresor_wire::{AwsError, ServiceId};

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

/// The handler signature of an awsQuery operation: the parameters in, the inner XML of the
/// `<{Action}Result>` element out (`None`: no result element).
pub type QueryHandler =
    fn(&Services, &RequestCtx, &QueryParams) -> Result<Option<String>, AwsError>;

/// The awsQuery operation `op` of `service` (IAM, STS), if tresor implements it; the server
/// answers AWS's unknown-action error otherwise.
pub fn query_handler(service: ServiceId, op: &str) -> Option<QueryHandler> {
    match (service, op) {
        (ServiceId::Sts, "GetCallerIdentity") => Some(sts::get_caller_identity),
        (ServiceId::Sts, "AssumeRole") => Some(sts::assume_role),
        (ServiceId::Sts, "GetSessionToken") => Some(sts::get_session_token),
        (ServiceId::Iam, op) => api::handler(op),
        _ => None,
    }
}
