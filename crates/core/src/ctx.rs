//! Who is calling and in what circumstances: the authenticated caller and the request's
//! region, time and transport, handed to every operation by the server.

use time::OffsetDateTime;

/// The authenticated principal of a request. Serializable so that a service can record on
/// whose authority later background work runs (Secrets Manager replication).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Caller {
    pub account: String,
    /// The ARN AWS reports for the caller: user ARN, assumed-role session ARN or `:root`.
    pub arn: String,
    /// `aws:userid`: `AIDA…`, `AROA…:<session>`, or the account id for root.
    pub user_id: String,
    pub kind: CallerKind,
    pub access_key_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum CallerKind {
    Root,
    User {
        name: String,
        path: String,
        unique_id: String,
    },
    AssumedRole {
        role_name: String,
        role_path: String,
        role_id: String,
        session_name: String,
    },
}

impl Caller {
    pub fn root(account: &str, access_key_id: &str) -> Caller {
        Caller {
            account: account.to_string(),
            arn: format!(
                "arn:{}:iam::{account}:root",
                tresor_policy::arn::partition()
            ),
            user_id: account.to_string(),
            kind: CallerKind::Root,
            access_key_id: access_key_id.to_string(),
        }
    }
}

/// Everything about the request that is not its input.
#[derive(Debug)]
pub struct RequestCtx {
    pub request_id: String,
    /// The region from the SigV4 credential scope (the SigV4 credential scope names it).
    pub region: String,
    pub now: OffsetDateTime,
    pub source_ip: Option<std::net::IpAddr>,
    pub secure_transport: bool,
    /// Shared with the credential cache and the request's audit record (no deep copy).
    pub caller: std::sync::Arc<Caller>,
    /// Writes a read operation asks for on the side (e.g. Secrets Manager's
    /// `LastAccessedDate`): run by the server off the request threads after the operation
    /// returns, and before the response is sent, so a read never waits for the store's writer
    /// on a request thread and the caller's next request sees the write.
    pub deferred: Deferred,
    /// What the request did beyond its input and output, for its audit record (which
    /// secret version a read returned, calls made to other services on the caller's behalf).
    pub audit: crate::audit::AuditFacts,
}

/// A write to run after the operation, with the kernel at hand.
pub type DeferredWrite = Box<dyn FnOnce(&crate::Services) + Send>;

/// The [`DeferredWrite`]s of one request.
#[derive(Default)]
pub struct Deferred(parking_lot::Mutex<Vec<DeferredWrite>>);

impl Deferred {
    /// Adds a write to run after the operation returns. It must be idempotent and must not
    /// fail the request: errors are the write's own to log.
    pub fn push(&self, write: DeferredWrite) {
        self.0.lock().push(write);
    }

    /// Takes the writes added so far (the server runs them).
    pub fn take(&self) -> Vec<DeferredWrite> {
        std::mem::take(&mut *self.0.lock())
    }

    /// Runs the writes added so far, in order (tests and in-process callers).
    pub fn run(&self, services: &crate::Services) {
        for write in self.take() {
            write(services);
        }
    }
}

impl std::fmt::Debug for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Deferred({} writes)", self.0.lock().len())
    }
}
