//! The audit log in the store: one record per request under `audit/e/<time>/<event id>` (the
//! request's own event, then the events of calls made on its behalf), in time order — new
//! records append at the end of the key space, the cheapest insert for the store's B-tree —
//! and read newest first (LookupEvents' order) by a reverse scan. A record holds the few
//! fields LookupEvents filters on for the request's own event and what that event's
//! CloudTrail JSON is made of: since record format 4 ([`RECORD_VERSION`]) its parts
//! ([`ApiCall`]), the JSON written when the record is read ([`render_api_call`]) — so a
//! request pays for a copy of strings, not for an encoding — and before it the JSON text
//! itself. Then the events of calls made on the request's behalf (KMS `Decrypt` for a secret
//! read …): since format 2 only what differs from the request's own event ([`HopDelta`]),
//! their CloudTrail JSON rendered when they are read ([`hop_event`]); format 1 stored each
//! event in full (JSON lines) and is still read.
//!
//! The records of requests that changed nothing reach the log store through the server's
//! segment files, and its indexer stores them many to an entry ([`chunk_rows`]: one B-tree
//! insert per chunk, not per record); readers take a row from its own entry or from a chunk
//! alike ([`scan_events`]).
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

/// The record format version of [`StoredEvent::v`] this build writes: 4, a binary record
/// ([`encode_row`]) whose request event is stored as the parts its CloudTrail JSON is rendered
/// from when it is read ([`ApiCall`]), or as that JSON text, and the events made on a
/// request's behalf as [`HopDelta`]s. Format 3 (the same, the request event always as JSON
/// text), format 2 (JSON lines, hops as deltas) and format 1 (JSON lines, each event in full)
/// are read too.
pub const RECORD_VERSION: u32 = 4;

/// `eventVersion` of the records tresor writes.
pub const EVENT_VERSION: &str = "1.09";

/// What a request's own `AwsApiCall` event holds beyond [`StoredEvent`]'s index fields: the
/// parts its CloudTrail JSON is rendered from ([`render_api_call`]). A request stores these
/// rather than the JSON, which is written only when the log is read — the log is read far
/// less often than it is written, and on the request's own thread before a read is answered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiCall {
    pub request_id: String,
    pub user_agent: Option<String>,
    /// `userIdentity`: the JSON text of an object.
    pub user_identity: String,
    /// `requestParameters` (redacted already): JSON text.
    pub request_parameters: String,
    /// `responseElements`: JSON text (`null` for none).
    pub response_elements: String,
    pub error_message: Option<String>,
    /// `additionalEventData`: JSON text.
    pub additional_event_data: Option<String>,
}

/// The CloudTrail JSON of a request's own event (`eventType` `AwsApiCall`): `event`'s index
/// fields and `call`'s parts, members in byte order of their names (as `serde_json`'s maps
/// write them, the form the events of calls on a request's behalf are rendered in:
/// [`hop_event`]).
pub fn render_api_call(event: &StoredEvent, call: &ApiCall) -> String {
    let e = event;
    let mut out = String::with_capacity(
        768 + call.user_identity.len()
            + call.request_parameters.len()
            + call.response_elements.len()
            + call.additional_event_data.as_ref().map_or(0, String::len)
            + e.resources
                .iter()
                .map(|(t, a)| t.len() + 2 * a.len() + 40)
                .sum::<usize>(),
    );
    out.push('{');
    if let Some(a) = &call.additional_event_data {
        out.push_str("\"additionalEventData\":");
        out.push_str(a);
        out.push(',');
    }
    member(&mut out, "awsRegion", &e.region);
    if let Some(code) = &e.error_code {
        member(&mut out, "errorCode", code);
    }
    if let Some(message) = &call.error_message {
        member(&mut out, "errorMessage", message);
    }
    out.push_str("\"eventCategory\":\"Management\",");
    member(&mut out, "eventID", &e.event_id);
    member(&mut out, "eventName", &e.event_name);
    member(&mut out, "eventSource", &e.event_source);
    member(&mut out, "eventTime", &event_time(e.time()));
    out.push_str("\"eventType\":\"AwsApiCall\",");
    member(&mut out, "eventVersion", EVENT_VERSION);
    out.push_str("\"managementEvent\":true,\"readOnly\":");
    out.push_str(if e.read_only { "true," } else { "false," });
    member(&mut out, "recipientAccountId", &e.account);
    member(&mut out, "requestID", &call.request_id);
    out.push_str("\"requestParameters\":");
    out.push_str(&call.request_parameters);
    out.push_str(",\"resources\":[");
    for (i, (kind, arn)) in e.resources.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"ARN\":");
        json_string(&mut out, arn);
        out.push_str(",\"accountId\":");
        json_string(&mut out, arn.split(':').nth(4).unwrap_or(""));
        out.push_str(",\"type\":");
        json_string(&mut out, kind);
        out.push('}');
    }
    out.push_str("],\"responseElements\":");
    out.push_str(&call.response_elements);
    out.push_str(",\"sourceIPAddress\":");
    optional_string(&mut out, e.source_ip.as_deref());
    out.push_str(",\"userAgent\":");
    optional_string(&mut out, call.user_agent.as_deref());
    out.push_str(",\"userIdentity\":");
    out.push_str(&call.user_identity);
    out.push('}');
    out
}

/// `eventTime` and the other times of a record: whole seconds in UTC, as CloudTrail writes
/// them (the wire's ISO 8601 form).
pub use tresor_wire::timefmt::iso8601 as event_time;

/// A JSON value as text, written straight into a buffer (`Value`'s `Display` goes through
/// the formatting machinery a piece at a time, several times dearer).
pub fn json_text(v: &Value) -> String {
    let mut out = String::with_capacity(128);
    write_value(&mut out, v);
    out
}

/// Writes `v` as `serde_json::to_string` does (compact, members in the map's order), strings
/// through [`json_string`]'s scan rather than serde's escaping machinery.
fn write_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => json_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (name, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(out, name);
                out.push(':');
                write_value(out, value);
            }
            out.push('}');
        }
    }
}

/// `"name":"value",`
fn member(out: &mut String, name: &str, value: &str) {
    out.push('"');
    out.push_str(name);
    out.push_str("\":");
    json_string(out, value);
    out.push(',');
}

fn optional_string(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json_string(out, s),
        None => out.push_str("null"),
    }
}

/// `s` as a JSON string, escaped as `serde_json` escapes it: `"` and `\\`, the control
/// characters as `\b \f \n \r \t` or `\u00xx`, nothing else. Eight bytes are checked at a
/// time: the strings of an audit record (ARNs, ids, names) seldom hold anything to escape.
pub fn json_string(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes
            .get(i..i + 8)
            .and_then(|w| <[u8; 8]>::try_from(w).ok())
            && !needs_escape(u64::from_le_bytes(word))
        {
            i += 8;
            continue;
        }
        let b = bytes[i];
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => {
                i += 1;
                continue;
            }
        };
        // Only ASCII bytes end a run, so every cut is on a character boundary.
        out.push_str(s.get(start..i).unwrap_or_default());
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(escape);
        }
        i += 1;
        start = i;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// Whether any of the eight bytes of `w` is below 0x20, `"` or `\\` (exact: a byte of 0x80 or
/// more never sets a flag, and a flag is set only where the byte qualifies or a byte before
/// it did).
fn needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    (control | zero_byte(w ^ (ONES * u64::from(b'"'))) | zero_byte(w ^ (ONES * u64::from(b'\\'))))
        != 0
}

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
    /// `requestParameters`, redacted already: the JSON text of an object (format 2's JSON
    /// lines hold it as a JSON value).
    #[serde(with = "json_text_field")]
    pub request_parameters: String,
    /// `additionalEventData`: the JSON text of an object (format 2's JSON lines hold it as
    /// a JSON value).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "json_text_field::option"
    )]
    pub additional_event_data: Option<String>,
}

/// A field held as JSON text that format 2's JSON lines hold as a JSON value.
mod json_text_field {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(text: &str, s: S) -> Result<S::Ok, S::Error> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(serde::ser::Error::custom)?;
        serde::Serialize::serialize(&value, s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        Ok(serde_json::Value::deserialize(d)?.to_string())
    }

    pub mod option {
        use serde::{Deserialize, Deserializer, Serializer};

        pub fn serialize<S: Serializer>(text: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
            match text {
                Some(text) => super::serialize(text, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
            Ok(Option::<serde_json::Value>::deserialize(d)?.map(|v| v.to_string()))
        }
    }
}

/// The record of one request: its own event and the events made on its behalf.
#[derive(Clone, Debug)]
pub struct Row {
    /// With `call`, its `event` text is empty: [`Row::main_event`] renders it.
    pub event: StoredEvent,
    pub call: Option<ApiCall>,
    pub hops: Vec<HopDelta>,
}

impl Row {
    /// A record of a single event whose CloudTrail JSON is written already.
    pub fn single(event: StoredEvent) -> Row {
        Row {
            event,
            call: None,
            hops: Vec::new(),
        }
    }

    /// The request's own event, its CloudTrail JSON rendered.
    pub fn main_event(&self) -> StoredEvent {
        let mut e = self.event.clone();
        if let Some(call) = &self.call {
            e.event = render_api_call(&self.event, call);
        }
        e
    }

    /// How many events the record holds.
    pub fn event_count(&self) -> usize {
        1 + self.hops.len()
    }

    /// Every event in full, the request's own first (for the JSON-lines file).
    pub fn events(&self) -> Vec<StoredEvent> {
        let main = self.main_event();
        let hops: Vec<StoredEvent> = self
            .hops
            .iter()
            .filter_map(|h| hop_event(&main, h))
            .collect();
        let mut all = Vec::with_capacity(1 + hops.len());
        all.push(main);
        all.extend(hops);
        all
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
    r.insert(
        "requestParameters".into(),
        serde_json::from_str(&hop.request_parameters).unwrap_or(Value::Null),
    );
    r.insert("responseElements".into(), Value::Null);
    let additional: Option<Value> = hop
        .additional_event_data
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok());
    match &additional {
        Some(a) => r.insert("additionalEventData".into(), a.clone()),
        None => r.remove("additionalEventData"),
    };
    r.insert("eventID".into(), hop.event_id.clone().into());
    r.insert("readOnly".into(), hop.read_only.into());
    r.insert(
        "resources".into(),
        resources_json(hop.resources.iter().map(|(t, a)| (t.as_str(), a.as_str()))),
    );
    let reads = additional
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
    // `{EVENT_PREFIX}{:020}/{event_id}`, written without the formatting machinery (a key is
    // made on every request).
    let mut key = String::with_capacity(EVENT_PREFIX.len() + 21 + event_id.len());
    key.push_str(EVENT_PREFIX);
    let mut digits = [b'0'; 20];
    let mut n = us.max(0).unsigned_abs();
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    key.extend(digits.iter().map(|&d| char::from(d)));
    key.push('/');
    key.push_str(event_id);
    key
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

/// The key and the value of the record of one request, as [`put_row`] stores them: format 4,
/// binary — the first byte [`ROW_V4`], then the request's own event (its index fields, then
/// either `0` and its CloudTrail JSON text or `1` and the [`ApiCall`] parts it is rendered
/// from), then its hops, every string as a little-endian `u32` length and its bytes. Written
/// on the request's own thread before a read is answered, so it is a copy of strings, not an
/// encoding: no JSON escaping (the hops' small JSON values are written as text). Format 3 is
/// format 4 without the `0`/`1` (always the JSON text).
pub fn encode_row(row: &Row) -> Result<(String, Vec<u8>), StoreError> {
    debug_assert!(EVENT_PREFIX.starts_with(AUDIT_PREFIX));
    let e = &row.event;
    let call_len = row.call.as_ref().map_or(0, |c| {
        c.user_identity.len() + c.request_parameters.len() + c.response_elements.len() + 256
    });
    let mut w = Writer(Vec::with_capacity(
        e.event.len() + call_len + 512 + row.hops.len() * 512,
    ));
    w.0.push(ROW_V4);
    w.head(e);
    match &row.call {
        None => {
            w.0.push(0);
            w.str(&e.event);
        }
        Some(c) => {
            w.0.push(1);
            w.str(&c.request_id);
            w.opt(c.user_agent.as_deref());
            w.str(&c.user_identity);
            w.str(&c.request_parameters);
            w.str(&c.response_elements);
            w.opt(c.error_message.as_deref());
            w.opt(c.additional_event_data.as_deref());
        }
    }
    w.hops(&row.hops);
    if w.0.len() > u32::MAX as usize {
        return Err(StoreError::Unsupported {
            what: "an audit record of 4 GiB",
        });
    }
    Ok((e.key(), w.0))
}

/// The first byte of a format-3 row (a format 1 or 2 row starts with `{`, a chunk with `C`).
const ROW_V3: u8 = 3;
/// The first byte of a format-4 row.
const ROW_V4: u8 = 4;

/// Writes the fields of a format-3 row.
struct Writer(Vec<u8>);

impl Writer {
    /// The request event's index fields and the secret versions it returned.
    fn head(&mut self, e: &StoredEvent) {
        self.str(&e.event_id);
        self.str(&e.event_name);
        self.str(&e.event_source);
        self.0.push(u8::from(e.read_only));
        self.0.extend_from_slice(&e.time_us.to_le_bytes());
        self.str(&e.account);
        self.str(&e.region);
        self.opt(e.username.as_deref());
        self.opt(e.access_key_id.as_deref());
        self.pairs(&e.resources);
        self.opt(e.principal.as_deref());
        self.opt(e.source_ip.as_deref());
        self.opt(e.invoked_by.as_deref());
        self.opt(e.error_code.as_deref());
        self.len(e.reads.len());
        for r in &e.reads {
            self.str(&r.secret_arn);
            self.str(&r.version_id);
            self.len(r.version_stages.len());
            for stage in &r.version_stages {
                self.str(stage);
            }
        }
    }

    fn hops(&mut self, hops: &[HopDelta]) {
        self.len(hops.len());
        for h in hops {
            self.str(&h.event_id);
            self.str(&h.event_name);
            self.str(&h.event_source);
            self.str(&h.invoked_by);
            self.0.push(u8::from(h.read_only));
            self.pairs(&h.resources);
            self.opt(h.error_code.as_deref());
            self.str(&h.request_parameters);
            self.opt(h.additional_event_data.as_deref());
        }
    }

    fn len(&mut self, n: usize) {
        // Lengths beyond u32 are refused for the whole record (see `encode_row`).
        self.0
            .extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }

    fn str(&mut self, s: &str) {
        self.len(s.len());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn opt(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.str(s);
            }
        }
    }

    fn pairs(&mut self, pairs: &[(String, String)]) {
        self.len(pairs.len());
        for (a, b) in pairs {
            self.str(a);
            self.str(b);
        }
    }
}

/// Reads the fields of a format-3 row; None at the first field that is cut short or not
/// UTF-8.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn byte(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    fn len(&mut self) -> Option<usize> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?) as usize)
    }

    fn str(&mut self) -> Option<String> {
        let n = self.len()?;
        String::from_utf8(self.bytes(n)?.to_vec()).ok()
    }

    fn opt(&mut self) -> Option<Option<String>> {
        match self.byte()? {
            0 => Some(None),
            1 => Some(Some(self.str()?)),
            _ => None,
        }
    }

    fn count(&mut self) -> Option<usize> {
        let n = self.len()?;
        // Every item takes at least one byte: a count beyond what is left is garbage.
        (n <= self.0.len()).then_some(n)
    }

    fn pairs(&mut self) -> Option<Vec<(String, String)>> {
        (0..self.count()?)
            .map(|_| Some((self.str()?, self.str()?)))
            .collect()
    }

    /// A string that must be JSON text (a record whose JSON does not parse is refused).
    fn json_text(&mut self) -> Option<String> {
        let text = self.str()?;
        serde_json::from_str::<serde::de::IgnoredAny>(&text).ok()?;
        Some(text)
    }
}

/// Decodes a format-3 or format-4 row (its first byte already checked).
fn decode_binary(bytes: &[u8]) -> Option<Vec<StoredEvent>> {
    let (&version, rest) = bytes.split_first()?;
    let mut r = Reader(rest);
    let mut main = StoredEvent {
        v: u32::from(version),
        event_id: r.str()?,
        event_name: r.str()?,
        event_source: r.str()?,
        read_only: r.byte()? != 0,
        time_us: i64::from_le_bytes(r.bytes(8)?.try_into().ok()?),
        account: r.str()?,
        region: r.str()?,
        username: r.opt()?,
        access_key_id: r.opt()?,
        resources: r.pairs()?,
        principal: r.opt()?,
        source_ip: r.opt()?,
        invoked_by: r.opt()?,
        error_code: r.opt()?,
        reads: Vec::new(),
        event: String::new(),
    };
    for _ in 0..r.count()? {
        let secret_arn = r.str()?;
        let version_id = r.str()?;
        let version_stages = (0..r.count()?).map(|_| r.str()).collect::<Option<_>>()?;
        main.reads.push(SecretRead {
            secret_arn,
            version_id,
            version_stages,
        });
    }
    let call = match (version, if version == ROW_V3 { 0 } else { r.byte()? }) {
        (_, 0) => {
            main.event = r.str()?;
            None
        }
        (ROW_V4, 1) => Some(ApiCall {
            request_id: r.str()?,
            user_agent: r.opt()?,
            user_identity: r.str()?,
            request_parameters: r.str()?,
            response_elements: r.str()?,
            error_message: r.opt()?,
            additional_event_data: r.opt()?,
        }),
        _ => return None,
    };
    let hops = r.count()?;
    let mut deltas = Vec::with_capacity(hops);
    for _ in 0..hops {
        deltas.push(HopDelta {
            event_id: r.str()?,
            event_name: r.str()?,
            event_source: r.str()?,
            invoked_by: r.str()?,
            read_only: r.byte()? != 0,
            resources: r.pairs()?,
            error_code: r.opt()?,
            request_parameters: r.json_text()?,
            additional_event_data: match r.opt()? {
                None => None,
                Some(text) => {
                    serde_json::from_str::<serde::de::IgnoredAny>(&text).ok()?;
                    Some(text)
                }
            },
        });
    }
    if !r.0.is_empty() {
        return None;
    }
    if let Some(call) = &call {
        main.event = render_api_call(&main, call);
    }
    let mut out = Vec::with_capacity(1 + hops);
    for hop in &deltas {
        out.push(hop_event(&main, hop)?);
    }
    out.insert(0, main);
    Some(out)
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
    if matches!(bytes.first(), Some(&(ROW_V3 | ROW_V4))) {
        return decode_binary(bytes);
    }
    // Formats 1 and 2: JSON lines.
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

/// The most rows one chunk holds ([`chunk_rows`]).
pub const CHUNK_ROWS: usize = 64;
/// The events of a chunk lie within this many microseconds before (or at) the time in its
/// key: a reader looking for events at or before `t` starts at keys of `t` plus this.
pub const CHUNK_SPAN_US: i64 = 1_000_000;
/// The first byte of a chunk of the first chunk format: each row's key and value with a
/// length (written until record format 4's chunks became [`CHUNK_DELTA`]; still read).
const CHUNK_MAGIC: u8 = b'C';
/// The first byte of a chunk whose rows are stored as their differences from an earlier row
/// of the chunk ([`chunk_rows`]).
const CHUNK_DELTA: u8 = b'D';
/// How many rows back a row's value may name the row it is stored against.
const DELTA_WINDOW: usize = 8;
/// A part of a chunk says its length; longer is refused (a segment frame is at most 64 MiB).
const MAX_PART: usize = 64 << 20;

/// Packs rows (key and value as [`encode_row`] makes them) into chunks of up to
/// [`CHUNK_ROWS`] rows whose times span at most [`CHUNK_SPAN_US`], one store entry each: the
/// log's indexer writes thousands of records per transaction, and one B-tree insert per
/// chunk instead of one per record is most of what indexing costs. A chunk's key is
/// `audit/e/<time of its newest row>/~<that row's event id>`: it sorts among the rows' own
/// keys by time (prune and the time bound of a scan read it like a row's), and the same rows
/// make the same chunks (indexing a segment again after a crash rewrites the same entries).
/// Entries whose key is not a row's are returned as they are.
///
/// A chunk stores each row as its difference from an earlier row ([`CHUNK_DELTA`]): the
/// records of one caller's reads of one secret differ only in their ids and times, and the
/// bytes a chunk does not carry are bytes the store does not copy into its pages, its
/// write-ahead log and its checkpoints, or keep on disk for the retention's 90 days. The key
/// is stored against the row before; the value against the nearest of the [`DELTA_WINDOW`]
/// rows before it that has the same length (most likely the same kind of record by the same
/// caller), else the row just before. A difference is a run of copies and literals
/// ([`put_delta`]), computed by comparing the two rows at the same offsets, a word at a time —
/// no search.
pub fn chunk_rows(mut entries: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
    // A key written twice keeps its last value, as a store's put does.
    entries.reverse();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.dedup_by(|next, kept| next.0 == kept.0);
    let mut out = Vec::new();
    let mut chunk: Vec<(String, Vec<u8>)> = Vec::new();
    let mut first_us = 0;
    let flush = |chunk: &mut Vec<(String, Vec<u8>)>, out: &mut Vec<(String, Vec<u8>)>| {
        let Some((last_key, _)) = chunk.last() else {
            return;
        };
        if chunk.len() == 1 {
            out.append(chunk);
            return;
        }
        let id = last_key.rsplit('/').next().unwrap_or_default();
        let key = format!("{}~{id}", &last_key[..last_key.len() - id.len()]);
        out.push((key, delta_chunk(chunk)));
        chunk.clear();
    };
    for (key, value) in entries {
        let Some(us) = time_of_key(&key).filter(|_| key.starts_with(EVENT_PREFIX)) else {
            out.push((key, value));
            continue;
        };
        if !chunk.is_empty() && (chunk.len() == CHUNK_ROWS || us - first_us > CHUNK_SPAN_US) {
            flush(&mut chunk, &mut out);
        }
        if chunk.is_empty() {
            first_us = us;
        }
        chunk.push((key, value));
    }
    flush(&mut chunk, &mut out);
    out
}

/// The value of a [`CHUNK_DELTA`] chunk of `rows`: the magic byte, then for each row its key
/// (against the key before) and a byte naming the row its value is stored against (0: none,
/// k: the k-th row before), then the value.
fn delta_chunk(rows: &[(String, Vec<u8>)]) -> Vec<u8> {
    let size: usize = rows.iter().map(|(k, v)| k.len() + v.len()).sum();
    // Most rows shrink to their ids; a chunk of unlike rows stays about as large as they are.
    let mut value = Vec::with_capacity(64 + size / 4);
    value.push(CHUNK_DELTA);
    for (i, (key, row)) in rows.iter().enumerate() {
        let prev_key = i.checked_sub(1).map_or(&[][..], |p| rows[p].0.as_bytes());
        put_delta(&mut value, prev_key, key.as_bytes());
        let back = (1..=DELTA_WINDOW.min(i))
            .find(|&k| rows[i - k].1.len() == row.len())
            .unwrap_or(usize::from(i > 0));
        let base = match back {
            0 => &[][..],
            k => &rows[i - k].1[..],
        };
        // `back` is at most DELTA_WINDOW (8).
        value.push(u8::try_from(back).unwrap_or(0));
        put_delta(&mut value, base, row);
    }
    value
}

/// Appends `row` as its difference from `base`: its length, then pairs of a copy (that many
/// bytes of `base` at the same offset) and a literal (that many bytes, which follow), each
/// count a LEB128 varint, until the row is complete.
pub fn put_delta(out: &mut Vec<u8>, base: &[u8], row: &[u8]) {
    put_varint(out, row.len());
    let mut i = 0;
    while i < row.len() {
        let copy = same_run(base, row, i);
        let literal = i + copy;
        let end = literal + differing_run(base, row, literal);
        put_varint(out, copy);
        put_varint(out, end - literal);
        out.extend_from_slice(&row[literal..end]);
        i = end;
    }
}

/// How many bytes of `b` from `from` on come before the first 8-byte word that is equal in
/// `a` and `b` (words counted from `from`) and the equal bytes just before it, or all the rest
/// of `b`. A run of equal bytes that does not reach such a word stays in the literal: a few
/// bytes more, checked a word at a time.
fn differing_run(a: &[u8], b: &[u8], from: usize) -> usize {
    let rest = b.len().saturating_sub(from);
    let (Some(a), Some(b)) = (a.get(from..), b.get(from..)) else {
        return rest;
    };
    let n = a.len().min(b.len());
    let (wa, wb) = (a[..n].as_chunks::<8>().0, b[..n].as_chunks::<8>().0);
    match wa.iter().zip(wb).position(|(x, y)| x == y) {
        None => rest,
        // Word 0 holds the byte at `from`, which differs (a copy stopped there); were it
        // equal, one byte of literal still makes progress.
        Some(0) => 1,
        Some(w) => {
            // The equal bytes at the end of the word before go with the copy that follows.
            let d = u64::from_le_bytes(wa[w - 1]) ^ u64::from_le_bytes(wb[w - 1]);
            w * 8 - (d.leading_zeros() / 8) as usize
        }
    }
}

/// How many bytes from `from` on are equal in `a` and `b`: 32 at a time (fixed-size array
/// comparisons, which compile to vector compares), then 8, then one.
fn same_run(a: &[u8], b: &[u8], from: usize) -> usize {
    let (Some(a), Some(b)) = (a.get(from..), b.get(from..)) else {
        return 0;
    };
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let blocks = a
        .as_chunks::<32>()
        .0
        .iter()
        .zip(b.as_chunks::<32>().0)
        .take_while(|(x, y)| x == y)
        .count();
    let mut k = blocks * 32;
    for (x, y) in a[k..]
        .as_chunks::<8>()
        .0
        .iter()
        .zip(b[k..].as_chunks::<8>().0)
    {
        let d = u64::from_le_bytes(*x) ^ u64::from_le_bytes(*y);
        if d != 0 {
            return k + (d.trailing_zeros() / 8) as usize;
        }
        k += 8;
    }
    k + a[k..]
        .iter()
        .zip(&b[k..])
        .take_while(|(x, y)| x == y)
        .count()
}

fn put_varint(out: &mut Vec<u8>, n: usize) {
    let mut n = n as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn take_varint(rest: &mut &[u8]) -> Option<usize> {
    let mut n: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, tail) = rest.split_first()?;
        *rest = tail;
        n |= u64::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return usize::try_from(n).ok();
        }
    }
    None
}

/// Reads a part that [`put_delta`] wrote against `base`; None when it is cut short or does
/// not fit `base` (a copy past its end, a part longer than it says).
pub fn take_delta(rest: &mut &[u8], base: &[u8]) -> Option<Vec<u8>> {
    let len = take_varint(rest)?;
    if len > MAX_PART {
        return None;
    }
    let mut out = Vec::with_capacity(len.min(base.len().saturating_add(rest.len())));
    while out.len() < len {
        let copy = take_varint(rest)?;
        let literal = take_varint(rest)?;
        let at = out.len();
        if (copy == 0 && literal == 0) || copy.checked_add(literal)? > len - at {
            return None;
        }
        out.extend_from_slice(base.get(at..at + copy)?);
        let (bytes, tail) = (rest.get(..literal)?, rest.get(literal..)?);
        out.extend_from_slice(bytes);
        *rest = tail;
    }
    Some(out)
}

/// The rows of a stored entry: a chunk's rows, or the entry itself when it is one row. A
/// chunk that does not decode is skipped by the readers (and logged).
pub fn entry_rows(key: String, value: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    match value.first() {
        Some(&CHUNK_DELTA) => delta_rows(&key, &value[1..]),
        Some(&CHUNK_MAGIC) => plain_rows(&key, &value[1..]),
        _ => vec![(key, value)],
    }
}

/// The rows of a [`CHUNK_DELTA`] chunk, up to the first that does not decode.
fn delta_rows(key: &str, mut rest: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut rows: Vec<(String, Vec<u8>)> = Vec::new();
    while !rest.is_empty() {
        let row = (|| {
            let prev_key = rows.last().map_or(&[][..], |(k, _)| k.as_bytes());
            let k = String::from_utf8(take_delta(&mut rest, prev_key)?).ok()?;
            let (&back, tail) = rest.split_first()?;
            rest = tail;
            let base = match usize::from(back) {
                0 => &[][..],
                b => &rows.get(rows.len().checked_sub(b)?)?.1[..],
            };
            Some((k, take_delta(&mut rest, base)?))
        })();
        match row {
            Some(row) => rows.push(row),
            None => {
                tracing::warn!(key, "an audit chunk does not decode");
                break;
            }
        }
    }
    rows
}

/// The rows of a [`CHUNK_MAGIC`] chunk, up to the first that does not decode.
fn plain_rows(key: &str, mut rest: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut rows = Vec::new();
    let part = |rest: &mut &[u8]| -> Option<Vec<u8>> {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let bytes = rest.get(4..4 + len)?.to_vec();
        *rest = &rest[4 + len..];
        Some(bytes)
    };
    while !rest.is_empty() {
        let Some((k, v)) = part(&mut rest)
            .and_then(|k| String::from_utf8(k).ok())
            .and_then(|k| Some((k, part(&mut rest)?)))
        else {
            tracing::warn!(key, "an audit chunk does not decode");
            break;
        };
        rows.push((k, v));
    }
    rows
}

/// Reads events newest first, at or before `end_us`, after `after` when given, stopping
/// before events older than `start_us`; `keep` filters, at most `limit` are returned, each
/// with its cursor. Returns the events and whether more may follow.
///
/// Order: rows by key, newest first (their time, then event id), a row's events in their
/// order. Rows are read from their own entries or from chunks ([`chunk_rows`]); chunks of
/// different segments overlap in time, so rows wait in a buffer until no entry still unread
/// can hold a newer one.
pub fn scan_events(
    txn: &dyn ReadTxn,
    end_us: i64,
    start_us: i64,
    after: Option<&Cursor>,
    limit: usize,
    mut keep: impl FnMut(&StoredEvent) -> bool,
) -> Result<(Vec<(Cursor, StoredEvent)>, bool), StoreError> {
    const PAGE: usize = 256;
    let mut out = Vec::new();
    if limit == 0 {
        return Ok((out, true));
    }
    let end_us = match after {
        Some(c) => time_of_key(&c.key).map_or(end_us, |t| t.min(end_us)),
        None => end_us,
    };
    // Emits one row's events; true when `limit` is reached.
    let mut emit = |key: &str, bytes: &[u8], out: &mut Vec<(Cursor, StoredEvent)>| {
        let skip = match after {
            Some(c) if key > c.key.as_str() => return false,
            Some(c) if key == c.key => c.index + 1,
            _ => 0,
        };
        if time_of_key(key).is_none_or(|t| t < start_us || t > end_us) {
            return false;
        }
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
    // Rows read but not emitted yet, by key.
    let mut waiting: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
    let mut before = scan_from(end_us.saturating_add(CHUNK_SPAN_US));
    'scan: loop {
        let page = txn.scan_rev(EVENT_PREFIX, Some(&before), PAGE)?;
        let full = page.len() == PAGE;
        for (key, value) in page {
            let Some(entry_us) = time_of_key(&key) else {
                before = key;
                continue;
            };
            // Every row still unread is at or before `entry_us`: the newer ones can go.
            while let Some(entry) = waiting.last_entry() {
                if time_of_key(entry.key()).is_some_and(|t| t <= entry_us) {
                    break;
                }
                let (k, v) = entry.remove_entry();
                if emit(&k, &v, &mut out) {
                    return Ok((out, true));
                }
            }
            if entry_us < start_us {
                // This entry's rows and every later one's are older than the range.
                break 'scan;
            }
            before = key.clone();
            waiting.extend(entry_rows(key, value));
        }
        if !full {
            break;
        }
    }
    while let Some((k, v)) = waiting.pop_last() {
        if emit(&k, &v, &mut out) {
            return Ok((out, true));
        }
    }
    Ok((out, false))
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

    /// A KMS `Decrypt` made on a request's behalf.
    fn hop(id: impl Into<String>) -> HopDelta {
        HopDelta {
            event_id: id.into(),
            event_name: "Decrypt".into(),
            event_source: "kms.amazonaws.com".into(),
            invoked_by: "secretsmanager.amazonaws.com".into(),
            read_only: true,
            resources: vec![],
            error_code: None,
            request_parameters: "null".into(),
            additional_event_data: None,
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
        let row = Row {
            event: event("main", 200),
            call: None,
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

    /// Rows of several segments, chunked per segment (their times overlap, as the segments
    /// of four lanes do), read exactly like the same rows stored one per entry: the same
    /// events in the same order, whole and page by page, in any time window.
    #[test]
    fn chunks_of_overlapping_segments_read_like_rows_stored_one_by_one() {
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let plain = MemoryStore::new();
        let chunked = MemoryStore::new();
        let mut segments: Vec<Vec<(String, Vec<u8>)>> = vec![Vec::new(); 3];
        let mut t = plain.begin_write().unwrap();
        for i in 0..700 {
            // Times over ~3.5 s, many equal, so rows of one time end up in several chunks.
            let us = 1_000_000_000 + i64::try_from(next(3_500)).unwrap() * 1000;
            let mut e = event(&format!("e{:04}", next(10_000)), 0);
            e.time_us = us;
            e.event_id = format!("{}-{i}", e.event_id);
            let hops = (0..next(3)).map(|h| hop(format!("h{i}-{h}"))).collect();
            let row = Row {
                event: e,
                call: None,
                hops,
            };
            put_row(&mut *t, &row).unwrap();
            segments[usize::try_from(next(3)).unwrap()].push(encode_row(&row).unwrap());
        }
        t.commit().unwrap();
        let mut t = chunked.begin_write().unwrap();
        let mut entries = 0;
        for segment in segments {
            for (k, v) in chunk_rows(segment) {
                t.put(&k, &v).unwrap();
                entries += 1;
            }
        }
        t.commit().unwrap();
        assert!(entries < 700 / 8, "{entries} entries for 700 rows");
        let (p, c) = (plain.begin_read().unwrap(), chunked.begin_read().unwrap());
        let ids = |found: Vec<(Cursor, StoredEvent)>| -> Vec<(Cursor, String)> {
            found.into_iter().map(|(c, e)| (c, e.event_id)).collect()
        };
        let windows = [
            (i64::MIN, i64::MAX),
            (1_001_000_000, 1_002_000_000),
            (1_000_500_000, 1_000_500_000),
            (1_003_400_000, i64::MAX),
            (0, 999_000_000),
        ];
        for (start, end) in windows {
            for keep_every in [1, 3] {
                // Keeps a fixed subset of the events (a filter of LookupEvents).
                let keep = |e: &StoredEvent| {
                    e.event_id.bytes().map(usize::from).sum::<usize>() % keep_every == 0
                };
                let all_plain = ids(scan_events(&*p, end, start, None, usize::MAX, keep)
                    .unwrap()
                    .0);
                let all_chunked = ids(scan_events(&*c, end, start, None, usize::MAX, keep)
                    .unwrap()
                    .0);
                assert_eq!(all_plain, all_chunked, "window {start}..{end}");
                // Page by page through the chunks: the same sequence.
                let mut paged = Vec::new();
                let mut after: Option<Cursor> = None;
                loop {
                    let (page, more) =
                        scan_events(&*c, end, start, after.as_ref(), 37, keep).unwrap();
                    after = page.last().map(|(c, _)| c.clone());
                    paged.extend(ids(page));
                    if !more {
                        break;
                    }
                }
                assert_eq!(paged, all_plain, "paged, window {start}..{end}");
            }
        }
        let (all, _) = scan_events(&*c, i64::MAX, i64::MIN, None, usize::MAX, |_| true).unwrap();
        assert!(all.len() > 700);
        assert!(
            all.windows(2).all(|w| w[0].0.key >= w[1].0.key),
            "newest first"
        );
        drop((p, c));
        // Prune drops a chunk once its newest row is past the cutoff.
        let mut t = chunked.begin_write().unwrap();
        prune(&mut *t, from_micros(1_002_000_000), 10_000).unwrap();
        t.commit().unwrap();
        let r = chunked.begin_read().unwrap();
        let (left, _) = scan_events(&*r, i64::MAX, i64::MIN, None, usize::MAX, |_| true).unwrap();
        assert!(
            left.iter()
                .all(|(_, e)| e.time_us >= 1_002_000_000 - CHUNK_SPAN_US)
        );
        assert!(
            left.iter().any(|(_, e)| e.time_us < 1_002_000_000),
            "a chunk straddling the cutoff is kept whole"
        );
        assert!(left.iter().any(|(_, e)| e.time_us >= 1_003_000_000));
    }

    #[test]
    fn a_row_written_twice_into_one_segment_keeps_its_last_value() {
        let mut a = event("same", 5);
        a.event_name = "First".into();
        let mut b = a.clone();
        b.event_name = "Second".into();
        let other = event("other", 5);
        let entries = vec![
            encode_row(&Row::single(a)).unwrap(),
            encode_row(&Row::single(other)).unwrap(),
            encode_row(&Row::single(b)).unwrap(),
        ];
        let chunks = chunk_rows(entries);
        assert_eq!(chunks.len(), 1);
        let rows = entry_rows(chunks[0].0.clone(), chunks[0].1.clone());
        assert_eq!(rows.len(), 2);
        let names: Vec<_> = rows
            .iter()
            .flat_map(|(k, v)| decode_row(k, v))
            .map(|e| e.event_name)
            .collect();
        assert!(names.contains(&"Second".to_string()) && !names.contains(&"First".to_string()));
        // A chunk cut short decodes the rows before the cut.
        let mut torn = chunks[0].1.clone();
        torn.truncate(torn.len() - 3);
        assert_eq!(entry_rows(chunks[0].0.clone(), torn).len(), 1);
    }

    fn full_row() -> Row {
        let mut e = event("main-id", 1_700_000_000);
        e.username = Some("ci-agent".into());
        e.access_key_id = Some("AKIAEXAMPLE".into());
        e.resources = vec![(
            "AWS::SecretsManager::Secret".into(),
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:tok-AbCdEf".into(),
        )];
        e.principal = Some("arn:aws:iam::111122223333:user/ci-agent".into());
        e.source_ip = Some("10.0.0.7".into());
        e.error_code = Some("AccessDeniedException".into());
        e.reads = vec![SecretRead {
            secret_arn: "arn:aws:secretsmanager:us-east-1:111122223333:secret:tok-AbCdEf".into(),
            version_id: "v-1".into(),
            version_stages: vec!["AWSCURRENT".into(), "ünïcode \"quoted\"".into()],
        }];
        e.event = serde_json::json!({"eventID": "main-id", "userIdentity": {"type": "IAMUser"}, "x": "a\nb"}).to_string();
        let hop = HopDelta {
            event_id: "hop-id".into(),
            event_name: "Decrypt".into(),
            event_source: "kms.amazonaws.com".into(),
            invoked_by: "secretsmanager.amazonaws.com".into(),
            read_only: true,
            resources: vec![(
                "AWS::KMS::Key".into(),
                "arn:aws:kms:us-east-1:111122223333:key/k".into(),
            )],
            error_code: Some("KMSInvalidStateException".into()),
            request_parameters: r#"{"encryptionContext":{"SecretARN":"a"}}"#.into(),
            additional_event_data: Some(r#"{"secretVersions":[]}"#.into()),
        };
        Row {
            event: e,
            call: None,
            hops: vec![hop],
        }
    }

    /// What format 2 stored (JSON lines), written as that build did.
    fn encode_v2(row: &Row) -> Vec<u8> {
        let mut value = Vec::new();
        let mut e = row.event.clone();
        e.v = 2;
        serde_json::to_writer(&mut value, &e).unwrap();
        value.push(b'\n');
        value.extend_from_slice(e.event.as_bytes());
        value.push(b'\n');
        for hop in &row.hops {
            serde_json::to_writer(&mut value, hop).unwrap();
            value.push(b'\n');
        }
        value
    }

    /// What format 3 stored, written as that build did: format 4 without the `0` before the
    /// request event's JSON text.
    fn encode_v3(row: &Row) -> Vec<u8> {
        let mut w = Writer(vec![ROW_V3]);
        w.head(&row.event);
        w.str(&row.event.event);
        w.hops(&row.hops);
        w.0
    }

    #[test]
    fn binary_records_decode_to_what_the_json_lines_of_format_2_decode_to() {
        let row = full_row();
        let (key, v4) = encode_row(&row).unwrap();
        assert_eq!(v4[0], ROW_V4);
        let v3 = encode_v3(&row);
        let from_v2 = decode_row(&key, &encode_v2(&row));
        for binary in [&v4, &v3] {
            let decoded = decode_row(&key, binary);
            assert_eq!(decoded.len(), 2);
            let fields = |e: &StoredEvent| serde_json::to_value(e).unwrap();
            for (a, b) in decoded.iter().zip(&from_v2) {
                let (mut fa, mut fb) = (fields(a), fields(b));
                fa["v"] = 0.into();
                fb["v"] = 0.into();
                assert_eq!(fa, fb);
                assert_eq!(a.event, b.event);
            }
            assert_eq!(decoded[0].reads, row.event.reads);
            assert_eq!(decoded[0].event, row.event.event);
            let hop: Value = serde_json::from_str(&decoded[1].event).unwrap();
            assert_eq!(
                hop["requestParameters"]["encryptionContext"]["SecretARN"],
                "a"
            );
            assert_eq!(hop["errorCode"], "KMSInvalidStateException");
            // A record cut anywhere, or with bytes after its end, is refused, never a panic.
            for n in 0..binary.len() {
                assert!(decode(&binary[..n]).is_none(), "cut at {n}");
            }
            let mut longer = binary.clone();
            longer.push(0);
            assert!(decode(&longer).is_none());
        }
    }

    /// A request event stored as its parts.
    fn call_row() -> Row {
        let mut row = full_row();
        row.event.event = String::new();
        row.call = Some(ApiCall {
            request_id: "req-1".into(),
            user_agent: Some("aws-cli/2 \"quoted\"\n\u{1}".into()),
            user_identity: r#"{"accessKeyId":"AKIAEXAMPLE","type":"IAMUser"}"#.into(),
            request_parameters: r#"{"secretId":"tok"}"#.into(),
            response_elements: "null".into(),
            error_message: Some("User: x is not authorized \\ to \"do\" ünïcode \u{7f}".into()),
            additional_event_data: Some(r#"{"secretVersions":[]}"#.into()),
        });
        row
    }

    #[test]
    fn a_record_of_parts_renders_its_event_when_read_and_keeps_its_hops() {
        let row = call_row();
        let (key, bytes) = encode_row(&row).unwrap();
        assert_eq!(bytes[0], ROW_V4);
        let decoded = decode_row(&key, &bytes);
        assert_eq!(decoded.len(), 2);
        let main = &decoded[0];
        assert_eq!(main.v, 4);
        assert_eq!(main.event, row.main_event().event);
        let v: Value = serde_json::from_str(&main.event).unwrap();
        // Members in byte order, as serde_json writes a map: the text is its own canonical form.
        assert_eq!(v.to_string(), main.event);
        assert_eq!(v["requestID"], "req-1");
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20Z");
        assert_eq!(v["userAgent"], "aws-cli/2 \"quoted\"\n\u{1}");
        assert_eq!(v["userIdentity"]["accessKeyId"], "AKIAEXAMPLE");
        assert_eq!(v["errorCode"], "AccessDeniedException");
        assert_eq!(
            v["errorMessage"],
            "User: x is not authorized \\ to \"do\" ünïcode \u{7f}"
        );
        assert_eq!(v["resources"][0]["accountId"], "111122223333");
        assert_eq!(v["sourceIPAddress"], "10.0.0.7");
        assert_eq!(v["readOnly"], true);
        assert_eq!(v["additionalEventData"]["secretVersions"], json!([]));
        // The hop is rendered from the rendered request event.
        let hop: Value = serde_json::from_str(&decoded[1].event).unwrap();
        assert_eq!(hop["requestID"], "req-1");
        assert_eq!(
            hop["userIdentity"]["invokedBy"],
            "secretsmanager.amazonaws.com"
        );
        assert_eq!(row.events().len(), 2);
        assert_eq!(row.events()[1].event, decoded[1].event);
        for n in 0..bytes.len() {
            assert!(decode(&bytes[..n]).is_none(), "cut at {n}");
        }
        // A request event neither as text nor as parts is refused.
        let mut w = Writer(vec![ROW_V4]);
        w.head(&row.event);
        let mut unknown = bytes.clone();
        assert_eq!(unknown[w.0.len()], 1);
        unknown[w.0.len()] = 2;
        assert!(decode(&unknown).is_none());
    }

    #[test]
    fn keys_are_the_time_in_twenty_digits_then_the_event_id() {
        for us in [0, 1, 1_700_000_000_123_456, i64::MAX, -5] {
            assert_eq!(
                key_at(us, "id"),
                format!("{EVENT_PREFIX}{:020}/id", us.max(0))
            );
            assert_eq!(time_of_key(&key_at(us, "id")), Some(us.max(0)));
        }
    }

    #[test]
    fn values_are_written_as_serde_json_writes_them() {
        let values = [
            json!(null),
            json!(true),
            json!([]),
            json!({}),
            json!({"secretId": "db", "versionStage": "AWSCURRENT"}),
            json!({"b": [1, -2, 3.5, 1e300, u64::MAX, i64::MIN, 0.1], "a": {"x\n\"": [null, false, "\u{0}é"]}}),
            json!([[[{"z": {}}]], "\\", {"": ""}]),
            json!({"encryptionContext": {"SecretARN": "arn:aws:secretsmanager:us-east-1:1:secret:a/b-c"}}),
        ];
        for v in &values {
            assert_eq!(json_text(v), serde_json::to_string(v).unwrap());
        }
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all: String = (0u8..=0x7f).map(char::from).collect();
        all.push_str("ünïcode € 𝄞 \u{2028}");
        let mut cases: Vec<String> = [
            "",
            "plain",
            "\"",
            "\\",
            "a\u{0}b",
            "arn:aws:secretsmanager:x",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([all.clone(), all.chars().rev().collect()])
        .collect();
        // Every byte that needs escaping, and some that do not, at every place in and
        // around an 8-byte word, among ASCII and multi-byte characters.
        for c in (0u8..=0x7f)
            .map(char::from)
            .chain(['é', '€', '\u{7f}', '\u{80}'])
        {
            for at in 0..20 {
                for filler in ["a", "é"] {
                    let mut s: String = filler.repeat(at);
                    s.push(c);
                    s.push_str(&filler.repeat(19 - at));
                    cases.push(s);
                }
            }
        }
        for s in &cases {
            let mut out = String::new();
            json_string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    /// Rows like a busy log's: two callers reading, their records alike but for ids and times,
    /// and now and then a record of another shape.
    fn busy_rows(n: usize) -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let mut row = full_row();
                row.event.event_id = format!("{:08x}-aaaa-4bbb-8ccc-{:012x}", i * 7919, i);
                row.event.time_us = 1_700_000_000_000_000 + (i as i64) * 37;
                row.hops[0].event_id = format!("{:08x}-dddd-4eee-8fff-{:012x}", i * 104_729, i);
                if i % 2 == 1 {
                    row.event.principal = Some("arn:aws:iam::111122223333:user/other".into());
                    row.event.username = Some("other".into());
                }
                if i % 9 == 4 {
                    row.event.event_name = "DescribeSecret".into();
                    row.event.reads.clear();
                    row.hops.clear();
                }
                row.call = Some(ApiCall {
                    request_id: format!("req-{i:032}"),
                    user_agent: Some("aws-cli/2.17.0".into()),
                    user_identity:
                        "{\"type\":\"IAMUser\",\"arn\":\"arn:aws:iam::111122223333:user/ci-agent\"}"
                            .into(),
                    request_parameters: "{\"secretId\":\"tok\"}".into(),
                    response_elements: "null".into(),
                    error_message: None,
                    additional_event_data: None,
                });
                encode_row(&row).unwrap()
            })
            .collect()
    }

    fn sorted(mut rows: Vec<(String, Vec<u8>)>) -> Vec<(String, Vec<u8>)> {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        rows
    }

    #[test]
    fn a_delta_chunk_gives_back_its_rows_byte_for_byte_in_a_fraction_of_their_size() {
        let rows = busy_rows(CHUNK_ROWS);
        let chunks = chunk_rows(rows.clone());
        assert_eq!(chunks.len(), 1);
        let (key, value) = &chunks[0];
        assert_eq!(value[0], CHUNK_DELTA);
        assert_eq!(entry_rows(key.clone(), value.clone()), sorted(rows.clone()));
        let plain: usize = rows.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        // Each row still carries what is its own: two event ids, a request id, a time.
        assert!(
            value.len() * 5 < plain,
            "{} bytes for {plain} bytes of rows",
            value.len()
        );
        // The rows decode as records, as they did before they were packed.
        for (k, v) in entry_rows(key.clone(), value.clone()) {
            let events = decode_row(&k, &v);
            assert_eq!(events.first().map(|e| e.key()), Some(k.clone()));
        }
    }

    #[test]
    fn a_delta_chunk_cut_anywhere_or_damaged_gives_back_only_whole_rows_from_its_start() {
        let rows = sorted(busy_rows(12));
        let chunks = chunk_rows(rows.clone());
        let (key, value) = &chunks[0];
        for cut in 1..value.len() {
            let got = entry_rows(key.clone(), value[..cut].to_vec());
            assert!(got.len() < rows.len(), "cut at {cut}");
            assert_eq!(got[..], rows[..got.len()], "cut at {cut}");
        }
        // A flipped byte anywhere never panics, and the rows before the damaged one come back
        // intact.
        let first_row_end = delta_chunk(&rows[..1]).len();
        for at in 1..value.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut damaged = value.clone();
                damaged[at] ^= flip;
                let got = entry_rows(key.clone(), damaged);
                if at >= first_row_end {
                    assert_eq!(got.first(), rows.first(), "flip {flip:#x} at {at}");
                }
            }
        }
        // A copy reaching past its base, a row longer than it says, a zero-length step, a
        // base row that does not exist: refused.
        for bad in [
            &[CHUNK_DELTA, 1, 1, 0][..],         // key of 1 byte copied from no key
            &[CHUNK_DELTA, 1, 0, 2, b'a', b'b'], // a 2-byte literal in a 1-byte key
            &[CHUNK_DELTA, 1, 0, 0],             // no progress
            &[CHUNK_DELTA, 1, 0, 1, b'k', 3, 0], // value against the 3rd row before the first
            &[
                CHUNK_DELTA,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0xff,
                0x01,
            ],
        ] {
            assert!(entry_rows(key.clone(), bad.to_vec()).is_empty(), "{bad:?}");
        }
    }

    /// What a chunk was before [`CHUNK_DELTA`]: each key and value with a `u32` length.
    fn plain_chunk(rows: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut value = vec![CHUNK_MAGIC];
        for (k, v) in rows {
            for part in [k.as_bytes(), v] {
                value.extend_from_slice(&(part.len() as u32).to_le_bytes());
                value.extend_from_slice(part);
            }
        }
        value
    }

    #[test]
    fn chunks_of_the_first_format_are_still_read() {
        let rows = sorted(busy_rows(5));
        let chunk = plain_chunk(&rows);
        assert_eq!(entry_rows("audit/e/x/~y".into(), chunk.clone()), rows);
        let mut torn = chunk;
        torn.truncate(torn.len() - 1);
        assert_eq!(entry_rows("audit/e/x/~y".into(), torn)[..], rows[..4]);
    }

    proptest::proptest! {
        #[test]
        fn any_rows_survive_a_delta_chunk(
            values in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 2..20),
            pattern in proptest::collection::vec(0u8..4, 0..300),
        ) {
            // Rows that share runs with each other (as records do) and rows that do not.
            let rows: Vec<(String, Vec<u8>)> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let mut v = v.clone();
                    if i % 2 == 0 {
                        v = pattern.iter().zip(v.iter().chain(std::iter::repeat(&0))).map(|(p, b)| if *p == 0 { *b } else { *p }).collect();
                    }
                    (format!("{EVENT_PREFIX}{:020}/id-{i:04}", 1_000 + i), v)
                })
                .collect();
            let chunks = chunk_rows(rows.clone());
            proptest::prop_assert_eq!(chunks.len(), 1);
            let (key, value) = &chunks[0];
            proptest::prop_assert_eq!(entry_rows(key.clone(), value.clone()), rows);
        }
    }
}
