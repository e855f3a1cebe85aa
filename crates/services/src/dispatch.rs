//! The dispatch table: service + operation name → handler. An operation that is not in the
//! table answers AWS's unknown-operation error — nothing answers success without doing its
//! work.

use std::sync::Arc;

use time::OffsetDateTime;
use tresor_crypto::RootKey;
use tresor_store::Store;
use tresor_wire::query::QueryParams;
use tresor_wire::{AwsError, Protocol, ServiceId};

use crate::ctx::RequestCtx;
use crate::identity::{self, CredentialError, ResolvedCredential};
use crate::sts;

/// A decoded request body, by protocol.
pub enum Input<'a> {
    Json(&'a [u8]),
    Query(&'a QueryParams),
}

/// An encoded response body, by protocol.
pub enum Output {
    /// The awsJson1.1 body.
    Json(Vec<u8>),
    /// The inner XML of `<OpResult>`, or `None` for operations without output.
    Xml(Option<String>),
}

/// The services of one deployment, sharing the store and root key.
pub struct Services {
    store: Arc<dyn Store>,
    root: Arc<RootKey>,
}

type QueryHandler = fn(&Services, &RequestCtx, &QueryParams) -> Result<Option<String>, AwsError>;

impl Services {
    pub fn new(store: Arc<dyn Store>, root: Arc<RootKey>) -> Self {
        Services { store, root }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn root_key(&self) -> &RootKey {
        &self.root
    }

    /// The SigV4 check's credential lookup.
    pub fn resolve_credential(
        &self,
        access_key_id: &str,
        session_token: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<ResolvedCredential, CredentialError> {
        identity::resolve_credential(&self.store, &self.root, access_key_id, session_token, now)
    }

    /// Whether `op` is an operation of `service` that tresor implements.
    pub fn knows(&self, service: ServiceId, op: &str) -> bool {
        match service.protocol() {
            Protocol::AwsQuery => query_handler(service, op).is_some(),
            Protocol::AwsJson11 => false,
        }
    }

    pub fn handle(
        &self,
        ctx: &RequestCtx,
        service: ServiceId,
        op: &str,
        input: Input<'_>,
    ) -> Result<Output, AwsError> {
        match (service.protocol(), input) {
            (Protocol::AwsQuery, Input::Query(params)) => {
                let handler =
                    query_handler(service, op).ok_or_else(|| AwsError::invalid_action(op))?;
                handler(self, ctx, params).map(Output::Xml)
            }
            (Protocol::AwsJson11, Input::Json(_body)) => {
                Err(AwsError::unknown_operation(Protocol::AwsJson11))
            }
            (protocol, _) => Err(AwsError::unknown_operation(protocol)),
        }
    }
}

fn query_handler(service: ServiceId, op: &str) -> Option<QueryHandler> {
    match (service, op) {
        (ServiceId::Sts, "GetCallerIdentity") => Some(sts::get_caller_identity),
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
