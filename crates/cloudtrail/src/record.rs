//! The audit log in the store: one record per request under `audit/e/<time>/<event id>` (the
//! request's own event, then the events of calls made on its behalf), in time order — new
//! records append at the end of the key space, the cheapest insert for the store's B-tree —
//! and read newest first (LookupEvents' order) by a reverse scan. A record holds, per
//! event, one line of the few fields LookupEvents filters on and one line of the CloudTrail
//! event's JSON text as it is returned — not escaped into another JSON string, so a record
//! is written and read without re-encoding the event, and a lookup never parses an event it
//! does not return.
//!
//! Records are written by the server (in the transaction of the write they record, or in a
//! batch before a read's response) and pruned by its retention job; this crate reads them.

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use time::OffsetDateTime;
use tresor_core::audit::{AUDIT_PREFIX, SecretRead};

use tresor_store::{ReadTxn, Store, StoreError, WriteTxn};

/// The prefix of every event record.
pub const EVENT_PREFIX: &str = "audit/e/";

/// One event as stored.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StoredEvent {
    pub v: u32,
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    pub read_only: bool,
    /// Microseconds since the epoch.
    pub time_us: i64,
    /// The account whose event history shows the event (`recipientAccountId`); empty when
    /// the caller could not be identified.
    pub account: String,
    pub region: String,
    pub username: Option<String>,
    pub access_key_id: Option<String>,
    /// (CloudTrail resource type, resource name = ARN).
    pub resources: Vec<(String, String)>,
    /// `userIdentity.arn`, when the caller was identified.
    pub principal: Option<String>,
    pub source_ip: Option<String>,
    /// `userIdentity.invokedBy` of an event a service caused on the caller's behalf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoked_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// The secret versions a read returned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reads: Vec<SecretRead>,
    /// The CloudTrail record, as LookupEvents' `CloudTrailEvent` (stored as its own line).
    #[serde(skip)]
    pub event: String,
}

/// The record format version of [`StoredEvent::v`].
pub const RECORD_VERSION: u32 = 1;

impl StoredEvent {
    pub fn time(&self) -> OffsetDateTime {
        from_micros(self.time_us)
    }

    /// The record's key.
    pub fn key(&self) -> String {
        key_at(self.time_us, &self.event_id)
    }
}

pub fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

pub fn from_micros(us: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn key_at(us: i64, event_id: &str) -> String {
    format!("{EVENT_PREFIX}{:020}/{event_id}", us.max(0))
}

/// The `before` of a reverse scan whose first key is the newest event at or before `us`.
pub fn scan_from(us: i64) -> String {
    // Keys at `us` continue with '/', which sorts before '~'.
    format!("{EVENT_PREFIX}{:020}~", us.max(0))
}

/// The time of an event key (for scans that stop at a bound).
pub fn time_of_key(key: &str) -> Option<i64> {
    key.strip_prefix(EVENT_PREFIX)?.get(..20)?.parse().ok()
}

/// Writes (or rewrites) the record of one request: `events[0]` is the request's own event
/// (its key), the rest happened on its behalf.
pub fn put_row(txn: &mut dyn WriteTxn, events: &[StoredEvent]) -> Result<(), StoreError> {
    debug_assert!(EVENT_PREFIX.starts_with(AUDIT_PREFIX));
    let Some(first) = events.first() else {
        return Ok(());
    };
    let mut value = Vec::with_capacity(events.iter().map(|e| e.event.len() + 512).sum());
    for e in events {
        // A struct of strings always encodes; the error is only the type's.
        serde_json::to_writer(&mut value, e).map_err(|_| StoreError::Unsupported {
            what: "encoding an audit event",
        })?;
        value.push(b'\n');
        // JSON text never holds a raw newline: the line ends where the event ends.
        value.extend_from_slice(e.event.as_bytes());
        value.push(b'\n');
    }
    txn.put(&first.key(), &value)
}

/// Writes the record of a single event.
pub fn put(txn: &mut dyn WriteTxn, event: &StoredEvent) -> Result<(), StoreError> {
    put_row(txn, std::slice::from_ref(event))
}

/// Decodes a record; one that does not decode is skipped by the readers (and logged).
pub fn decode_row(key: &str, bytes: &[u8]) -> Vec<StoredEvent> {
    let mut out = Vec::new();
    let mut lines = bytes.split(|b| *b == b'\n');
    while let (Some(index), Some(event)) = (lines.next(), lines.next()) {
        if index.is_empty() {
            break;
        }
        let decoded = serde_json::from_slice::<StoredEvent>(index)
            .ok()
            .zip(String::from_utf8(event.to_vec()).ok());
        match decoded {
            Some((mut e, text)) => {
                e.event = text;
                out.push(e);
            }
            None => {
                tracing::warn!(key, "an audit record does not decode");
                return Vec::new();
            }
        }
    }
    out
}

/// Where a scan stands: the key of a record and the index of an event in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub key: String,
    pub index: usize,
}

/// Deletes up to `limit` events older than `cutoff`; returns how many were deleted.
pub fn prune(
    txn: &mut dyn WriteTxn,
    cutoff: OffsetDateTime,
    limit: usize,
) -> Result<usize, StoreError> {
    // The oldest records come first in key order.
    let cutoff = micros(cutoff);
    let mut n = 0;
    for (key, _) in txn.scan(EVENT_PREFIX, None, limit)? {
        if time_of_key(&key).is_some_and(|t| t >= cutoff) {
            break;
        }
        txn.delete(&key)?;
        n += 1;
    }
    Ok(n)
}

/// Reads events newest first, at or before `end_us`, after `after` when given, stopping
/// before events older than `start_us`; `keep` filters, at most `limit` are returned, each
/// with its cursor. Returns the events and whether more may follow.
pub fn scan_events(
    txn: &dyn ReadTxn,
    end_us: i64,
    start_us: i64,
    after: Option<&Cursor>,
    limit: usize,
    mut keep: impl FnMut(&StoredEvent) -> bool,
) -> Result<(Vec<(Cursor, StoredEvent)>, bool), StoreError> {
    const PAGE: usize = 512;
    let mut out = Vec::new();
    // Takes the events of one record from `skip` on; true when `limit` is reached.
    let mut take = |key: &str, bytes: &[u8], skip: usize, out: &mut Vec<(Cursor, StoredEvent)>| {
        for (index, event) in decode_row(key, bytes).into_iter().enumerate().skip(skip) {
            if keep(&event) {
                let cursor = Cursor {
                    key: key.to_string(),
                    index,
                };
                out.push((cursor, event));
                if out.len() == limit {
                    return true;
                }
            }
        }
        false
    };
    let mut cursor = match after {
        Some(c) => {
            // The rest of the record the previous page ended in.
            if let Some(bytes) = txn.get(&c.key)?
                && take(&c.key, &bytes, c.index + 1, &mut out)
            {
                return Ok((out, true));
            }
            c.key.clone()
        }
        None => scan_from(end_us),
    };
    loop {
        let page = txn.scan_rev(EVENT_PREFIX, Some(&cursor), PAGE)?;
        let full = page.len() == PAGE;
        for (key, bytes) in page {
            if time_of_key(&key).is_some_and(|t| t < start_us) {
                return Ok((out, false));
            }
            if take(&key, &bytes, 0, &mut out) {
                return Ok((out, true));
            }
            cursor = key;
        }
        if !full {
            return Ok((out, false));
        }
    }
}

/// [`scan_events`] over every store that holds audit records (the main store and the log's
/// own, see [`tresor_core::audit::record_stores`]), merged in key order.
pub fn scan_stores(
    stores: &[Arc<dyn Store>],
    end_us: i64,
    start_us: i64,
    after: Option<&Cursor>,
    limit: usize,
    mut keep: impl FnMut(&StoredEvent) -> bool,
) -> Result<(Vec<(Cursor, StoredEvent)>, bool), StoreError> {
    let mut all = Vec::new();
    let mut more = false;
    for store in stores {
        let txn = store.begin_read()?;
        let (found, m) = scan_events(&*txn, end_us, start_us, after, limit, &mut keep)?;
        more |= m;
        all.extend(found);
    }
    // Newest record first; a record's events in their order.
    all.sort_by(|a, b| b.0.key.cmp(&a.0.key).then(a.0.index.cmp(&b.0.index)));
    if all.len() > limit {
        all.truncate(limit);
        more = true;
    }
    Ok((all, more))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_store::{MemoryStore, Store};

    fn event(id: &str, secs: i64) -> StoredEvent {
        StoredEvent {
            v: RECORD_VERSION,
            event_id: id.into(),
            event_name: "GetSecretValue".into(),
            event_source: "secretsmanager.amazonaws.com".into(),
            read_only: true,
            time_us: secs * 1_000_000,
            account: "111122223333".into(),
            region: "us-east-1".into(),
            username: None,
            access_key_id: None,
            resources: vec![],
            principal: None,
            source_ip: None,
            invoked_by: None,
            error_code: None,
            reads: vec![],
            event: "{}".into(),
        }
    }

    #[test]
    fn scans_are_newest_first_within_the_range_and_prune_drops_the_old() {
        let store = MemoryStore::new();
        let mut t = store.begin_write().unwrap();
        for (id, s) in [("a", 100), ("b", 200), ("c", 300), ("d", 400)] {
            put(&mut *t, &event(id, s)).unwrap();
        }
        t.commit().unwrap();
        let r = store.begin_read().unwrap();
        let (got, _) = scan_events(&*r, 300_000_000, 200_000_000, None, 10, |_| true).unwrap();
        let ids: Vec<_> = got.iter().map(|(_, e)| e.event_id.as_str()).collect();
        assert_eq!(ids, ["c", "b"]);
        let (page, more) = scan_events(&*r, i64::MAX, 0, None, 1, |_| true).unwrap();
        assert!(more);
        let (next, _) = scan_events(&*r, i64::MAX, 0, Some(&page[0].0), 10, |_| true).unwrap();
        assert_eq!(next.len(), 3);
        drop(r);
        let mut t = store.begin_write().unwrap();
        let n = prune(
            &mut *t,
            OffsetDateTime::from_unix_timestamp(250).unwrap(),
            100,
        )
        .unwrap();
        t.commit().unwrap();
        assert_eq!(n, 2);
        let r = store.begin_read().unwrap();
        let (left, _) = scan_events(&*r, i64::MAX, 0, None, 10, |_| true).unwrap();
        assert_eq!(left.len(), 2);
    }

    #[test]
    fn a_page_may_end_inside_a_record_and_the_next_resumes_there() {
        let store = MemoryStore::new();
        let mut t = store.begin_write().unwrap();
        let mut row = vec![event("main", 200), event("hop1", 200), event("hop2", 200)];
        row[1].event = "{\"n\":1}".into();
        put_row(&mut *t, &row).unwrap();
        put(&mut *t, &event("older", 100)).unwrap();
        t.commit().unwrap();
        let r = store.begin_read().unwrap();
        let mut seen = Vec::new();
        let mut after: Option<Cursor> = None;
        loop {
            let (page, more) = scan_events(&*r, i64::MAX, 0, after.as_ref(), 2, |_| true).unwrap();
            seen.extend(page.iter().map(|(_, e)| e.event_id.clone()));
            after = page.last().map(|(c, _)| c.clone());
            if !more {
                break;
            }
        }
        assert_eq!(seen, ["main", "hop1", "hop2", "older"]);
        let (all, _) = scan_events(&*r, i64::MAX, 0, None, 10, |_| true).unwrap();
        assert_eq!(all[1].1.event, "{\"n\":1}");
    }
}
