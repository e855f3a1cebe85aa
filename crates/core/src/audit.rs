//! The audit seam between services and the server: what a request did that its input and
//! output do not show ([`AuditFacts`]: which secret version a read returned, the calls one
//! service made to another on the caller's behalf), and the hook that puts a request's audit
//! record into the same store transaction as the request's own writes ([`AuditingStore`]).
//!
//! Services only *note* facts in their [`crate::RequestCtx`]; the server builds and writes the
//! records (CloudTrail's shape). Facts never carry a secret value: ids, ARNs, labels and
//! encryption-context keys only.
//!
//! The commit hook: the server enters [`with_pending`] around an operation. Every write
//! transaction that operation commits on this thread gets the pending record written into it
//! just before its commit, so a change is never durable without its audit record, and a
//! record that cannot be written fails the commit (fail-closed). Transactions begun on other
//! threads (background jobs, deferred bookkeeping, the server's own audit batches) are not
//! touched.

use std::cell::RefCell;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tresor_store::{ReadTxn, Store, StoreError, WriteTxn};

/// A resource an event names (CloudTrail's `resources`: `ARN`, `type`, `accountId`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuditResource {
    /// CloudTrail's resource type, e.g. `AWS::SecretsManager::Secret`, `AWS::KMS::Key`.
    pub resource_type: String,
    pub arn: String,
}

/// A read of a secret version: what the caller got.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRead {
    pub secret_arn: String,
    pub version_id: String,
    /// The staging labels the version had when it was read.
    pub version_stages: Vec<String>,
}

/// A call one service made to another on the caller's behalf (CloudTrail records it as an
/// event of its own with `userIdentity.invokedBy`).
#[derive(Clone, Debug)]
pub struct Hop {
    /// `kms.amazonaws.com`, `secretsmanager.amazonaws.com` …
    pub event_source: String,
    pub event_name: String,
    /// The service that made the call: `secretsmanager.amazonaws.com`, `ssm.amazonaws.com`.
    pub invoked_by: String,
    pub read_only: bool,
    pub resources: Vec<AuditResource>,
    /// `requestParameters`: the JSON text of an object, written by the calling service (its
    /// members in byte order of their names, as a `serde_json` map writes them). Redacted by
    /// construction: ids, ARNs and encryption contexts only.
    pub request_parameters: String,
    /// `additionalEventData`: the JSON text of an object, written like `request_parameters`.
    pub additional_event_data: Option<String>,
    /// The error code when the call failed.
    pub error_code: Option<String>,
}

/// The caller of `AssumeRoleWithWebIdentity` as CloudTrail names it (`userIdentity.type`
/// `WebIdentityUser`): the provider, `<provider>:<audience>:<subject>` and the subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebIdentityUser {
    /// The provider's host and path (`token.actions.githubusercontent.com`).
    pub identity_provider: String,
    pub principal_id: String,
    pub user_name: String,
    /// The account of the role asked for.
    pub account: String,
}

/// Everything a request's services noted for its audit record.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    pub reads: Vec<SecretRead>,
    /// (action, resource ARN) of every question asked of the Authorizer, in order.
    pub asked: Vec<(String, String)>,
    pub resources: Vec<AuditResource>,
    pub hops: Vec<Hop>,
    /// The outside identity of an unsigned federation request whose token checked out.
    pub web_identity_user: Option<WebIdentityUser>,
}

/// The facts slot of a request (shared with the server's pending record, hence the `Arc`).
#[derive(Clone, Debug, Default)]
pub struct AuditFacts(Arc<parking_lot::Mutex<Noted>>);

/// The facts, and how many times they changed (a record built from them is current while
/// that count is the same).
#[derive(Debug, Default)]
struct Noted {
    facts: Facts,
    changes: u64,
}

impl AuditFacts {
    /// A secret version was read and returned to the caller.
    pub fn secret_read(&self, secret_arn: &str, version_id: &str, version_stages: &[String]) {
        let mut noted = self.0.lock();
        noted.changes += 1;
        noted.facts.reads.push(SecretRead {
            secret_arn: secret_arn.to_string(),
            version_id: version_id.to_string(),
            version_stages: version_stages.to_vec(),
        });
        push_resource(
            &mut noted.facts.resources,
            "AWS::SecretsManager::Secret",
            secret_arn,
        );
    }

    /// The request touched `arn` (of CloudTrail type `resource_type`).
    pub fn resource(&self, resource_type: &str, arn: &str) {
        let mut noted = self.0.lock();
        if push_resource(&mut noted.facts.resources, resource_type, arn) {
            noted.changes += 1;
        }
    }

    /// The Authorizer was asked about `action` on `resource` (`*`: no resource).
    pub fn asked(&self, action: &str, resource: &str) {
        let mut noted = self.0.lock();
        if resource != "*"
            && noted.facts.asked.len() < MAX_ASKED
            && !noted
                .facts
                .asked
                .iter()
                .any(|(a, r)| a == action && r == resource)
        {
            noted.changes += 1;
            noted
                .facts
                .asked
                .push((action.to_string(), resource.to_string()));
        }
    }

    /// An unsigned federation request's token checked out: its outside identity.
    pub fn web_identity_user(&self, user: WebIdentityUser) {
        let mut noted = self.0.lock();
        noted.changes += 1;
        noted.facts.web_identity_user = Some(user);
    }

    /// A call to another service on the caller's behalf.
    pub fn hop(&self, hop: Hop) {
        let mut noted = self.0.lock();
        noted.changes += 1;
        noted.facts.hops.push(hop);
    }

    /// What was noted so far.
    pub fn snapshot(&self) -> Facts {
        self.0.lock().facts.clone()
    }

    /// Runs `f` on what was noted so far and a stamp of it: the same stamp later means
    /// nothing was noted since ([`AuditFacts::stamp`]).
    pub fn with_stamp<R>(&self, f: impl FnOnce(&Facts, u64) -> R) -> R {
        let noted = self.0.lock();
        f(&noted.facts, noted.changes)
    }

    /// The stamp of what was noted so far.
    pub fn stamp(&self) -> u64 {
        self.0.lock().changes
    }
}

/// Bounds the resources one event names (a listing may ask about many).
const MAX_ASKED: usize = 64;

/// Adds `arn` unless it is there; whether it was added.
fn push_resource(resources: &mut Vec<AuditResource>, resource_type: &str, arn: &str) -> bool {
    if resources.iter().any(|r| r.arn == arn) {
        return false;
    }
    resources.push(AuditResource {
        resource_type: resource_type.to_string(),
        arn: arn.to_string(),
    });
    true
}

/// A request's audit record(s), written into each write transaction its operation commits.
/// Writing must be idempotent (the same keys every time): an operation may commit more than
/// one transaction, and the server rewrites the final record after the operation.
pub trait PendingRecord: Send + Sync {
    /// The record as of what was noted so far, built when a write transaction begins —
    /// before it takes the store's writer, which is not held while the record is built
    /// (measured: ~47,000 instructions of a PutParameter's, while every other writer waited).
    fn prepare(&self) -> Result<PreparedRecord, StoreError>;
    /// Writes the record into `txn`: `prepared` as it is while nothing was noted since it
    /// was built, else built anew.
    fn write(&self, txn: &mut dyn WriteTxn, prepared: PreparedRecord) -> Result<(), StoreError>;
}

/// A pending record built ahead of its transaction ([`PendingRecord::prepare`]).
pub struct PreparedRecord {
    pub key: String,
    pub value: Vec<u8>,
    /// [`AuditFacts::stamp`] of the facts it was built from.
    pub stamp: u64,
}

thread_local! {
    static PENDING: RefCell<Option<Arc<dyn PendingRecord>>> = const { RefCell::new(None) };
}

/// Runs `f` with `pending` as this thread's pending audit record (restored afterwards, also
/// on unwinding).
pub fn with_pending<R>(pending: Arc<dyn PendingRecord>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Arc<dyn PendingRecord>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            PENDING.with(|p| *p.borrow_mut() = previous);
        }
    }
    let previous = PENDING.with(|p| p.borrow_mut().replace(pending));
    let _restore = Restore(previous);
    f()
}

fn current_pending() -> Option<Arc<dyn PendingRecord>> {
    PENDING.with(|p| p.borrow().clone())
}

/// Something a service did on its own (CloudTrail `eventType` `AwsServiceEvent`,
/// `userIdentity.type` `AWSService`): a rotation step's outcome, a deletion after the
/// recovery window.
#[derive(Clone, Debug)]
pub struct ServiceEvent {
    /// `secretsmanager.amazonaws.com` …
    pub event_source: String,
    pub event_name: String,
    pub account: String,
    pub region: String,
    pub time: time::OffsetDateTime,
    pub resources: Vec<AuditResource>,
    pub additional_event_data: Option<serde_json::Value>,
}

/// Writes service events into a transaction (the server's, set as an extension of
/// [`crate::Services`]).
pub trait ServiceEventWriter: Send + Sync {
    fn write(&self, txn: &mut dyn WriteTxn, event: &ServiceEvent) -> Result<(), StoreError>;
}

/// The extension slot of the [`ServiceEventWriter`].
pub struct ServiceEvents(pub Arc<dyn ServiceEventWriter>);

/// Records `event` in `txn`, so that it commits with the change it describes. Without a
/// writer (unit tests of a service crate) nothing is recorded.
pub fn record_service_event(
    services: &crate::Services,
    txn: &mut dyn WriteTxn,
    event: &ServiceEvent,
) -> Result<(), StoreError> {
    match services.extension::<ServiceEvents>() {
        Some(writer) => writer.0.write(txn, event),
        None => Ok(()),
    }
}

/// The audit log's own store: the records of requests that changed nothing (reads, denials,
/// failed authentications) are written there, apart from the main store, so that their
/// stream of commits never disturbs the main store's readers (each commit to a SQLite
/// database makes every other connection to it drop its page cache). Records of changes stay
/// in the main store, in the change's own transaction. Set by the server as an extension of
/// [`crate::Services`]; readers of the log read both.
pub struct AuditLogStore(pub Arc<dyn Store>);

/// Makes every audit record acknowledged so far readable in the log store. A server that
/// stages the records of reads elsewhere first (the server's segment files, indexed into the
/// log store in the background) sets one as an extension of [`crate::Services`]; the readers
/// of the log call it through [`record_stores`] before they read.
pub trait AuditLogFlush: Send + Sync {
    /// Returns once the records acknowledged before the call are in the log store (or the
    /// attempt failed: the records stay staged and are indexed later).
    fn flush(&self);
}

/// The extension slot of the [`AuditLogFlush`].
pub struct AuditLogFlusher(pub Arc<dyn AuditLogFlush>);

/// The stores that hold audit records: the main store, and the log store when there is one
/// apart from it (a deployment on a shared store keeps the whole log in the main store),
/// with every record this process acknowledged so far in them ([`AuditLogFlush`]).
pub fn record_stores(services: &crate::Services) -> Vec<Arc<dyn Store>> {
    if let Some(flusher) = services.extension::<AuditLogFlusher>() {
        flusher.0.flush();
    }
    let mut stores = vec![services.store().clone()];
    if let Some(log) = services.extension::<AuditLogStore>()
        && !Arc::ptr_eq(&log.0, services.store())
    {
        stores.push(log.0.clone());
    }
    stores
}

/// Keys under this prefix hold the audit log; writing them is not a change that needs a
/// record of its own.
pub const AUDIT_PREFIX: &str = "audit/";

/// The store wrapper that adds the pending audit record to every committed write
/// transaction that changed something (see the module docs).
pub struct AuditingStore {
    inner: Arc<dyn Store>,
}

impl AuditingStore {
    pub fn new(inner: Arc<dyn Store>) -> Self {
        AuditingStore { inner }
    }
}

impl Store for AuditingStore {
    fn begin_read(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        self.inner.begin_read()
    }

    fn begin_read_lazy(&self) -> Result<Box<dyn ReadTxn + '_>, StoreError> {
        self.inner.begin_read_lazy()
    }

    fn begin_write(&self) -> Result<Box<dyn WriteTxn + '_>, StoreError> {
        // Built before the writer is taken (a failure fails the commit, if it changes
        // anything).
        let prepared = current_pending().map(|p| {
            let record = p.prepare();
            (p, record)
        });
        Ok(Box::new(AuditingTxn {
            inner: self.inner.begin_write()?,
            changed: false,
            prepared,
        }))
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.inner.close()
    }

    fn shared_generation(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        self.inner.shared_generation()
    }

    fn visible_generation(&self) -> Option<u64> {
        self.inner.visible_generation()
    }

    fn shared_marked_generation(&self) -> Option<Arc<std::sync::atomic::AtomicU64>> {
        self.inner.shared_marked_generation()
    }

    fn sync_generations(&self) -> Result<(), StoreError> {
        self.inner.sync_generations()
    }

    fn ready(&self) -> Result<(), StoreError> {
        self.inner.ready()
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        self.inner.counters()
    }
}

struct AuditingTxn<'a> {
    inner: Box<dyn WriteTxn + 'a>,
    changed: bool,
    /// The pending record of the operation this transaction is part of, prepared.
    prepared: Option<(Arc<dyn PendingRecord>, Result<PreparedRecord, StoreError>)>,
}

impl ReadTxn for AuditingTxn<'_> {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key)
    }

    fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.scan(prefix, start_after, limit)
    }
}

impl WriteTxn for AuditingTxn<'_> {
    fn put(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.changed |= !key.starts_with(AUDIT_PREFIX);
        self.inner.put(key, value)
    }

    fn delete(&mut self, key: &str) -> Result<bool, StoreError> {
        self.changed |= !key.starts_with(AUDIT_PREFIX);
        self.inner.delete(key)
    }

    fn mark(&mut self) {
        self.inner.mark();
    }

    fn commit(self: Box<Self>) -> Result<(), StoreError> {
        let AuditingTxn {
            mut inner,
            changed,
            prepared,
        } = *self;
        if changed && let Some((pending, record)) = prepared {
            // Dropping `inner` on error rolls the change back with the record.
            pending.write(&mut *inner, record?)?;
        }
        inner.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_store::MemoryStore;

    struct Record(&'static str);
    impl PendingRecord for Record {
        fn prepare(&self) -> Result<PreparedRecord, StoreError> {
            if self.0.is_empty() {
                return Err(StoreError::Closed);
            }
            Ok(PreparedRecord {
                key: format!("{AUDIT_PREFIX}{}", self.0),
                value: b"event".to_vec(),
                stamp: 0,
            })
        }
        fn write(&self, txn: &mut dyn WriteTxn, p: PreparedRecord) -> Result<(), StoreError> {
            txn.put(&p.key, &p.value)
        }
    }

    #[test]
    fn a_change_commits_with_its_pending_record_and_not_without_it() {
        let store = AuditingStore::new(Arc::new(MemoryStore::new()));
        with_pending(Arc::new(Record("e1")), || {
            let mut t = store.begin_write().unwrap();
            t.put("acct/1/x", b"v").unwrap();
            t.commit().unwrap();
        });
        let r = store.begin_read().unwrap();
        assert_eq!(r.get("audit/e1").unwrap().as_deref(), Some(&b"event"[..]));
        drop(r);
        // An unwritable record fails the commit: the change is not made.
        let failed = with_pending(Arc::new(Record("")), || {
            let mut t = store.begin_write().unwrap();
            t.put("acct/1/y", b"v").unwrap();
            t.commit()
        });
        assert!(failed.is_err());
        assert!(
            store
                .begin_read()
                .unwrap()
                .get("acct/1/y")
                .unwrap()
                .is_none()
        );
        // Outside the scope (background work) nothing is added.
        let mut t = store.begin_write().unwrap();
        t.put("acct/1/z", b"v").unwrap();
        t.commit().unwrap();
        let r = store.begin_read().unwrap();
        assert_eq!(r.scan(AUDIT_PREFIX, None, 10).unwrap().len(), 1);
    }

    #[test]
    fn facts_keep_each_resource_once() {
        let f = AuditFacts::default();
        f.secret_read("arn:s", "v1", &["AWSCURRENT".into()]);
        f.resource("AWS::SecretsManager::Secret", "arn:s");
        let s = f.snapshot();
        assert_eq!(s.reads.len(), 1);
        assert_eq!(s.resources.len(), 1);
    }

    #[test]
    fn the_stamp_moves_when_anything_is_noted_and_only_then() {
        let f = AuditFacts::default();
        let mut last = f.stamp();
        let mut moved = |f: &AuditFacts, expected: bool| {
            let now = f.stamp();
            assert_eq!(now != last, expected);
            last = now;
        };
        f.asked("kms:Encrypt", "arn:k");
        moved(&f, true);
        // The same question again, a resource already named, '*': nothing new.
        f.asked("kms:Encrypt", "arn:k");
        f.asked("kms:Encrypt", "*");
        moved(&f, false);
        f.resource("AWS::KMS::Key", "arn:k");
        moved(&f, true);
        f.resource("AWS::KMS::Key", "arn:k");
        moved(&f, false);
        f.secret_read("arn:s", "v1", &[]);
        moved(&f, true);
        f.hop(Hop {
            event_source: "kms.amazonaws.com".into(),
            event_name: "Decrypt".into(),
            invoked_by: "secretsmanager.amazonaws.com".into(),
            read_only: true,
            resources: Vec::new(),
            request_parameters: "{}".into(),
            additional_event_data: None,
            error_code: None,
        });
        moved(&f, true);
        let (hops, stamp) = f.with_stamp(|facts, stamp| (facts.hops.len(), stamp));
        assert_eq!((hops, stamp), (1, f.stamp()));
    }
}
