//! The audit log in the store: one record per request under `audit/e/<time>/<event id>` (the
//! request's own event, then the events of calls made on its behalf), in time order — new
//! records append at the end of the key space, the cheapest insert for the store's B-tree —
//! and read newest first (LookupEvents' order) by a reverse scan. A record holds one line of
//! the few fields LookupEvents filters on for the request's own event and one line of that
//! event's CloudTrail JSON text as it is returned — not escaped into another JSON string, so
//! the event is written and read without re-encoding it. Then, one line each, the events of
//! calls made on the request's behalf (KMS `Decrypt` for a secret read …): in record format 2
//! ([`RECORD_VERSION`]) only what differs from the request's own event ([`HopDelta`]), their
//! CloudTrail JSON rendered when they are read ([`hop_event`]); format 1 stored them like the
//! request's own event (an index line and a JSON line each) and is still read.
//!
//! Records are written by the server (in the transaction of the write they record, or in a
//! batch before a read's response) and pruned by its retention job; this crate reads them.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
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

/// The record format version of [`StoredEvent::v`] this build writes: 2, the events made on
/// a request's behalf stored as [`HopDelta`]s. Format 1 records (each event in full) are read
/// too.
pub const RECORD_VERSION: u32 = 2;

/// An event a service caused on a request's behalf (`userIdentity.invokedBy`), stored as what
/// differs from the request's own event: the caller, time, region, request id and account
/// are the request's.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HopDelta {
    pub event_id: String,
    pub event_name: String,
    pub event_source: String,
    pub invoked_by: String,
    pub read_only: bool,
    /// (CloudTrail resource type, ARN).
    pub resources: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Redacted already.
    pub request_parameters: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_event_data: Option<Value>,
}

/// The record of one request: its own event and the events made on its behalf.
#[derive(Clone, Debug)]
pub struct Row {
    pub event: StoredEvent,
    pub hops: Vec<HopDelta>,
}

impl Row {
    /// A record of a single event.
    pub fn single(event: StoredEvent) -> Row {
        Row {
            event,
            hops: Vec::new(),
        }
    }

    /// How many events the record holds.
    pub fn event_count(&self) -> usize {
        1 + self.hops.len()
    }

    /// Every event in full, the request's own first (for the JSON-lines file).
    pub fn events(&self) -> impl Iterator<Item = StoredEvent> + '_ {
        std::iter::once(self.event.clone())
            .chain(self.hops.iter().filter_map(|h| hop_event(&self.event, h)))
    }
}

/// CloudTrail's `resources` of (type, ARN) pairs.
pub fn resources_json<'a>(resources: impl Iterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Array(
        resources
            .map(|(kind, arn)| {
                json!({
                    "accountId": arn.split(':').nth(4).unwrap_or(""),
                    "type": kind,
                    "ARN": arn,
                })
            })
            .collect(),
    )
}

/// The full event of `hop`, made on behalf of the request whose own event is `main`: the
/// same record CloudTrail keeps for such a call (`invokedBy`, the calling service as source
/// address and agent, no response elements). None when `main`'s JSON does not parse.
pub fn hop_event(main: &StoredEvent, hop: &HopDelta) -> Option<StoredEvent> {
    let Ok(Value::Object(mut r)) = serde_json::from_str::<Value>(&main.event) else {
        return None;
    };
    if let Some(Value::Object(id)) = r.get_mut("userIdentity") {
        id.insert("invokedBy".into(), hop.invoked_by.clone().into());
    }
    let by = || Value::String(hop.invoked_by.clone());
    r.insert("sourceIPAddress".into(), by());
    r.insert("userAgent".into(), by());
    r.insert("eventSource".into(), hop.event_source.clone().into());
    r.insert("eventName".into(), hop.event_name.clone().into());
    r.remove("errorMessage");
    match &hop.error_code {
        Some(code) => r.insert("errorCode".into(), code.clone().into()),
        None => r.remove("errorCode"),
    };
    r.insert("requestParameters".into(), hop.request_parameters.clone());
    r.insert("responseElements".into(), Value::Null);
    match &hop.additional_event_data {
        Some(a) => r.insert("additionalEventData".into(), a.clone()),
        None => r.remove("additionalEventData"),
    };
    r.insert("eventID".into(), hop.event_id.clone().into());
    r.insert("readOnly".into(), hop.read_only.into());
    r.insert(
        "resources".into(),
        resources_json(hop.resources.iter().map(|(t, a)| (t.as_str(), a.as_str()))),
    );
    let reads = hop
        .additional_event_data
        .as_ref()
        .and_then(|a| a.get("secretVersions"))
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    Some(StoredEvent {
        v: main.v,
        event_id: hop.event_id.clone(),
        event_name: hop.event_name.clone(),
        event_source: hop.event_source.clone(),
        read_only: hop.read_only,
        time_us: main.time_us,
        account: main.account.clone(),
        region: main.region.clone(),
        username: main.username.clone(),
        access_key_id: main.access_key_id.clone(),
        resources: hop.resources.clone(),
        principal: main.principal.clone(),
        source_ip: Some(hop.invoked_by.clone()),
        invoked_by: Some(hop.invoked_by.clone()),
        error_code: hop.error_code.clone(),
        reads,
        event: Value::Object(r).to_string(),
    })
}

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

/// Writes (or rewrites) the record of one request under its own event's key.
pub fn put_row(txn: &mut dyn WriteTxn, row: &Row) -> Result<(), StoreError> {
    let (key, value) = encode_row(row)?;
    txn.put(&key, &value)
}

/// The key and the value of the record of one request, as [`put_row`] stores them.
pub fn encode_row(row: &Row) -> Result<(String, Vec<u8>), StoreError> {
    debug_assert!(EVENT_PREFIX.starts_with(AUDIT_PREFIX));
    let e = &row.event;
    let mut value = Vec::with_capacity(e.event.len() + 512 + row.hops.len() * 512);
    // Structs of strings and JSON values always encode; the error is only the type's.
    let unsupported = |_| StoreError::Unsupported {
        what: "encoding an audit event",
    };
    // The hops below are deltas: only a format-2 index line says so to the reader.
    debug_assert!(e.v >= 2 || row.hops.is_empty());
    serde_json::to_writer(&mut value, e).map_err(unsupported)?;
    value.push(b'\n');
    // JSON text never holds a raw newline: the line ends where the event ends.
    value.extend_from_slice(e.event.as_bytes());
    value.push(b'\n');
    for hop in &row.hops {
        serde_json::to_writer(&mut value, hop).map_err(unsupported)?;
        value.push(b'\n');
    }
    Ok((e.key(), value))
}

/// Writes the record of a single event.
pub fn put(txn: &mut dyn WriteTxn, event: &StoredEvent) -> Result<(), StoreError> {
    put_row(txn, &Row::single(event.clone()))
}

/// Decodes a record; one that does not decode is skipped by the readers (and logged).
pub fn decode_row(key: &str, bytes: &[u8]) -> Vec<StoredEvent> {
    decode(bytes).unwrap_or_else(|| {
        tracing::warn!(key, "an audit record does not decode");
        Vec::new()
    })
}

fn decode(bytes: &[u8]) -> Option<Vec<StoredEvent>> {
    let mut out: Vec<StoredEvent> = Vec::new();
    let mut lines = bytes
        .strip_suffix(b"\n")
        .unwrap_or(bytes)
        .split(|b| *b == b'\n');
    let pair = |index: &[u8], event: &[u8]| {
        let mut e = serde_json::from_slice::<StoredEvent>(index).ok()?;
        e.event = String::from_utf8(event.to_vec()).ok()?;
        Some(e)
    };
    let main = pair(lines.next()?, lines.next()?)?;
    let delta = main.v >= 2;
    out.push(main);
    while let Some(line) = lines.next() {
        if delta {
            let hop = serde_json::from_slice::<HopDelta>(line).ok()?;
            out.push(hop_event(&out[0], &hop)?);
        } else {
            out.push(pair(line, lines.next()?)?);
        }
    }
    Some(out)
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
            event: "{\"userIdentity\":{\"type\":\"IAMUser\"}}".into(),
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
        let hop = |id: &str| HopDelta {
            event_id: id.into(),
            event_name: "Decrypt".into(),
            event_source: "kms.amazonaws.com".into(),
            invoked_by: "secretsmanager.amazonaws.com".into(),
            read_only: true,
            resources: vec![],
            error_code: None,
            request_parameters: Value::Null,
            additional_event_data: None,
        };
        let row = Row {
            event: event("main", 200),
            hops: vec![hop("hop1"), hop("hop2")],
        };
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
        let hop1: Value = serde_json::from_str(&all[1].1.event).unwrap();
        assert_eq!(hop1["eventID"], "hop1");
        assert_eq!(
            hop1["userIdentity"]["invokedBy"],
            "secretsmanager.amazonaws.com"
        );
        assert_eq!(
            all[1].1.invoked_by.as_deref(),
            Some("secretsmanager.amazonaws.com")
        );
    }

    #[test]
    fn format_1_records_with_every_event_in_full_are_still_read() {
        let mut v1 = Vec::new();
        for (id, text) in [("main", "{\"a\":1}"), ("hop", "{\"b\":2}")] {
            let mut e = event(id, 200);
            e.v = 1;
            serde_json::to_writer(&mut v1, &e).unwrap();
            v1.push(b'\n');
            v1.extend_from_slice(text.as_bytes());
            v1.push(b'\n');
        }
        let events = decode_row("k", &v1);
        let ids: Vec<_> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(ids, ["main", "hop"]);
        assert_eq!(events[1].event, "{\"b\":2}");
        assert!(decode_row("k", b"{\"v\":2}\n").is_empty(), "a torn record");
    }
}
