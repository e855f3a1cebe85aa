//! The audit log: a CloudTrail record for every request — allowed, denied, or refused at
//! authentication — plus the calls services make on the caller's behalf and the services' own
//! events, written to the store (and optionally to a JSON-lines file), never with a secret in
//! it ([`redact`]).
//!
//! Durable and fail-closed (Vault's rule: a request that cannot be audited is not served):
//! - a write's record is put into the operation's own write transaction just before it
//!   commits ([`tresor_core::audit::with_pending`]): the change and its record commit
//!   together or not at all;
//! - every request's final record (outcome, response elements) is written before its
//!   response is sent. If it cannot be written the request fails with an internal error. It
//!   is appended to a segment file of the data directory and indexed into the log store in
//!   the background, thousands per transaction ([`segment`]); the final record of a request
//!   that changed something is marked so that indexing it deletes its early version from the
//!   main store (no second transaction of the main store per write). Without a data
//!   directory for segments, a batcher thread writes the final records of changes over their
//!   early versions and the others into the log store, one transaction per batch. With `audit.sync =
//!   batch` ([`AuditSync`], the default) the request's own thread writes its record to a
//!   segment (no sync: a syncer thread `fdatasync`s the segments every [`SYNC_INTERVAL`]);
//!   with `always` a batcher thread writes the records of many concurrent requests with one
//!   write and one `fdatasync` before they are answered.
//!
//! Records older than the retention (90 days by default, CloudTrail's event history) are
//! pruned by a background task.

pub mod event;
pub mod redact;
pub mod segment;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use time::OffsetDateTime;
use tresor_cloudtrail::record::{self, Row, StoredEvent};
use tresor_core::Services;
use tresor_core::audit::{
    AuditFacts, AuditLogFlush, AuditLogFlusher, PendingRecord, PreparedRecord, ServiceEvent,
    ServiceEventWriter, ServiceEvents,
};
use tresor_store::{StoreError, WriteTxn};

use crate::metrics::Metrics;
use event::{Outcome, RequestInfo};

/// CloudTrail's event history: 90 days.
pub const DEFAULT_RETENTION_DAYS: u64 = 90;
/// How long a reader of the log waits for the records acknowledged before it to be indexed.
const FLUSH_WAIT: Duration = Duration::from_secs(10);
/// The most records one batch transaction carries.
const MAX_BATCH: usize = 1024;
/// How often, with `audit.sync = batch`, the segments written since the last time are
/// `fdatasync`ed: what a power loss can cost at most of the records of reads.
pub const SYNC_INTERVAL: Duration = Duration::from_millis(50);
/// How often old records are pruned.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
/// Records deleted per prune transaction (short transactions: the writer is shared).
const PRUNE_CHUNK: usize = 1000;

/// The `[audit]` configuration.
#[derive(Clone, Debug)]
pub struct AuditConfig {
    /// Off only when asked for explicitly (benchmarks); nothing is recorded then.
    pub enabled: bool,
    /// A JSON-lines file that gets every record too (one CloudTrail record a line).
    pub file: Option<PathBuf>,
    pub retention_days: u64,
    /// How the records of requests that change nothing are made durable.
    pub sync: AuditSync,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            file: None,
            retention_days: DEFAULT_RETENTION_DAYS,
            sync: AuditSync::default(),
        }
    }
}

/// `audit.sync`: when the record of a request that changed nothing (a read, a denial, a
/// refused authentication) counts as written. The records of writes are in the write's own
/// transaction either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditSync {
    /// Written to the segment file (handed to the OS, so it survives a crash of the process)
    /// before the response is sent; the segments are `fdatasync`ed in the background every
    /// [`SYNC_INTERVAL`]. A power loss can cost the records of the last interval's reads. A
    /// failed write fails its request; a failed background sync fails the requests after it
    /// until a sync succeeds again. Vault's file audit device works this way (it writes the
    /// line before answering and does not fsync per request).
    #[default]
    Batch,
    /// `fdatasync`ed before the response is sent (batched: one sync for the records of all
    /// the requests waiting at the time).
    Always,
}

impl std::str::FromStr for AuditSync {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "batch" => Ok(AuditSync::Batch),
            "always" => Ok(AuditSync::Always),
            other => Err(format!(
                "audit sync must be \"batch\" or \"always\", not {other:?}"
            )),
        }
    }
}

/// A batch of records for the batcher, and who waits for its outcome.
struct Job {
    rows: Vec<Row>,
    /// Whether the record is the final version of one written with the request's change
    /// into the main store (which it replaces).
    main: bool,
    done: tokio::sync::oneshot::Sender<bool>,
}

/// Batchers (and segment lanes) when the records of reads go to segment files: their
/// `fdatasync`s run side by side (measured on the development machine's disk: one thread
/// managed about 300 `fdatasync`s a second, four threads together about ten times as many).
const LANES: usize = 4;

/// The audit log of a deployment.
pub struct Auditor {
    services: Arc<Services>,
    enabled: bool,
    queue: Option<mpsc::Sender<Job>>,
    /// With `audit.sync = batch`: the segments the records of requests that change nothing
    /// are appended to on the request's own thread.
    direct: Option<Arc<segment::Segments>>,
    file: Option<Arc<parking_lot::Mutex<std::fs::File>>>,
    metrics: Arc<Metrics>,
}

/// The audit log could not be written.
#[derive(Debug)]
pub struct AuditFailed;

impl Auditor {
    /// Opens the JSON-lines file, starts the batcher and registers the service-event writer.
    /// `log_store` gets the records of requests that changed nothing (see
    /// [`tresor_core::audit::AuditLogStore`]); with `segment_dir` they are made durable in
    /// segment files there first and indexed into `log_store` in the background ([`segment`];
    /// segments an earlier process left are indexed first), without it they are committed to
    /// `log_store` batch by batch.
    pub fn start(
        services: Arc<Services>,
        log_store: Arc<dyn tresor_store::Store>,
        segment_dir: Option<&std::path::Path>,
        config: &AuditConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Auditor>, String> {
        if !config.enabled {
            tracing::warn!("the audit log is off: requests are not recorded");
            return Ok(Arc::new(Auditor {
                services,
                enabled: false,
                queue: None,
                direct: None,
                file: None,
                metrics,
            }));
        }
        let file = match &config.file {
            Some(path) => Some(Arc::new(parking_lot::Mutex::new(open_file(path)?))),
            None => None,
        };
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(parking_lot::Mutex::new(rx));
        // Without segments, one batcher: while it commits, the next batch gathers, so batches
        // grow with the load and the store sees few, large transactions (measured: two
        // batchers gave more, smaller commits and less throughput).
        let mut lanes: Vec<Option<Arc<parking_lot::Mutex<segment::Lane>>>> = vec![None];
        let mut direct = None;
        if let Some(dir) = segment_dir {
            // A shared store (PostgreSQL, several nodes): one lane, so one segment at a time and
            // one index transaction at a time. Each index transaction is a write of the shared
            // store, which moves the generation every node's caches are tagged with (measured
            // with four lanes on two nodes: about 12 index transactions a second under a read
            // load, each making both nodes refill their caches from the database).
            let lane_count = if log_store.shared_generation().is_some() {
                1
            } else {
                LANES
            };
            let (segments, indexer) = segment::Segments::open(dir, lane_count)?;
            lanes = segments.lanes().iter().cloned().map(Some).collect();
            let same = std::ptr::addr_eq(Arc::as_ptr(&log_store), Arc::as_ptr(services.store()));
            let targets = segment::Targets {
                log: log_store.clone(),
                main: (!same).then(|| services.store().clone()),
            };
            let for_indexer = segments.clone();
            std::thread::Builder::new()
                .name("tresor-audit-index".into())
                .spawn(move || indexer.run(&for_indexer, &targets))
                .map_err(|e| format!("cannot start the audit indexer: {e}"))?;
            if config.sync == AuditSync::Batch {
                start_syncer(&segments, &metrics)?;
                direct = Some(segments.clone());
            }
            services.set_extension(Arc::new(AuditLogFlusher(Arc::new(Flusher(segments)))));
        }
        for (i, lane) in lanes.into_iter().enumerate() {
            let rx = rx.clone();
            let stores = [services.store().clone(), log_store.clone()];
            let file = file.clone();
            let metrics = metrics.clone();
            std::thread::Builder::new()
                .name(format!("tresor-audit-{i}"))
                .spawn(move || batcher(&rx, &stores, lane.as_deref(), file.as_deref(), &metrics))
                .map_err(|e| format!("cannot start the audit writer: {e}"))?;
        }
        services.set_extension(Arc::new(tresor_core::audit::AuditLogStore(log_store)));
        services.set_extension(Arc::new(ServiceEvents(Arc::new(ServiceEventSink {
            file: file.clone(),
            metrics: metrics.clone(),
        }))));
        let auditor = Arc::new(Auditor {
            services,
            enabled: true,
            queue: Some(tx),
            direct,
            file,
            metrics,
        });
        Ok(auditor)
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The pending record of a request about to run (None when the log is off).
    pub fn pending(&self, info: RequestInfo, facts: AuditFacts) -> Option<Arc<Pending>> {
        self.enabled.then(|| {
            Arc::new(Pending {
                wrote: std::sync::atomic::AtomicBool::new(false),
                info,
                facts,
                hop_ids: parking_lot::Mutex::new(Vec::new()),
            })
        })
    }

    /// Writes the final records of `pending` (and its hops) before the response goes out.
    pub async fn finish(
        &self,
        pending: &Pending,
        outcome: &Outcome<'_>,
    ) -> Result<(), AuditFailed> {
        let main = pending.wrote.load(std::sync::atomic::Ordering::SeqCst);
        self.send(vec![pending.row(outcome)], main).await
    }

    /// Writes records of requests through the batcher and waits until they are durable.
    pub async fn record(&self, rows: Vec<Row>) -> Result<(), AuditFailed> {
        self.send(rows, false).await
    }

    async fn send(&self, rows: Vec<Row>, main: bool) -> Result<(), AuditFailed> {
        let Some(queue) = &self.queue else {
            return Ok(());
        };
        if let Some(segments) = &self.direct {
            return self.append_direct(segments, &rows, main).await;
        }
        let (done, wait) = tokio::sync::oneshot::channel();
        queue
            .send(Job { rows, main, done })
            .map_err(|_| AuditFailed)?;
        match wait.await {
            Ok(true) => Ok(()),
            _ => Err(AuditFailed),
        }
    }

    /// `audit.sync = batch`: appends the records to a segment (and the JSON-lines file) on
    /// this thread, no hand-off to a batcher and back, no sync to wait for. The records are
    /// staged first, then the task lets the other requests of its thread run once: those
    /// that reach this point meanwhile stage theirs in the same lane, and the first of them
    /// to go on writes them all with one `write` (measured: the per-request `write` was the
    /// largest kernel cost of the audit log under load; alone, a request pays one turn of
    /// its scheduler).
    async fn append_direct(
        &self,
        segments: &segment::Segments,
        rows: &[Row],
        main: bool,
    ) -> Result<(), AuditFailed> {
        let n: usize = rows.iter().map(Row::event_count).sum();
        let staged = rows
            .iter()
            .map(|row| segment_entry(row, main))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
            .and_then(|entries| {
                segments
                    .stage(entries)
                    .map_err(|e| format!("audit segment: {e}"))
            });
        let written = match staged {
            Ok(staged) => {
                tokio::task::yield_now().await;
                segments
                    .complete(staged)
                    .map_err(|e| format!("audit segment: {e}"))
            }
            Err(e) => Err(e),
        }
        .and_then(|()| match &self.file {
            Some(file) => append_lines(file, rows.iter().flat_map(Row::events)),
            None => Ok(()),
        });
        match written {
            Ok(()) => {
                self.metrics.audit_written(n as u64);
                Ok(())
            }
            Err(e) => {
                self.metrics.audit_failed(n as u64);
                tracing::error!(error = %e, records = n, "the audit log could not be written; the request fails");
                Err(AuditFailed)
            }
        }
    }

    /// Prunes records older than the retention, every [`PRUNE_INTERVAL`], until `stop`.
    pub async fn retention(
        self: Arc<Self>,
        retention_days: u64,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        if !self.enabled {
            return;
        }
        let mut tick = tokio::time::interval(PRUNE_INTERVAL);
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tick.tick() => {
                    let services = self.services.clone();
                    let days = i64::try_from(retention_days).unwrap_or(i64::MAX);
                    let _ = tokio::task::spawn_blocking(move || prune(&services, days)).await;
                }
            }
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Whether a JSON-lines file is configured.
    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }
}

/// Starts the thread that syncs the segments every [`SYNC_INTERVAL`] (it ends with them),
/// and exports its failures as `tresor_audit_sync_failures_total`.
fn start_syncer(segments: &Arc<segment::Segments>, metrics: &Metrics) -> Result<(), String> {
    let weak = Arc::downgrade(segments);
    std::thread::Builder::new()
        .name("tresor-audit-sync".into())
        .spawn(move || {
            loop {
                std::thread::sleep(SYNC_INTERVAL);
                let Some(segments) = weak.upgrade() else {
                    return;
                };
                segments.sync_dirty();
            }
        })
        .map_err(|e| format!("cannot start the audit syncer: {e}"))?;
    let weak = Arc::downgrade(segments);
    metrics.register(Box::new(move |_, out| {
        use std::fmt::Write as _;
        let (failures, writes) = weak
            .upgrade()
            .map_or((0, 0), |s| (s.sync_failures(), s.writes()));
        let _ = write!(
            out,
            "# HELP tresor_audit_sync_failures_total Background fdatasyncs of audit segments that failed (requests fail until one succeeds).\n\
             # TYPE tresor_audit_sync_failures_total counter\n\
             tresor_audit_sync_failures_total {failures}\n\
             # HELP tresor_audit_segment_writes_total Writes of audit records to segment files (requests that arrive together share one).\n\
             # TYPE tresor_audit_segment_writes_total counter\n\
             tresor_audit_segment_writes_total {writes}\n"
        );
    }));
    Ok(())
}

fn open_file(path: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("cannot open the audit file {}: {e}", path.display()))
}

/// Deletes records older than `days`, a chunk per transaction.
pub fn prune(services: &Services, days: i64) {
    for store in tresor_core::audit::record_stores(services) {
        prune_store(&*store, days);
    }
}

fn prune_store(store: &dyn tresor_store::Store, days: i64) {
    let cutoff = OffsetDateTime::now_utc() - time::Duration::days(days);
    loop {
        let result = (|| -> Result<usize, StoreError> {
            let mut txn = store.begin_write()?;
            let n = record::prune(&mut *txn, cutoff, PRUNE_CHUNK)?;
            txn.commit()?;
            Ok(n)
        })();
        match result {
            Ok(n) if n == PRUNE_CHUNK => continue,
            Ok(n) => {
                if n > 0 {
                    tracing::info!(deleted = n, "pruned audit records past the retention");
                }
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning the audit log failed; will retry");
                return;
            }
        }
    }
}

fn batcher(
    rx: &parking_lot::Mutex<mpsc::Receiver<Job>>,
    stores: &[Arc<dyn tresor_store::Store>; 2],
    lane: Option<&parking_lot::Mutex<segment::Lane>>,
    file: Option<&parking_lot::Mutex<std::fs::File>>,
    metrics: &Metrics,
) {
    loop {
        let jobs = {
            let rx = rx.lock();
            let Ok(first) = rx.recv() else {
                return;
            };
            let mut jobs = vec![first];
            let mut n = events_in(&jobs[0]);
            // Take what is queued, without waiting for more: the records that arrive while
            // this batch is written (an fsync) make the next batch, so batches grow with the
            // load, a lone request never waits for company, and a sender wakes this thread
            // only when it waits on an empty queue — one wake-up a batch, not one a request.
            while n < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => {
                        n += events_in(&job);
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            jobs
        };
        let n: usize = jobs.iter().map(events_in).sum();
        let ok = match write_batch(stores, lane, file, &jobs) {
            Ok(()) => {
                metrics.audit_batch();
                metrics.audit_written(n as u64);
                true
            }
            Err(e) => {
                metrics.audit_failed(n as u64);
                tracing::error!(error = %e, records = n, "the audit log could not be written; the requests fail");
                false
            }
        };
        for job in jobs {
            let _ = job.done.send(ok);
        }
    }
}

/// A record as a segment entry; `main`: it is the final version of one whose early version
/// is in the main store ([`segment::REPLACES_PENDING`]).
fn segment_entry(row: &Row, main: bool) -> Result<segment::Entry, StoreError> {
    let (key, value) = record::encode_row(row)?;
    Ok(if main {
        (format!("{}{key}", segment::REPLACES_PENDING), value)
    } else {
        (key, value)
    })
}

fn events_in(job: &Job) -> usize {
    job.rows.iter().map(Row::event_count).sum()
}

/// Writes one batch into the lane's segment (without one: the records of changes over their
/// early versions in the main store, the others into the log store), then the JSON-lines
/// file.
fn write_batch(
    stores: &[Arc<dyn tresor_store::Store>; 2],
    lane: Option<&parking_lot::Mutex<segment::Lane>>,
    file: Option<&parking_lot::Mutex<std::fs::File>>,
    jobs: &[Job],
) -> Result<(), String> {
    let rows = |main: bool| {
        jobs.iter()
            .filter(move |j| j.main == main)
            .flat_map(|j| j.rows.iter())
    };
    match lane {
        Some(lane) => {
            // The final records of changes too: the indexer replaces their early versions.
            let entries = rows(true)
                .map(|row| segment_entry(row, true))
                .chain(rows(false).map(|row| segment_entry(row, false)))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| e.to_string())?;
            lane.lock()
                .append(entries)
                .map_err(|e| format!("audit segment: {e}"))?;
        }
        None => {
            write_store(&*stores[0], &rows(true).collect::<Vec<_>>())?;
            write_store(&*stores[1], &rows(false).collect::<Vec<_>>())?;
        }
    }
    if let Some(file) = file {
        append_lines(file, rows(true).chain(rows(false)).flat_map(|r| r.events()))?;
    }
    Ok(())
}

fn write_store(store: &dyn tresor_store::Store, rows: &[&Row]) -> Result<(), String> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut txn = store.begin_write().map_err(|e| e.to_string())?;
    for row in rows {
        record::put_row(&mut *txn, row).map_err(|e| e.to_string())?;
    }
    txn.commit().map_err(|e| e.to_string())
}

/// Makes the records in segment files readable for the log's readers ([`segment::Segments::flush`]).
struct Flusher(Arc<segment::Segments>);

impl AuditLogFlush for Flusher {
    fn flush(&self) {
        if !self.0.flush(FLUSH_WAIT) {
            tracing::warn!("the audit log's latest records are not indexed yet");
        }
    }
}

fn append_lines(
    file: &parking_lot::Mutex<std::fs::File>,
    events: impl Iterator<Item = StoredEvent>,
) -> Result<(), String> {
    let mut text = String::new();
    for e in events {
        text.push_str(&e.event);
        text.push('\n');
    }
    let mut f = file.lock();
    f.write_all(text.as_bytes())
        .and_then(|()| f.flush())
        .map_err(|e| format!("audit file: {e}"))
}

/// A request's records while it runs: written into each write transaction the operation
/// commits (see the module docs), then once more, final, by [`Auditor::finish`]. The same
/// keys every time, so the final record replaces the early one.
pub struct Pending {
    /// Whether the record went into a transaction of the main store (the request changed
    /// something): its final version replaces it.
    wrote: std::sync::atomic::AtomicBool,
    info: RequestInfo,
    facts: AuditFacts,
    /// The event ids of the hops, assigned in the order the hops were noted.
    hop_ids: parking_lot::Mutex<Vec<String>>,
}

impl Pending {
    fn row(&self, outcome: &Outcome<'_>) -> Row {
        self.row_and_stamp(outcome).0
    }

    /// The row, and the stamp of the facts it was built from.
    fn row_and_stamp(&self, outcome: &Outcome<'_>) -> (Row, u64) {
        self.facts.with_stamp(|facts, stamp| {
            let mut row = event::main_event(&self.info, facts, outcome);
            let mut ids = self.hop_ids.lock();
            let mut hops = Vec::with_capacity(facts.hops.len());
            for (i, hop) in facts.hops.iter().enumerate() {
                if ids.len() <= i {
                    ids.push(tresor_crypto::ids::uuid_v4());
                }
                hops.push(event::hop_event(hop, &ids[i]));
            }
            row.hops = hops;
            (row, stamp)
        })
    }
}

impl PendingRecord for Pending {
    fn prepare(&self) -> Result<PreparedRecord, StoreError> {
        let (row, stamp) = self.row_and_stamp(&Outcome::Pending);
        let (key, value) = record::encode_row(&row)?;
        Ok(PreparedRecord { key, value, stamp })
    }

    fn write(&self, txn: &mut dyn WriteTxn, prepared: PreparedRecord) -> Result<(), StoreError> {
        self.wrote.store(true, std::sync::atomic::Ordering::SeqCst);
        if prepared.stamp == self.facts.stamp() {
            return txn.put(&prepared.key, &prepared.value);
        }
        record::put_row(txn, &self.row(&Outcome::Pending))
    }
}

/// Writes the services' own events into their transactions (and the file).
struct ServiceEventSink {
    file: Option<Arc<parking_lot::Mutex<std::fs::File>>>,
    metrics: Arc<Metrics>,
}

impl ServiceEventWriter for ServiceEventSink {
    fn write(&self, txn: &mut dyn WriteTxn, e: &ServiceEvent) -> Result<(), StoreError> {
        let stored = event::service_event(e);
        self.metrics.service_event(&e.event_name);
        record::put(txn, &stored)?;
        if let Some(file) = &self.file
            && let Err(err) = append_lines(file, std::iter::once(stored.clone()))
        {
            // Fail the transaction: the event is not recorded everywhere it must be.
            tracing::error!(error = %err, "the audit file could not be written");
            return Err(StoreError::Unsupported {
                what: "writing the audit file",
            });
        }
        self.metrics.audit_written(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_core::audit::AuditResource;
    use tresor_store::{SqliteStore, Store};

    fn service_event(name: &str) -> Row {
        Row::single(event::service_event(&event_of(name)))
    }

    fn event_of(name: &str) -> ServiceEvent {
        ServiceEvent {
            event_source: "secretsmanager.amazonaws.com".into(),
            event_name: name.into(),
            account: "111122223333".into(),
            region: "us-east-1".into(),
            time: OffsetDateTime::now_utc(),
            resources: vec![AuditResource {
                resource_type: "AWS::SecretsManager::Secret".into(),
                arn: "arn:aws:secretsmanager:us-east-1:111122223333:secret:s-AbCdEf".into(),
            }],
            additional_event_data: None,
        }
    }

    fn stored(services: &Services) -> usize {
        tresor_core::audit::record_stores(services)
            .iter()
            .map(|s| {
                let txn = s.begin_read().unwrap();
                // Rows, many to a store entry once indexed from a segment.
                txn.scan(record::EVENT_PREFIX, None, 100)
                    .unwrap()
                    .into_iter()
                    .map(|(k, v)| record::entry_rows(k, v).len())
                    .sum::<usize>()
            })
            .sum()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_of_reads_go_through_segments_and_readers_see_them_at_once() {
        for sync in [AuditSync::Batch, AuditSync::Always] {
            records_of_reads_go_through_segments(sync).await;
        }
    }

    async fn records_of_reads_go_through_segments(sync: AuditSync) {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(SqliteStore::open(&dir.path().join("log.db")).unwrap());
        let log: Arc<dyn Store> = sqlite.clone();
        let main = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
        let services = Arc::new(Services::new(
            main,
            Arc::new(tresor_crypto::RootKey::from_bytes(&[1; 32]).unwrap()),
            Arc::new(tresor_iam::IamDirectory),
        ));
        let metrics = Arc::new(Metrics::new(Vec::new()));
        let auditor = Auditor::start(
            services.clone(),
            log,
            Some(dir.path()),
            &AuditConfig {
                sync,
                ..AuditConfig::default()
            },
            metrics.clone(),
        )
        .unwrap();
        assert_eq!(auditor.direct.is_some(), sync == AuditSync::Batch);
        for name in ["A", "B", "C"] {
            assert!(auditor.record(vec![service_event(name)]).await.is_ok());
        }
        // Requests that arrive together share a write (`batch`): each stages its record and
        // lets the others run once; the first to go on writes them all.
        let writes = |metrics: &Metrics| {
            let text = metrics.render(&services);
            text.lines()
                .find_map(|l| l.strip_prefix("tresor_audit_segment_writes_total "))
                .map(|n| n.parse::<u64>().unwrap())
        };
        let before = writes(&metrics);
        // Polled in turn by one task (as one worker thread polls the requests it serves).
        let mut together: Vec<_> = (0..20)
            .map(|i| {
                Some(Box::pin(
                    auditor.record(vec![service_event(&format!("T{i}"))]),
                ))
            })
            .collect();
        std::future::poll_fn(|cx| {
            for slot in &mut together {
                if let Some(f) = slot
                    && let std::task::Poll::Ready(done) = f.as_mut().poll(cx)
                {
                    assert!(done.is_ok());
                    *slot = None;
                }
            }
            if together.iter().all(Option::is_none) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        if sync == AuditSync::Batch {
            assert_eq!(before, Some(3), "a write per request alone");
            assert_eq!(writes(&metrics), Some(4), "one write for the 20 together");
        }
        // In the segment files as soon as they are acknowledged.
        let in_segments: usize = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(segment::SEGMENT_PREFIX)
            })
            .map(|e| segment::read_segment(&std::fs::read(e.path()).unwrap()).len())
            .sum();
        assert_eq!(in_segments, 23, "{sync:?}");
        assert_eq!(
            metrics
                .render(&services)
                .contains("\ntresor_audit_sync_failures_total 0\n"),
            sync == AuditSync::Batch
        );
        // Durable in a segment, and visible to a reader at once (it flushes first).
        let stored_now = {
            let services = services.clone();
            tokio::task::spawn_blocking(move || stored(&services))
                .await
                .unwrap()
        };
        assert_eq!(stored_now, 23, "{sync:?}");
        // The log store failing does not fail the requests: their records wait in the
        // segment and are indexed on a later try.
        sqlite.fail_next_commits(1);
        assert!(auditor.record(vec![service_event("D")]).await.is_ok());
        let services2 = services.clone();
        let seen = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let n = stored(&services2);
                if n == 24 || std::time::Instant::now() > deadline {
                    return n;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
        .await
        .unwrap();
        assert_eq!(seen, 24, "{sync:?}");
        let left = std::fs::read_dir(dir.path())
            .unwrap()
            .filter(|e| {
                e.as_ref().is_ok_and(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(segment::SEGMENT_PREFIX)
                })
            })
            .count();
        assert_eq!(left, 0, "indexed segments are removed");
    }

    #[tokio::test]
    async fn a_record_the_store_cannot_commit_fails_its_requests() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = Arc::new(SqliteStore::open(&dir.path().join("log.db")).unwrap());
        let log: Arc<dyn Store> = sqlite.clone();
        let main = Arc::new(SqliteStore::open(&dir.path().join("t.db")).unwrap());
        let services = Arc::new(Services::new(
            main,
            Arc::new(tresor_crypto::RootKey::from_bytes(&[1; 32]).unwrap()),
            Arc::new(tresor_iam::IamDirectory),
        ));
        let metrics = Arc::new(Metrics::new(Vec::new()));
        let auditor = Auditor::start(
            services.clone(),
            log,
            None,
            &AuditConfig::default(),
            metrics.clone(),
        )
        .unwrap();
        assert!(auditor.record(vec![service_event("A")]).await.is_ok());
        assert_eq!(stored(&services), 1);
        sqlite.fail_next_commits(1);
        assert!(
            auditor
                .record(vec![service_event("B"), service_event("C")])
                .await
                .is_err()
        );
        assert_eq!(stored(&services), 1, "nothing of the failed batch is kept");
        let text = metrics.render(&services);
        assert!(
            text.contains("tresor_audit_events_failed_total 2"),
            "{text}"
        );
        assert!(
            text.contains("tresor_audit_events_written_total 1"),
            "{text}"
        );
        // A service event goes into the transaction of the change it describes.
        let mut txn = services.store().begin_write().unwrap();
        tresor_core::audit::record_service_event(
            &services,
            &mut *txn,
            &event_of("RotationSucceeded"),
        )
        .unwrap();
        drop(txn); // rolled back with its change: no record either
        assert_eq!(stored(&services), 1);
        let mut txn = services.store().begin_write().unwrap();
        tresor_core::audit::record_service_event(
            &services,
            &mut *txn,
            &event_of("RotationSucceeded"),
        )
        .unwrap();
        txn.commit().unwrap();
        assert_eq!(stored(&services), 2);
        assert!(
            metrics
                .render(&services)
                .contains("tresor_rotation_outcomes_total{outcome=\"RotationSucceeded\"} 2")
        );
    }
}
