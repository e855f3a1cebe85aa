//! The dispatch table: service + operation name → handler. An operation that is not in the
//! table answers AWS's unknown-operation error — nothing answers success without doing its
//! work.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;
use tresor_crypto::RootKey;
use tresor_store::Store;
use tresor_wire::query::QueryParams;
use tresor_wire::{AwsError, Protocol, ServiceId};

use crate::authz_impl::PolicyCache;
use crate::cache::{CredentialCache, IdentityCache, RecordCache};
use crate::ctx::RequestCtx;
use crate::generation::GenerationStore;
use crate::identity::{self, CredentialError, ResolvedCredential};
use crate::sts;

/// The services of one deployment, sharing the store and root key.
pub struct Services {
    store: Arc<dyn Store>,
    root: Arc<RootKey>,
    policies: PolicyCache,
    /// Bumped after every committed change to identity data (see [`crate::generation`]).
    identity_generation: Arc<AtomicU64>,
    credentials: CredentialCache,
    identities: IdentityCache,
    records: RecordCache,
}

pub type QueryHandler =
    fn(&Services, &RequestCtx, &QueryParams) -> Result<Option<String>, AwsError>;

/// The handler signature of an awsJson1.1 operation: the raw body in, the encoded output out.
/// Build one from a typed handler with [`crate::json_handler!`].
pub type JsonHandler = fn(&Services, &RequestCtx, &[u8]) -> Result<Vec<u8>, AwsError>;

/// Wraps `fn(&Services, &RequestCtx, Input) -> Result<Output, AwsError>` (Input: Deserialize,
/// Output: Serialize) into a [`JsonHandler`]: the wire layer decodes and encodes, the handler
/// only sees typed values.
#[macro_export]
macro_rules! json_handler {
    ($f:path) => {
        |services: &$crate::Services,
         ctx: &$crate::RequestCtx,
         body: &[u8]|
         -> Result<Vec<u8>, tresor_wire::AwsError> {
            let input = tresor_wire::json::decode(body)?;
            let output = $f(services, ctx, input)?;
            tresor_wire::json::encode(&output)
        }
    };
}

impl Services {
    pub fn new(store: Arc<dyn Store>, root: Arc<RootKey>) -> Self {
        let counting = GenerationStore::new(store);
        let identity_generation = counting.counter();
        Services {
            store: Arc::new(counting),
            root,
            policies: PolicyCache::default(),
            identity_generation,
            credentials: CredentialCache::default(),
            identities: IdentityCache::default(),
            records: RecordCache::default(),
        }
    }

    /// The number of identity changes committed so far; caches keyed by it are never stale.
    pub fn identity_generation(&self) -> u64 {
        self.identity_generation.load(Ordering::SeqCst)
    }

    pub fn policy_cache(&self) -> &PolicyCache {
        &self.policies
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn root_key(&self) -> &RootKey {
        &self.root
    }

    /// The SigV4 check's credential lookup, served from the credential cache while no
    /// identity change has committed since it was filled.
    pub fn resolve_credential(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<ResolvedCredential, CredentialError> {
        // Read the generation before the store: data read afterwards is at least that new.
        let generation = self.identity_generation();
        if let Some(hit) = self
            .credentials
            .get(access_key_id, session_token, generation, now)?
        {
            return Ok(hit);
        }
        let resolved = identity::resolve_credential(
            &self.store,
            &self.root,
            access_key_id,
            session_token,
            now,
        )?;
        self.credentials
            .insert(access_key_id, generation, &resolved);
        Ok(resolved)
    }

    /// Decoded records for hot reads (see [`RecordCache`]).
    pub fn records(&self) -> &RecordCache {
        &self.records
    }

    pub(crate) fn identity_cache(&self) -> &IdentityCache {
        &self.identities
    }
}

/// The awsQuery operation `op` of `service` (IAM, STS), if tresor implements it; the server
/// answers AWS's unknown-action error otherwise. (The awsJson1.1 services live in their own
/// crates; the server's dispatch table finds them.)
pub fn query_handler(service: ServiceId, op: &str) -> Option<QueryHandler> {
    match (service, op) {
        (ServiceId::Sts, "GetCallerIdentity") => Some(sts::get_caller_identity),
        (ServiceId::Sts, "AssumeRole") => Some(sts::assume_role),
        (ServiceId::Sts, "GetSessionToken") => Some(sts::get_session_token),
        (ServiceId::Iam, op) => crate::iam::handler(op),
        _ => None,
    }
}

/// The protocol of the service an IAM action belongs to (`iam:CreateRole` → awsQuery), for
/// rendering errors raised while authorizing it.
pub fn protocol_of_action(action: &str) -> Protocol {
    match action.split(':').next() {
        Some("iam") | Some("sts") => Protocol::AwsQuery,
        _ => Protocol::AwsJson11,
    }
}
