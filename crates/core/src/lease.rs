//! Leases on background jobs that span several transactions (a Secrets Manager rotation
//! invokes a function between its steps), so that with several nodes on one shared store each
//! such job runs on one node at a time, and a job whose node died is taken over by another
//! once the lease has expired.
//!
//! A lease is a field of the job's own record, taken and renewed in the write transactions
//! that already read and write that record. Write transactions are serializable (the shared
//! PostgreSQL backend runs them one at a time across the nodes), so two nodes can never both
//! see a job unleased and both take it. Jobs done in one transaction need no lease: the
//! transaction that does the work re-reads and removes the job.
//!
//! On a store that only this process uses (SQLite, memory) there is no other node, and
//! leases are not taken: a restarted server resumes its interrupted jobs at once.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::Services;

/// How long a lease lasts without renewal. `TRESOR_JOB_LEASE_SECONDS` (testing) shortens it.
pub const DEFAULT_LEASE: Duration = Duration::seconds(120);

/// A job's lease: which node holds it and until when (unix milliseconds).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Lease {
    pub owner: String,
    pub until_ms: i64,
}

static NODE_ID: OnceLock<String> = OnceLock::new();

/// This process's identity as a lease owner: the one [`set_node_id`] gave (the server keeps
/// it in its data directory, so a restarted node takes its own leases back at once), else
/// random.
pub fn node_id() -> &'static str {
    NODE_ID.get_or_init(tresor_crypto::ids::uuid_v4)
}

/// Sets the node's identity; only before the first [`node_id`] (later calls change nothing).
pub fn set_node_id(id: &str) {
    let _ = NODE_ID.set(id.to_string());
}

/// The lease duration (read once).
pub fn duration() -> Duration {
    static SECS: OnceLock<Option<i64>> = OnceLock::new();
    SECS.get_or_init(|| {
        std::env::var("TRESOR_JOB_LEASE_SECONDS")
            .ok()
            .and_then(|v| v.parse::<i64>().ok())
            .filter(|s| *s > 0)
    })
    .map_or(DEFAULT_LEASE, Duration::seconds)
}

/// Whether jobs must be leased: the store is shared with other processes.
pub fn required(services: &Services) -> bool {
    services.store().shared_generation().is_some()
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

impl Lease {
    /// A lease for this node from `now`.
    pub fn new(now: OffsetDateTime) -> Lease {
        Lease {
            owner: node_id().to_string(),
            until_ms: unix_ms(now + duration()),
        }
    }

    /// Whether another node holds this lease at `now`.
    pub fn held_by_other(&self, now: OffsetDateTime) -> bool {
        self.owner != node_id() && self.until_ms > unix_ms(now)
    }

    /// When the lease ends.
    pub fn until(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.until_ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn mine(&self) -> bool {
        self.owner == node_id()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_excludes_other_nodes_until_it_expires() {
        let now = OffsetDateTime::now_utc();
        let mine = Lease::new(now);
        assert!(mine.mine());
        assert!(!mine.held_by_other(now));
        let other = Lease {
            owner: "someone-else".into(),
            ..mine.clone()
        };
        assert!(other.held_by_other(now));
        assert!(!other.held_by_other(now + duration() + Duration::seconds(1)));
        assert!(other.until() > now);
    }
}
