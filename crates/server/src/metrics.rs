//! `/metrics` in Prometheus' text exposition format (version 0.0.4): requests by service,
//! operation and outcome, latency histograms per operation, authentication failures by
//! reason, rotation outcomes, audit records written and failed, and — read at scrape time —
//! the background-job backlog and the store's size on disk.
//!
//! The request path only touches atomics: series live in fixed tables of slots that are
//! claimed once (a `OnceLock` per slot) and never freed, so counting a request is a hash, a
//! probe and a few relaxed atomic adds — no lock. Other parts of the server add gauges of
//! their own at scrape time through [`Metrics::register`] (e.g. replication lag and status).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tresor_core::Services;

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Series per table; operations are bounded by the dispatch table (unknown names are counted
/// under `unknown`), reasons and outcomes by the error codes.
const SLOTS: usize = 1024;
/// Joins the labels of a series' key (a character no service or operation name has).
const SEPARATOR: &str = "\u{1f}";
/// The most job records counted per scrape.
const BACKLOG_SCAN_LIMIT: usize = 100_000;

/// How a request ended, for the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestOutcome {
    Ok,
    ClientError,
    Denied,
    ServerError,
}

impl RequestOutcome {
    const ALL: [RequestOutcome; 4] = [
        RequestOutcome::Ok,
        RequestOutcome::ClientError,
        RequestOutcome::Denied,
        RequestOutcome::ServerError,
    ];

    fn label(self) -> &'static str {
        match self {
            RequestOutcome::Ok => "ok",
            RequestOutcome::ClientError => "client_error",
            RequestOutcome::Denied => "denied",
            RequestOutcome::ServerError => "server_error",
        }
    }

    /// The outcome of an error answer.
    pub fn of_error(code: &str, status: u16) -> RequestOutcome {
        if status >= 500 {
            RequestOutcome::ServerError
        } else if code.starts_with("AccessDenied") || code == "AuthorizationError" {
            RequestOutcome::Denied
        } else {
            RequestOutcome::ClientError
        }
    }
}

#[derive(Default)]
struct RequestSeries {
    outcomes: [AtomicU64; 4],
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

/// A fixed table of labelled series; see the module docs.
struct Table<T> {
    slots: Box<[OnceLock<(String, T)>]>,
}

impl<T: Default> Table<T> {
    fn new() -> Self {
        Table {
            slots: (0..SLOTS).map(|_| OnceLock::new()).collect(),
        }
    }

    fn get(&self, key: &str) -> Option<&T> {
        self.get_parts(key, None)
    }

    /// The series of `first` (joined with `second` by [`SEPARATOR`] when given), found
    /// without building the joined key unless the series is new.
    fn get_parts(&self, first: &str, second: Option<&str>) -> Option<&T> {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let tail = second.map(|s| [SEPARATOR.as_bytes(), s.as_bytes()]);
        for b in first
            .bytes()
            .chain(tail.iter().flatten().flat_map(|p| p.iter().copied()))
        {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let matches = |k: &str| match second {
            None => k == first,
            Some(s) => {
                k.strip_prefix(first)
                    .and_then(|rest| rest.strip_prefix(SEPARATOR))
                    == Some(s)
            }
        };
        let start = usize::try_from(h % SLOTS as u64).unwrap_or(0);
        for i in 0..SLOTS {
            let slot = &self.slots[(start + i) % SLOTS];
            let (k, v) = slot.get_or_init(|| {
                let key = match second {
                    Some(s) => format!("{first}{SEPARATOR}{s}"),
                    None => first.to_string(),
                };
                (key, T::default())
            });
            if matches(k) {
                return Some(v);
            }
        }
        None
    }

    /// Every claimed series, by key.
    fn series(&self) -> Vec<(&str, &T)> {
        let mut all: Vec<(&str, &T)> = self
            .slots
            .iter()
            .filter_map(|s| s.get().map(|(k, v)| (k.as_str(), v)))
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }
}

/// A scrape-time contribution: appends complete metric families to the text.
pub type Collector = Box<dyn Fn(&Services, &mut String) + Send + Sync>;

/// The server's metrics.
pub struct Metrics {
    requests: Table<RequestSeries>,
    auth_failures: Table<AtomicU64>,
    service_events: Table<AtomicU64>,
    audit_written: AtomicU64,
    audit_failed: AtomicU64,
    audit_batches: AtomicU64,
    store_files: Vec<PathBuf>,
    collectors: parking_lot::RwLock<Vec<Collector>>,
}

impl Metrics {
    /// `store_files`: the files whose sizes make up the store's size (SQLite: db and WAL).
    pub fn new(store_files: Vec<PathBuf>) -> Metrics {
        Metrics {
            requests: Table::new(),
            auth_failures: Table::new(),
            service_events: Table::new(),
            audit_written: AtomicU64::new(0),
            audit_failed: AtomicU64::new(0),
            audit_batches: AtomicU64::new(0),
            store_files,
            collectors: parking_lot::RwLock::new(Vec::new()),
        }
    }

    /// Adds a scrape-time collector (replication lag and status, …).
    pub fn register(&self, collector: Collector) {
        self.collectors.write().push(collector);
    }

    /// Counts one request of `service`/`operation`.
    pub fn request(
        &self,
        service: &str,
        operation: &str,
        outcome: RequestOutcome,
        elapsed: Duration,
    ) {
        let Some(s) = self.requests.get_parts(service, Some(operation)) else {
            return;
        };
        let i = RequestOutcome::ALL
            .iter()
            .position(|o| *o == outcome)
            .unwrap_or(0);
        s.outcomes[i].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        if let Some(b) = BUCKETS.iter().position(|le| secs <= *le) {
            s.buckets[b].fetch_add(1, Ordering::Relaxed);
        }
        s.count.fetch_add(1, Ordering::Relaxed);
        s.sum_micros.fetch_add(
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn auth_failure(&self, reason: &str) {
        if let Some(c) = self.auth_failures.get(reason) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn service_event(&self, name: &str) {
        if let Some(c) = self.service_events.get(name) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn audit_written(&self, n: u64) {
        self.audit_written.fetch_add(n, Ordering::Relaxed);
    }

    /// A batch of audit records was committed.
    pub fn audit_batch(&self) {
        self.audit_batches.fetch_add(1, Ordering::Relaxed);
    }

    pub fn audit_failed(&self, n: u64) {
        self.audit_failed.fetch_add(n, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, services: &Services) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.render_requests(&mut out);
        family(
            &mut out,
            "tresor_authentication_failures_total",
            "counter",
            "Requests refused at authentication, by reason (the AWS error code).",
        );
        for (reason, c) in self.auth_failures.series() {
            let _ = writeln!(
                out,
                "tresor_authentication_failures_total{{reason=\"{}\"}} {}",
                escape(reason),
                c.load(Ordering::Relaxed)
            );
        }
        family(
            &mut out,
            "tresor_rotation_outcomes_total",
            "counter",
            "Secrets Manager rotation events by outcome (RotationStarted, RotationSucceeded, RotationFailed, ...).",
        );
        for (name, c) in self.service_events.series() {
            if name.contains("Rotation") {
                let _ = writeln!(
                    out,
                    "tresor_rotation_outcomes_total{{outcome=\"{}\"}} {}",
                    escape(name),
                    c.load(Ordering::Relaxed)
                );
            }
        }
        family(
            &mut out,
            "tresor_service_events_total",
            "counter",
            "Events services recorded on their own (rotation steps, deletions).",
        );
        for (name, c) in self.service_events.series() {
            let _ = writeln!(
                out,
                "tresor_service_events_total{{event=\"{}\"}} {}",
                escape(name),
                c.load(Ordering::Relaxed)
            );
        }
        family(
            &mut out,
            "tresor_audit_events_written_total",
            "counter",
            "Audit records written to the store.",
        );
        let _ = writeln!(
            out,
            "tresor_audit_events_written_total {}",
            self.audit_written.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "tresor_audit_batches_total",
            "counter",
            "Batch transactions the audit writer committed (records written / batches = batch size).",
        );
        let _ = writeln!(
            out,
            "tresor_audit_batches_total {}",
            self.audit_batches.load(Ordering::Relaxed)
        );
        family(
            &mut out,
            "tresor_audit_events_failed_total",
            "counter",
            "Audit records that could not be written (their requests failed).",
        );
        let _ = writeln!(
            out,
            "tresor_audit_events_failed_total {}",
            self.audit_failed.load(Ordering::Relaxed)
        );
        self.render_backlog(services, &mut out);
        family(
            &mut out,
            "tresor_store_size_bytes",
            "gauge",
            "Size of the store's files on disk.",
        );
        let size: u64 = self
            .store_files
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let _ = writeln!(out, "tresor_store_size_bytes {size}");
        for collector in self.collectors.read().iter() {
            collector(services, &mut out);
        }
        out
    }

    fn render_requests(&self, out: &mut String) {
        let series = self.requests.series();
        family(
            out,
            "tresor_requests_total",
            "counter",
            "Requests by service, operation and outcome.",
        );
        for (key, s) in &series {
            let (service, op) = key.split_once(SEPARATOR).unwrap_or((key, ""));
            for (i, o) in RequestOutcome::ALL.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "tresor_requests_total{{service=\"{}\",operation=\"{}\",outcome=\"{}\"}} {}",
                    escape(service),
                    escape(op),
                    o.label(),
                    s.outcomes[i].load(Ordering::Relaxed)
                );
            }
        }
        family(
            out,
            "tresor_request_duration_seconds",
            "histogram",
            "Request latency by service and operation, from the request's arrival to its response.",
        );
        for (key, s) in &series {
            let (service, op) = key.split_once(SEPARATOR).unwrap_or((key, ""));
            let labels = format!(
                "service=\"{}\",operation=\"{}\"",
                escape(service),
                escape(op)
            );
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += s.buckets[i].load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "tresor_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let count = s.count.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "tresor_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            let sum = s.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            let _ = writeln!(out, "tresor_request_duration_seconds_sum{{{labels}}} {sum}");
            let _ = writeln!(
                out,
                "tresor_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
    }

    fn render_backlog(&self, services: &Services, out: &mut String) {
        family(
            out,
            "tresor_background_jobs",
            "gauge",
            "Durable background jobs waiting in the store, by queue (e.g. secretsmanager/rotate).",
        );
        let mut queues: std::collections::BTreeMap<String, u64> = Default::default();
        if let Ok(txn) = services.store().begin_read()
            && let Ok(jobs) = txn.scan("sys/jobs/", None, BACKLOG_SCAN_LIMIT)
        {
            for (key, _) in jobs {
                let rest = key.trim_start_matches("sys/jobs/");
                let mut parts = rest.split('/');
                let service = parts.next().unwrap_or("");
                let kind = parts.next().unwrap_or("");
                // A queue is `<service>` or `<service>/<kind>` when the next part is a name.
                let queue = if kind.bytes().all(|b| b.is_ascii_digit()) {
                    service.to_string()
                } else {
                    format!("{service}/{kind}")
                };
                *queues.entry(queue).or_default() += 1;
            }
        }
        for (queue, n) in queues {
            let _ = writeln!(
                out,
                "tresor_background_jobs{{queue=\"{}\"}} {n}",
                escape(&queue)
            );
        }
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// The replication figures of this deployment's primaries (a [`Collector`]): per replica, its
/// status, the lag of its last catch-up, the largest lag seen, how long the oldest change not
/// yet on it has waited, and its catch-up and failure counts.
pub fn replication(services: &Services, out: &mut String) {
    let replicas = tresor_secretsmanager::replication_sync::lag_snapshot(services);
    let series = |out: &mut String,
                  name: &str,
                  kind: &str,
                  help: &str,
                  value: &dyn Fn(
        &tresor_secretsmanager::replication_sync::ReplicaLag,
    ) -> Option<f64>| {
        family(out, name, kind, help);
        for r in &replicas {
            if let Some(v) = value(r) {
                let _ = writeln!(
                    out,
                    "{name}{{secret=\"{}\",region=\"{}\"}} {v}",
                    escape(&r.secret_arn),
                    escape(&r.region)
                );
            }
        }
    };
    let secs = |ms: u64| ms as f64 / 1000.0;
    series(
        out,
        "tresor_replication_in_sync",
        "gauge",
        "1 when the replica is InSync, 0 when InProgress or Failed.",
        &|r| Some(if r.status == "InSync" { 1.0 } else { 0.0 }),
    );
    series(
        out,
        "tresor_replication_lag_seconds",
        "gauge",
        "Primary commit to replica commit, at the replica's last catch-up.",
        &|r| r.last_lag_ms.map(secs),
    );
    series(
        out,
        "tresor_replication_max_lag_seconds",
        "gauge",
        "Largest catch-up lag seen since start.",
        &|r| Some(secs(r.max_lag_ms)),
    );
    series(
        out,
        "tresor_replication_pending_seconds",
        "gauge",
        "Age of the oldest change not yet on the replica (0 when none).",
        &|r| Some(r.pending_ms.map_or(0.0, secs)),
    );
    series(
        out,
        "tresor_replication_syncs_total",
        "counter",
        "Catch-ups applied to the replica since start.",
        &|r| Some(r.syncs as f64),
    );
    series(
        out,
        "tresor_replication_failures_total",
        "counter",
        "Failed replication attempts since start.",
        &|r| Some(r.failures as f64),
    );
}

/// A label value in the exposition format: backslash, double quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The store backend's own counters (PostgreSQL: round trips to the database and
/// transactions), as `tresor_store_<name>_total` (a [`Collector`]).
pub fn store_counters(services: &Services, out: &mut String) {
    for (name, value) in services.store().counters() {
        let metric = format!("tresor_store_{name}_total");
        family(
            out,
            &metric,
            "counter",
            "Work of the store backend since the start.",
        );
        let _ = writeln!(out, "{metric} {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_move_and_render() {
        let m = Metrics::new(Vec::new());
        m.request(
            "secretsmanager",
            "GetSecretValue",
            RequestOutcome::Ok,
            Duration::from_micros(800),
        );
        m.request(
            "secretsmanager",
            "GetSecretValue",
            RequestOutcome::Denied,
            Duration::from_millis(3),
        );
        m.auth_failure("InvalidSignatureException");
        m.request(
            "kms",
            "Decrypt",
            RequestOutcome::Ok,
            Duration::from_micros(5),
        );
        m.request(
            "kms",
            "DecryptX",
            RequestOutcome::Ok,
            Duration::from_micros(5),
        );
        m.request(
            "kms",
            "DecryptX",
            RequestOutcome::Ok,
            Duration::from_micros(5),
        );
        let services = tresor_core::Services::new(
            std::sync::Arc::new(tresor_store::MemoryStore::new()),
            std::sync::Arc::new(tresor_crypto::RootKey::from_bytes(&[7; 32]).unwrap()),
            std::sync::Arc::new(tresor_iam::IamDirectory),
        );
        let text = m.render(&services);
        assert!(text.contains(
            "tresor_requests_total{service=\"secretsmanager\",operation=\"GetSecretValue\",outcome=\"denied\"} 1"
        ));
        assert!(text.contains("le=\"0.001\"} 1\n"), "{text}");
        assert!(text.contains("le=\"+Inf\"} 2\n"));
        assert!(text.contains(
            "tresor_authentication_failures_total{reason=\"InvalidSignatureException\"} 1"
        ));
        assert_eq!(
            RequestOutcome::of_error("AccessDeniedException", 400),
            RequestOutcome::Denied
        );
        assert_eq!(escape("a\"b\\"), "a\\\"b\\\\");
    }
}
