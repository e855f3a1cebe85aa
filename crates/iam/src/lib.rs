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
pub mod records;
pub mod shapes;
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
    /// A row of the table: decodes the parameters into the handler's input, runs it and
    /// encodes its output; errors become the wire error.
    macro_rules! typed {
        ($f:expr, $err:ty) => {{
            let h: QueryHandler = |s: &Services, c: &RequestCtx, p: &QueryParams| {
                let input = tresor_wire::query::decode(p)?;
                let output = $f(s, c, input).map_err(|e: $err| AwsError::from(e))?;
                tresor_wire::xml::encode(&output)
            };
            Some(h)
        }};
    }
    use error::StsError;
    match (service, op) {
        (ServiceId::Sts, "GetCallerIdentity") => typed!(sts::get_caller_identity, StsError),
        (ServiceId::Sts, "AssumeRole") => typed!(sts::assume_role, StsError),
        (ServiceId::Sts, "GetSessionToken") => typed!(sts::get_session_token, StsError),
        (ServiceId::Iam, op) => api::handler(op),
        _ => None,
    }
}
