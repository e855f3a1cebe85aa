//! The audit log's segment files. The records of requests that changed nothing (reads,
//! denials, failed authentications) are made durable by appending them to a file of the data
//! directory — with `audit.sync = always` one `write` and one `fdatasync` per batch
//! ([`Lane::append`]), with `batch` one `write` for the requests a thread serves together
//! and an `fdatasync` of what was written every few milliseconds in the background
//! ([`Segments::stage`], [`Segments::complete`], [`Segments::sync_dirty`]) — and are indexed
//! into the log store
//! (`audit.db`, or whichever store holds the deployment's log) in the background, thousands
//! per transaction. A store commit per batch (for SQLite: WAL frames that rewrite the last,
//! partly filled leaf page every time, the fsync, checkpoints) was the largest cost of the
//! audit log on the read path.
//!
//! A segment is `audit.db-seg.<n>`: frames of `[payload length: u32 LE][CRC-32 of the
//! payload: u32 LE][payload]`, the payload `[key length: u32 LE][key][value]` — the record's
//! key and value in the log store ([`tresor_cloudtrail::record::encode_row`]) — or, with
//! [`DELTA_FRAME`] set in the length, the key and the value as their differences from the
//! record of the frame before ([`tresor_cloudtrail::record::put_delta`]): the records of one
//! caller's reads differ in their ids and times only, and each byte not written is a byte the
//! kernel does not copy into its page cache, write back, and hand to the indexer again. A lane
//! appends to its newest segment; once that holds [`SEAL_RECORDS`] records or [`SEAL_BYTES`]
//! bytes of them, or its first record is [`SEAL_AGE`] old and the indexer is idle, it is
//! sealed and handed to the indexer thread, which reads its records back from the file,
//! writes them into the store in one transaction, many records to a store entry
//! ([`tresor_cloudtrail::record::chunk_rows`]), and then deletes the file. A segment whose
//! append failed is sealed at once: nothing is ever appended after a torn frame.
//!
//! On start, the segments an earlier process left are indexed first. A frame that is cut
//! short or fails its checksum ends a segment: it is the tail of a batch whose write was torn
//! by a crash, and that batch was never acknowledged. Writing a record is idempotent (its key
//! is fixed), so a segment indexed again after a crash changes nothing. Readers of the log
//! flush first ([`tresor_core::audit::AuditLogFlush`]): the open segment is sealed and
//! indexed, so LookupEvents sees every acknowledged record.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tresor_cloudtrail::record::{put_delta, take_delta};
use tresor_store::{Store, StoreError};

/// The file name of a segment, before its number.
pub const SEGMENT_PREFIX: &str = "audit.db-seg.";
/// A segment is sealed once it holds this many records …
const SEAL_RECORDS: usize = 8192;
/// … or records of this many bytes, so that the indexer reads back a few MiB at a time.
/// Smaller segments mean more index transactions (on PostgreSQL each moves the generation
/// every node's caches are tagged with): at 15,000 reads a second, about two a second per
/// lane.
const SEAL_BYTES: usize = 4 << 20;
/// … or, while the indexer is idle, once its first record is this old.
const SEAL_AGE: Duration = Duration::from_millis(500);
/// How long the indexer waits before it tries a segment again that it could not index.
const RETRY: Duration = Duration::from_secs(1);
/// The largest frame a reader accepts (a record is a few KB; a length beyond this is garbage).
const MAX_FRAME: usize = 64 << 20;
/// Set in a frame's length word: its payload is the record as its difference from the record
/// of the frame before (never set in a segment's first frame).
const DELTA_FRAME: u32 = 1 << 31;

/// A record: its key and its value in the log store.
pub type Entry = (String, Vec<u8>);

/// A segment no lane appends to any more: its file, which the indexer reads back.
pub struct Sealed {
    path: PathBuf,
}

/// What the indexer is sent.
enum ToIndexer {
    Segment(Sealed),
    /// Answered once every segment sent before it was indexed (or failed to be).
    Flush(mpsc::Sender<()>),
}

/// What the lanes, the indexer and the readers' flushes share.
struct Shared {
    dir: PathBuf,
    /// The number of the next segment file.
    next_number: AtomicU64,
    /// Sealed segments the indexer has not indexed yet.
    queued: AtomicUsize,
    to_indexer: mpsc::Sender<ToIndexer>,
    /// The lane the next thread to stage records prefers ([`Segments::stage`]).
    next_lane: AtomicUsize,
    /// A background `fdatasync` failed and no sync has succeeded since: appends sync
    /// themselves (and fail when that fails) until one does.
    sync_failed: AtomicBool,
    /// Background `fdatasync`s that failed, ever.
    sync_failures: AtomicU64,
    /// `write`s of staged records that succeeded, ever.
    writes: AtomicU64,
    /// A segment file was created since the directory was last synced.
    dir_dirty: AtomicBool,
    /// Files of sealed segments written since their last sync (the syncer syncs them once).
    unsynced: Mutex<Vec<Arc<File>>>,
}

/// The segment files of a data directory: one open segment per lane (each lane is a batcher
/// thread; their `fdatasync`s run side by side, which the disks measured serve far better
/// than one after the other), sealed segments on their way to the indexer.
pub struct Segments {
    shared: Arc<Shared>,
    lanes: Vec<Arc<Mutex<Lane>>>,
}

/// The segment one batcher appends to.
pub struct Lane {
    shared: Arc<Shared>,
    /// Opened on the first append after a seal.
    file: Option<(Arc<File>, PathBuf)>,
    /// Written since its last `fdatasync` (writes of [`Segments::complete`]).
    dirty: bool,
    /// Records in the open segment, and the size of their keys and values. The records
    /// themselves are not kept: the indexer reads them back from the file (from the OS's page
    /// cache), so that a lane holds no memory for them and the buffers a request thread
    /// allocated are freed on that thread (measured under a read/write soak: lanes that kept
    /// up to 8,192 records each in memory, freed by the indexer's thread, held 50 MiB or more
    /// of the server's resident memory).
    records: usize,
    bytes: usize,
    first: Option<Instant>,
    /// The frames staged and not written yet ([`Segments::stage`]), and the number and size
    /// of their records.
    buf: Vec<u8>,
    staged_records: usize,
    staged_bytes: usize,
    /// The record of the open segment's last frame, staged or written: the next is framed
    /// as its difference from it ([`DELTA_FRAME`]).
    last: Option<Entry>,
    /// Tickets: the last given to a staged batch of records, and the last whose records were
    /// written (or whose write failed).
    staged: u64,
    written: u64,
    /// The tickets of the last failed writes (first, last), and the last ticket of those
    /// forgotten: their requests fail.
    failed: VecDeque<(u64, u64)>,
    forgotten: u64,
}

/// The staged records of one request ([`Segments::stage`]).
pub struct Staged {
    lane: usize,
    /// None: written and synced already.
    ticket: Option<u64>,
}

/// How many failed writes a lane remembers, for requests that have not asked yet.
const FAILED_WRITES_KEPT: usize = 1024;

thread_local! {
    /// The lane the requests of this thread stage in first, so that they share its writes.
    static PREFERRED_LANE: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The indexer's side: started once with [`Indexer::run`].
pub struct Indexer {
    rx: mpsc::Receiver<ToIndexer>,
    recovered: Vec<Sealed>,
}

impl Segments {
    /// The segments of `dir` with `lanes` lanes, and the indexer, which indexes the segments
    /// an earlier process left there first.
    pub fn open(dir: &Path, lanes: usize) -> Result<(Arc<Segments>, Indexer), String> {
        let mut found: Vec<(u64, PathBuf)> = Vec::new();
        let listing = std::fs::read_dir(dir)
            .map_err(|e| format!("audit segments in {}: {e}", dir.display()))?;
        for entry in listing {
            let entry = entry.map_err(|e| format!("audit segments in {}: {e}", dir.display()))?;
            let name = entry.file_name();
            if let Some(n) = name
                .to_str()
                .and_then(|n| n.strip_prefix(SEGMENT_PREFIX))
                .and_then(|n| n.parse::<u64>().ok())
            {
                found.push((n, entry.path()));
            }
        }
        found.sort();
        let (to_indexer, rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            next_number: AtomicU64::new(found.last().map_or(0, |(n, _)| n + 1)),
            queued: AtomicUsize::new(found.len()),
            to_indexer,
            next_lane: AtomicUsize::new(0),
            sync_failed: AtomicBool::new(false),
            sync_failures: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            dir_dirty: AtomicBool::new(false),
            unsynced: Mutex::new(Vec::new()),
        });
        let recovered = found.into_iter().map(|(_, path)| Sealed { path }).collect();
        let lanes = (0..lanes.max(1))
            .map(|_| {
                Arc::new(Mutex::new(Lane {
                    shared: shared.clone(),
                    file: None,
                    dirty: false,
                    records: 0,
                    bytes: 0,
                    first: None,
                    buf: Vec::new(),
                    staged_records: 0,
                    staged_bytes: 0,
                    last: None,
                    staged: 0,
                    written: 0,
                    failed: VecDeque::new(),
                    forgotten: 0,
                }))
            })
            .collect();
        Ok((
            Arc::new(Segments { shared, lanes }),
            Indexer { rx, recovered },
        ))
    }

    /// The lanes (one per batcher).
    pub fn lanes(&self) -> &[Arc<Mutex<Lane>>] {
        &self.lanes
    }

    /// Stages one request's records in a lane (`audit.sync = batch`): framed into the lane's
    /// buffer, not yet written. [`Segments::complete`] writes them — with the records other
    /// requests staged in the same lane meanwhile, in one `write` — and says whether they
    /// were written. A request that stages, lets the other requests of its thread run (they
    /// stage in the same lane, the lane its thread prefers), and then completes, shares one
    /// `write` with them: the per-request `write` (and the inode update every `write` makes)
    /// was the largest kernel cost of the audit log on the read path. After a background
    /// sync failed, the records are written and synced at once (the append fails when that
    /// fails) until a sync succeeds again.
    pub fn stage(&self, entries: Vec<Entry>) -> std::io::Result<Staged> {
        let n = self.lanes.len();
        let preferred = PREFERRED_LANE.with(|lane| {
            lane.get().unwrap_or_else(|| {
                let chosen = self.shared.next_lane.fetch_add(1, Ordering::Relaxed);
                lane.set(Some(chosen));
                chosen
            })
        }) % n;
        let (index, mut lane) = self.lanes[preferred]
            .try_lock()
            .map(|lane| (preferred, lane))
            .or_else(|| {
                (1..n).find_map(|i| {
                    let index = (preferred + i) % n;
                    self.lanes[index].try_lock().map(|lane| (index, lane))
                })
            })
            .unwrap_or_else(|| (preferred, self.lanes[preferred].lock()));
        if self.shared.sync_failed.load(Ordering::SeqCst) {
            lane.append(entries)?;
            if self.shared.sync_failed.swap(false, Ordering::SeqCst) {
                tracing::warn!("audit segments sync again after a failed fdatasync");
            }
            return Ok(Staged {
                lane: index,
                ticket: None,
            });
        }
        let ticket = lane.stage(entries)?;
        Ok(Staged {
            lane: index,
            ticket: Some(ticket),
        })
    }

    /// Writes what is staged in the lane of `staged` unless another request did already;
    /// Ok once `staged`'s records are in the segment file (handed to the OS: they survive the
    /// process's crash), made durable by [`Segments::sync_dirty`] within its interval; an
    /// error when the `write` that carried them failed.
    pub fn complete(&self, staged: Staged) -> std::io::Result<()> {
        let Some(ticket) = staged.ticket else {
            return Ok(());
        };
        let mut lane = self.lanes[staged.lane].lock();
        if lane.written < ticket {
            lane.write_staged(false)?;
        }
        lane.outcome(ticket)
    }

    /// Appends one request's records on the caller's thread: [`Segments::stage`] and
    /// [`Segments::complete`] at once (a `write` of its own, unless others were staged).
    #[cfg(test)]
    pub fn append(&self, entries: Vec<Entry>) -> std::io::Result<()> {
        let staged = self.stage(entries)?;
        self.complete(staged)
    }

    /// Whether a background sync failed and none succeeded since.
    pub fn sync_failed(&self) -> bool {
        self.shared.sync_failed.load(Ordering::SeqCst)
    }

    /// Background `fdatasync`s that failed.
    pub fn sync_failures(&self) -> u64 {
        self.shared.sync_failures.load(Ordering::Relaxed)
    }

    /// Writes of staged records to segment files that succeeded.
    pub fn writes(&self) -> u64 {
        self.shared.writes.load(Ordering::Relaxed)
    }

    /// `fdatasync`s what [`Segments::complete`] wrote since the last call (the open segments
    /// written to, the sealed ones not synced yet, the directory after a new segment). A
    /// lane's lock is held only to take its file, not through the sync. A failure is logged
    /// and counted, seals the lane's segment (its tail is unknown), and makes appends sync
    /// themselves until a sync succeeds ([`Segments::stage`]).
    pub fn sync_dirty(&self) {
        let mut files: Vec<(Option<usize>, Arc<File>)> =
            std::mem::take(&mut *self.shared.unsynced.lock())
                .into_iter()
                .map(|f| (None, f))
                .collect();
        for (i, lane) in self.lanes.iter().enumerate() {
            let mut lane = lane.lock();
            if lane.dirty {
                lane.dirty = false;
                if let Some((f, _)) = &lane.file {
                    files.push((Some(i), f.clone()));
                }
            }
        }
        let dir = self.shared.dir_dirty.swap(false, Ordering::SeqCst);
        if files.is_empty() && !dir {
            return;
        }
        let mut failed = false;
        for (lane, f) in files {
            if let Err(e) = f.sync_data() {
                failed = true;
                tracing::error!(error = %e, "fdatasync of an audit segment failed; requests fail until a sync succeeds");
                if let Some(i) = lane {
                    let mut lane = self.lanes[i].lock();
                    if lane
                        .file
                        .as_ref()
                        .is_some_and(|(open, _)| Arc::ptr_eq(open, &f))
                    {
                        lane.abandon();
                    }
                }
            }
        }
        if dir && let Err(e) = File::open(&self.shared.dir).and_then(|d| d.sync_all()) {
            failed = true;
            self.shared.dir_dirty.store(true, Ordering::SeqCst);
            tracing::error!(error = %e, "fsync of the audit segments' directory failed; requests fail until a sync succeeds");
        }
        if failed {
            self.shared.sync_failures.fetch_add(1, Ordering::Relaxed);
            self.shared.sync_failed.store(true, Ordering::SeqCst);
        } else if self.shared.sync_failed.swap(false, Ordering::SeqCst) {
            tracing::warn!("audit segments sync again after a failed fdatasync");
        }
    }

    /// Seals every open segment and waits (at most `wait`) until the indexer has indexed
    /// them and every segment before them: the records acknowledged before the call are then
    /// in the log store. False when that could not be confirmed.
    pub fn flush(&self, wait: Duration) -> bool {
        for lane in &self.lanes {
            // A lane's lock is held through a write, and the seal writes what is staged: the
            // records acknowledged before are all in the segment once it is sealed.
            lane.lock().seal();
        }
        let (done, answered) = mpsc::channel();
        self.shared.to_indexer.send(ToIndexer::Flush(done)).is_ok()
            && answered.recv_timeout(wait).is_ok()
    }

    /// Seals the segments whose first record is [`SEAL_AGE`] old, while the indexer is idle
    /// (a busy lane is left for the next look).
    fn seal_aged(&self) {
        if self.shared.queued.load(Ordering::SeqCst) > 0 {
            return;
        }
        for lane in &self.lanes {
            if let Some(mut lane) = lane.try_lock()
                && lane.first.is_some_and(|t| t.elapsed() >= SEAL_AGE)
            {
                lane.seal();
            }
        }
    }
}

impl Lane {
    /// Appends one batch's records, and whatever other requests staged before them, and makes
    /// them durable: one write, one `fdatasync`. A full segment, or one whose append failed,
    /// is sealed.
    pub fn append(&mut self, entries: Vec<Entry>) -> std::io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.stage(entries)?;
        self.write_staged(true)
    }

    /// Frames `entries` after what is staged already, each as its difference from the record
    /// before it (a segment's first record whole); their ticket for [`Lane::outcome`].
    fn stage(&mut self, mut entries: Vec<Entry>) -> std::io::Result<u64> {
        let start = self.buf.len();
        let mut before = self.last.as_ref();
        for entry in &entries {
            if let Err(e) = frame(&mut self.buf, before, entry) {
                self.buf.truncate(start);
                return Err(e);
            }
            before = Some(entry);
        }
        self.staged_records += entries.len();
        self.staged_bytes += entries
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>();
        // The others are dropped here, on the request's thread.
        if let Some(last) = entries.pop() {
            self.last = Some(last);
        }
        self.first.get_or_insert_with(Instant::now);
        self.staged += 1;
        Ok(self.staged)
    }

    /// Writes the staged records with one `write` (and an `fdatasync` when `sync`: then
    /// everything written to the segment before is durable too). A full segment is sealed; one
    /// whose write failed is sealed too (its tail is unknown: nothing is appended after it),
    /// and the requests whose records were staged fail ([`Lane::outcome`]).
    fn write_staged(&mut self, sync: bool) -> std::io::Result<()> {
        let through = self.staged;
        if self.buf.is_empty() {
            self.written = through;
            return Ok(());
        }
        let written = self.open(sync).and_then(|f| {
            (&*f).write_all(&self.buf)?;
            if sync {
                f.sync_data()?;
            }
            Ok(())
        });
        self.buf.clear();
        let (records, bytes) = (
            std::mem::take(&mut self.staged_records),
            std::mem::take(&mut self.staged_bytes),
        );
        let from = self.written + 1;
        self.written = through;
        if let Err(e) = written {
            self.fail(from, through);
            self.close();
            return Err(e);
        }
        self.shared.writes.fetch_add(1, Ordering::Relaxed);
        // With a sync, everything written to the file before is durable now too.
        self.dirty = !sync;
        self.records += records;
        self.bytes += bytes;
        if self.records >= SEAL_RECORDS || self.bytes >= SEAL_BYTES {
            self.seal();
        }
        Ok(())
    }

    /// Remembers that the records of tickets `from..=through` were not written.
    fn fail(&mut self, from: u64, through: u64) {
        self.failed.push_back((from, through));
        if self.failed.len() > FAILED_WRITES_KEPT
            && let Some((_, forgotten)) = self.failed.pop_front()
        {
            self.forgotten = forgotten;
        }
    }

    /// Whether the records of `ticket` (written, or failed, by [`Lane::write_staged`]) are in
    /// the segment file. A ticket older than the failed writes the lane remembers counts as
    /// failed: the request fails rather than be acknowledged unrecorded.
    fn outcome(&self, ticket: u64) -> std::io::Result<()> {
        let failed = ticket <= self.forgotten
            || self
                .failed
                .iter()
                .any(|&(from, through)| (from..=through).contains(&ticket));
        if failed {
            return Err(std::io::Error::other(
                "the write of the audit segment that carried this record failed",
            ));
        }
        Ok(())
    }

    /// The open segment's file; a new segment when none is open. `sync_dir`: its name is
    /// made durable at once (else by the next [`Segments::sync_dirty`]).
    fn open(&mut self, sync_dir: bool) -> std::io::Result<Arc<File>> {
        if let Some((f, _)) = &self.file {
            return Ok(f.clone());
        }
        let number = self.shared.next_number.fetch_add(1, Ordering::SeqCst);
        let path = self.shared.dir.join(format!("{SEGMENT_PREFIX}{number}"));
        let f = Arc::new(
            OpenOptions::new()
                .create_new(true)
                .append(true)
                .mode(0o600)
                .open(&path)?,
        );
        self.file = Some((f.clone(), path));
        if sync_dir {
            // The new name must be durable before a record in it is acknowledged.
            File::open(&self.shared.dir)?.sync_all()?;
        } else {
            self.shared.dir_dirty.store(true, Ordering::SeqCst);
        }
        Ok(f)
    }

    /// Writes what is staged, then hands the open segment, if any, to the indexer (the next
    /// append starts a new one).
    fn seal(&mut self) {
        if let Err(e) = self.write_staged(false) {
            tracing::error!(error = %e, "the audit records staged before a seal could not be written; their requests fail");
        }
        self.close();
    }

    /// Seals the open segment without writing what is staged: their requests fail (the
    /// segment's sync failed, its tail is unknown).
    fn abandon(&mut self) {
        if !self.buf.is_empty() {
            self.buf.clear();
            self.staged_records = 0;
            self.staged_bytes = 0;
            self.fail(self.written + 1, self.staged);
        }
        self.written = self.staged;
        self.close();
    }

    /// Hands the open segment, if any, to the indexer; nothing must be staged.
    fn close(&mut self) {
        self.last = None;
        self.first = None;
        let Some((file, path)) = self.file.take() else {
            return;
        };
        if std::mem::take(&mut self.dirty) {
            self.shared.unsynced.lock().push(file);
        }
        let sealed = Sealed { path };
        self.records = 0;
        self.bytes = 0;
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        if self
            .shared
            .to_indexer
            .send(ToIndexer::Segment(sealed))
            .is_err()
        {
            tracing::error!("the audit indexer is gone; sealed segments wait for the next start");
        }
    }
}

/// Appends the frame of `entry`: whole, or as its difference from `before` (the record of
/// the frame before in the same segment).
fn frame(buf: &mut Vec<u8>, before: Option<&Entry>, entry: &Entry) -> std::io::Result<()> {
    let too_long = || std::io::Error::other("an audit record too large for a segment frame");
    let (key, value) = entry;
    if 4 + key.len() + value.len() > MAX_FRAME {
        return Err(too_long());
    }
    let start = buf.len();
    buf.extend_from_slice(&[0; 8]);
    let mut flag = 0;
    if let Some((before_key, before_value)) = before {
        put_delta(buf, before_key.as_bytes(), key.as_bytes());
        put_delta(buf, before_value, value);
        flag = DELTA_FRAME;
        if buf.len() - start - 8 > MAX_FRAME {
            // Unlike records can make a difference longer than the record: write it whole.
            buf.truncate(start + 8);
            flag = 0;
        }
    }
    if flag == 0 {
        let key_len = u32::try_from(key.len()).map_err(|_| too_long())?;
        buf.extend_from_slice(&key_len.to_le_bytes());
        buf.extend_from_slice(key.as_bytes());
        buf.extend_from_slice(value);
    }
    // At most MAX_FRAME (64 MiB): below the flag bit.
    let len = u32::try_from(buf.len() - start - 8).map_err(|_| too_long())?;
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start..start + 4].copy_from_slice(&(len | flag).to_le_bytes());
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The records of a segment file, up to its first frame that is cut short or does not check.
pub fn read_segment(bytes: &[u8]) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 8 {
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let head = word(&rest[..4]);
        let len = (head & !DELTA_FRAME) as usize;
        let crc = word(&rest[4..8]);
        if !(1..=MAX_FRAME).contains(&len) || rest.len() - 8 < len {
            break;
        }
        let payload = &rest[8..8 + len];
        if crc32fast::hash(payload) != crc {
            break;
        }
        let entry = if head & DELTA_FRAME != 0 {
            out.last()
                .and_then(|before: &Entry| delta_entry(payload, before))
        } else {
            whole_entry(payload)
        };
        let Some(entry) = entry else {
            break;
        };
        out.push(entry);
        rest = &rest[8 + len..];
    }
    out
}

/// The record of a whole frame's payload.
fn whole_entry(payload: &[u8]) -> Option<Entry> {
    let key_len = u32::from_le_bytes(payload.get(..4)?.try_into().ok()?) as usize;
    let key = std::str::from_utf8(payload.get(4..4usize.checked_add(key_len)?)?).ok()?;
    Some((key.to_string(), payload[4 + key_len..].to_vec()))
}

/// The record of a [`DELTA_FRAME`]'s payload, given the record of the frame before; None
/// unless the payload is exactly its key and its value.
fn delta_entry(mut payload: &[u8], before: &Entry) -> Option<Entry> {
    let key = String::from_utf8(take_delta(&mut payload, before.0.as_bytes())?).ok()?;
    let value = take_delta(&mut payload, &before.1)?;
    payload.is_empty().then_some((key, value))
}

/// A segment entry whose key starts with this is the final record of a request that changed
/// something: its write transaction put an early version into the main store under the rest
/// of the key, which indexing the final one deletes ([`index`]) — the final record is never
/// a second transaction of the main store.
pub const REPLACES_PENDING: &str = "!";

/// Where the indexer writes.
pub struct Targets {
    /// The log store, which gets every record.
    pub log: Arc<dyn Store>,
    /// The main store, whose early versions of records the final ones replace; None when it
    /// is the log store itself (PostgreSQL).
    pub main: Option<Arc<dyn Store>>,
}

/// Writes `entries` into the log store in one transaction, many records per store entry
/// ([`tresor_cloudtrail::record::chunk_rows`]), then deletes the early versions that final
/// records replace ([`REPLACES_PENDING`]) from the main store (in the same transaction when
/// it is the log store). After a crash between the two, the segment is indexed again: the
/// same entries are written and the deletes done then.
fn index(targets: &Targets, entries: Vec<Entry>) -> Result<(), StoreError> {
    let mut replaced = Vec::new();
    let entries: Vec<Entry> = entries
        .into_iter()
        .map(|(key, value)| match key.strip_prefix(REPLACES_PENDING) {
            Some(own) => {
                replaced.push(own.to_string());
                (own.to_string(), value)
            }
            None => (key, value),
        })
        .collect();
    let chunks = tresor_cloudtrail::record::chunk_rows(entries);
    let mut txn = targets.log.begin_write()?;
    for (key, value) in &chunks {
        txn.put(key, value)?;
    }
    if targets.main.is_none() {
        // One store: a record kept under its own key (a chunk of one) overwrote its early
        // version already.
        let written: std::collections::HashSet<&str> =
            chunks.iter().map(|(k, _)| k.as_str()).collect();
        for key in replaced.iter().filter(|k| !written.contains(k.as_str())) {
            txn.delete(key)?;
        }
    }
    txn.commit()?;
    if let Some(main) = &targets.main
        && !replaced.is_empty()
    {
        let mut txn = main.begin_write()?;
        for key in &replaced {
            txn.delete(key)?;
        }
        txn.commit()?;
    }
    Ok(())
}

impl Indexer {
    /// Indexes the sealed segments (those recovered at start first) into `store`, deleting
    /// each file once its records are committed; seals aged segments; answers flushes. Runs
    /// for the life of the process.
    pub fn run(self, segments: &Segments, store: &Targets) {
        let Indexer { rx, recovered } = self;
        let queued = &segments.shared.queued;
        let mut backlog: VecDeque<Sealed> = recovered.into();
        loop {
            index_backlog(store, &mut backlog, queued);
            let wait = if backlog.is_empty() {
                SEAL_AGE / 2
            } else {
                RETRY
            };
            let mut flushes = Vec::new();
            let first = match rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            };
            for message in first.into_iter().chain(rx.try_iter()) {
                match message {
                    ToIndexer::Segment(s) => backlog.push_back(s),
                    ToIndexer::Flush(done) => flushes.push(done),
                }
            }
            index_backlog(store, &mut backlog, queued);
            for done in flushes {
                let _ = done.send(());
            }
            segments.seal_aged();
        }
    }
}

fn index_backlog(store: &Targets, backlog: &mut VecDeque<Sealed>, queued: &AtomicUsize) {
    while let Some(segment) = backlog.front_mut() {
        let entries = match std::fs::read(&segment.path) {
            Ok(bytes) => read_segment(&bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::error!(error = %e, segment = %segment.path.display(), "an audit segment cannot be read; will retry");
                return;
            }
        };
        let records = entries.len();
        if let Err(e) = index(store, entries) {
            // Its records stay in the file, read back for the next try.
            tracing::error!(error = %e, records, "indexing audit records into the log store failed; will retry");
            return;
        }
        if let Err(e) = std::fs::remove_file(&segment.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, segment = %segment.path.display(), "an indexed audit segment could not be removed");
        }
        backlog.pop_front();
        queued.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tresor_store::MemoryStore;

    fn entry(i: usize) -> Entry {
        (
            format!("audit/e/{i:020}/id"),
            format!("record {i}").into_bytes(),
        )
    }

    /// The keys of the records indexed into `store` (many to a store entry).
    fn keys(store: &dyn Store) -> Vec<String> {
        let r = store.begin_read().unwrap();
        let mut keys: Vec<String> = r
            .scan("audit/e/", None, 100)
            .unwrap()
            .into_iter()
            .flat_map(|(k, v)| tresor_cloudtrail::record::entry_rows(k, v))
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        keys
    }

    fn files(dir: &Path) -> usize {
        std::fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn a_torn_tail_ends_a_segment_and_what_came_before_is_recovered_and_indexed() {
        let dir = tempfile::tempdir().unwrap();
        let (segments, indexer) = Segments::open(dir.path(), 2).unwrap();
        assert!(indexer.recovered.is_empty());
        let path = {
            let mut lane = segments.lanes()[0].lock();
            lane.append(vec![entry(1), entry(2)]).unwrap();
            lane.append(vec![entry(3)]).unwrap();
            lane.file.as_ref().unwrap().1.clone()
        };
        segments.lanes()[1].lock().append(vec![entry(4)]).unwrap();
        let good = std::fs::read(&path).unwrap();
        // A frame whose bytes do not check ends the segment …
        let mut corrupt = good.clone();
        let n = corrupt.len();
        corrupt[n - 3] ^= 1;
        assert_eq!(read_segment(&corrupt), vec![entry(1), entry(2)]);
        // … as does one cut short: a crash in the middle of the next batch's write.
        let mut torn = Vec::new();
        frame(
            &mut torn,
            Some(&entry(3)),
            &("audit/e/9".into(), b"lost".to_vec()),
        )
        .unwrap();
        let mut bytes = good;
        bytes.extend_from_slice(&torn[..torn.len() - 2]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_segment(&bytes), vec![entry(1), entry(2), entry(3)]);
        drop((segments, indexer));

        // The next process indexes what the crashed one left, then removes it.
        let (segments, indexer) = Segments::open(dir.path(), 2).unwrap();
        assert_eq!(indexer.recovered.len(), 2);
        segments.lanes()[0].lock().append(vec![entry(5)]).unwrap();
        assert_eq!(files(dir.path()), 3, "a new segment");
        let store = start_indexer(indexer, &segments);
        assert!(segments.flush(Duration::from_secs(10)));
        assert_eq!(keys(&*store), [1, 2, 3, 4, 5].map(|i| entry(i).0));
        assert_eq!(segments.shared.queued.load(Ordering::SeqCst), 0);
        assert_eq!(files(dir.path()), 0, "indexed segments are removed");
        // Appends after a flush go to a new segment, and the indexer seals it once it is old.
        segments.lanes()[1].lock().append(vec![entry(6)]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while keys(&*store).len() < 6 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(keys(&*store).len(), 6);
    }

    /// Runs `indexer` on a thread of its own into a memory store (the log and main store in
    /// one), which it returns.
    fn start_indexer(indexer: Indexer, segments: &Arc<Segments>) -> Arc<dyn Store> {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let targets = Targets {
            log: store.clone(),
            main: None,
        };
        let segments = segments.clone();
        std::thread::spawn(move || indexer.run(&segments, &targets));
        store
    }

    fn segment_records(dir: &Path) -> Vec<Entry> {
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        paths
            .iter()
            .flat_map(|p| read_segment(&std::fs::read(p).unwrap()))
            .collect()
    }

    /// Records like a busy log's: the same caller's reads, differing in ids and times.
    fn like_entry(i: usize) -> Entry {
        let mut value = b"GetSecretValue arn:aws:iam::111122223333:user/ci-agent ".repeat(20);
        value.extend_from_slice(format!("{i:08x}-aaaa-4bbb-8ccc-{:012x}", i * 7919).as_bytes());
        value.extend_from_slice(b" arn:aws:secretsmanager:us-east-1:111122223333:secret:tok");
        (
            format!("audit/e/{:020}/{i:08x}", 1_700_000_000_000_000 + i * 37),
            value,
        )
    }

    #[test]
    fn records_after_a_segments_first_are_written_as_differences_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (segments, _indexer) = Segments::open(dir.path(), 1).unwrap();
        let all: Vec<Entry> = (0..200).map(like_entry).collect();
        // One request at a time (`audit.sync = batch`) and batches (`always`) alike.
        for e in &all[..100] {
            segments.append(vec![e.clone()]).unwrap();
        }
        let path = {
            let mut lane = segments.lanes()[0].lock();
            lane.append(all[100..150].to_vec()).unwrap();
            lane.append(all[150..].to_vec()).unwrap();
            lane.file.as_ref().unwrap().1.clone()
        };
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(read_segment(&bytes), all);
        let whole: usize = all.iter().map(|(k, v)| 12 + k.len() + v.len()).sum();
        assert!(
            bytes.len() * 10 < whole,
            "{} bytes for {whole} bytes of records",
            bytes.len()
        );
        // The first frame is whole; a segment that starts with a difference has nothing to
        // read it against and ends there.
        assert_eq!(
            u32::from_le_bytes(bytes[..4].try_into().unwrap()) & DELTA_FRAME,
            0
        );
        let second = 8 + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize;
        assert_ne!(
            u32::from_le_bytes(bytes[second..second + 4].try_into().unwrap()) & DELTA_FRAME,
            0
        );
        assert!(read_segment(&bytes[second..]).is_empty());
        // After a seal the next segment starts whole again.
        segments.lanes()[0].lock().seal();
        segments.append(vec![like_entry(500)]).unwrap();
        let path = segments.lanes()[0].lock().file.as_ref().unwrap().1.clone();
        assert_eq!(
            read_segment(&std::fs::read(&path).unwrap()),
            vec![like_entry(500)]
        );
        // Segments of whole frames only (as builds before differences wrote them) read as
        // they did.
        let mut old = Vec::new();
        for e in &all[..5] {
            frame(&mut old, None, e).unwrap();
        }
        assert_eq!(read_segment(&old), all[..5]);
    }

    #[test]
    fn unsynced_appends_are_in_the_file_at_once_and_synced_in_the_background() {
        let dir = tempfile::tempdir().unwrap();
        let (segments, indexer) = Segments::open(dir.path(), 2).unwrap();
        segments.append(vec![entry(1)]).unwrap();
        segments.append(vec![entry(2), entry(3)]).unwrap();
        // Handed to the OS: another reader of the file (a restart after a crash) sees them.
        assert_eq!(
            segment_records(dir.path()),
            vec![entry(1), entry(2), entry(3)]
        );
        // The lane of this thread is dirty until the syncer's round, and so is the
        // directory (a new segment name); another thread's appends take another lane.
        std::thread::scope(|s| {
            s.spawn(|| segments.append(vec![entry(0)]).unwrap());
        });
        assert!(segments.lanes().iter().all(|l| l.lock().dirty));
        assert!(segments.shared.dir_dirty.load(Ordering::SeqCst));
        segments.sync_dirty();
        assert!(segments.lanes().iter().all(|l| !l.lock().dirty));
        assert!(!segments.shared.dir_dirty.load(Ordering::SeqCst));
        assert!(!segments.sync_failed());
        // A sealed segment written since its last sync is synced once by the next round.
        segments.append(vec![entry(4)]).unwrap();
        for lane in segments.lanes() {
            lane.lock().seal();
        }
        assert_eq!(segments.shared.unsynced.lock().len(), 1);
        segments.sync_dirty();
        assert!(segments.shared.unsynced.lock().is_empty());
        // And everything is indexed on a flush.
        let store = start_indexer(indexer, &segments);
        assert!(segments.flush(Duration::from_secs(10)));
        assert_eq!(keys(&*store), [0, 1, 2, 3, 4].map(|i| entry(i).0));
        assert_eq!(segments.sync_failures(), 0);
    }

    #[test]
    fn after_a_failed_sync_appends_sync_themselves_and_fail_until_one_succeeds() {
        let dir = tempfile::tempdir().unwrap();
        let (segments, _indexer) = Segments::open(dir.path(), 1).unwrap();
        segments.append(vec![entry(1)]).unwrap();
        // What a failed background round leaves (a real fdatasync failure needs a failing
        // disk): the flag that makes appends sync themselves.
        segments.shared.sync_failed.store(true, Ordering::SeqCst);
        segments.lanes()[0].lock().seal();
        let gone = dir.path().join("gone");
        std::fs::create_dir(&gone).unwrap();
        let (broken, _indexer2) = Segments::open(&gone, 1).unwrap();
        broken.shared.sync_failed.store(true, Ordering::SeqCst);
        std::fs::remove_dir(&gone).unwrap();
        // The directory is gone: the append cannot be made durable, it fails, and so does
        // the next one.
        assert!(broken.append(vec![entry(2)]).is_err());
        assert!(broken.append(vec![entry(3)]).is_err());
        assert!(broken.sync_failed());
        // Where the sync works, the first append that syncs clears the failure; it was
        // written and synced (the lane is not dirty), and the next one goes unsynced again.
        segments.append(vec![entry(4)]).unwrap();
        assert!(!segments.sync_failed());
        assert!(!segments.lanes()[0].lock().dirty);
        segments.append(vec![entry(5)]).unwrap();
        assert!(segments.lanes()[0].lock().dirty);
    }

    #[test]
    fn records_staged_together_share_one_write_and_a_failed_write_fails_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let (segments, _indexer) = Segments::open(dir.path(), 2).unwrap();
        // Requests of one thread stage in the same lane; the first to complete writes them
        // all, in the order staged, and the others find theirs written.
        let a = segments.stage(vec![entry(1)]).unwrap();
        let b = segments.stage(vec![entry(2), entry(3)]).unwrap();
        assert_eq!(a.lane, b.lane);
        assert!(
            segment_records(dir.path()).is_empty(),
            "staged, not written"
        );
        segments.complete(a).unwrap();
        assert_eq!(
            segment_records(dir.path()),
            vec![entry(1), entry(2), entry(3)]
        );
        let lane = b.lane;
        segments.complete(b).unwrap();
        assert_eq!(segment_records(dir.path()).len(), 3, "not written twice");
        // A seal writes what is staged first: flushed records are all in the segment.
        let c = segments.stage(vec![entry(4)]).unwrap();
        segments.lanes()[lane].lock().seal();
        segments.complete(c).unwrap();
        let mut found = segment_records(dir.path());
        found.sort();
        assert_eq!(found, [1, 2, 3, 4].map(entry));
        // The directory is gone: the write that carries two requests' records fails, and
        // both requests fail; so does one that comes after.
        let gone = dir.path().join("gone");
        std::fs::create_dir(&gone).unwrap();
        let (broken, _indexer2) = Segments::open(&gone, 1).unwrap();
        std::fs::remove_dir(&gone).unwrap();
        let d = broken.stage(vec![entry(5)]).unwrap();
        let e = broken.stage(vec![entry(6)]).unwrap();
        assert!(broken.complete(e).is_err());
        assert!(broken.complete(d).is_err());
        let f = broken.stage(vec![entry(7)]).unwrap();
        assert!(broken.complete(f).is_err());
        // A segment given up after a failed sync fails the requests staged in it.
        let g = segments.stage(vec![entry(8)]).unwrap();
        segments.lanes()[g.lane].lock().abandon();
        assert!(segments.complete(g).is_err());
        let h = segments.stage(vec![entry(9)]).unwrap();
        segments.complete(h).unwrap();
        // A ticket older than every failed write the lane remembers fails too.
        let mut lane = broken.lanes()[0].lock();
        for _ in 0..=FAILED_WRITES_KEPT {
            let ticket = lane.stage(vec![entry(10)]).unwrap();
            assert!(lane.write_staged(false).is_err());
            assert!(lane.outcome(ticket).is_err());
        }
        assert!(lane.outcome(1).is_err());
        assert_eq!(lane.failed.len(), FAILED_WRITES_KEPT);
    }

    #[test]
    fn a_full_segment_is_sealed_and_a_failed_append_starts_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let (segments, indexer) = Segments::open(dir.path(), 1).unwrap();
        let mut lane = segments.lanes()[0].lock();
        lane.append((1..=SEAL_RECORDS).map(entry).collect())
            .unwrap();
        assert!(lane.file.is_none(), "sealed when full");
        let Ok(ToIndexer::Segment(sealed)) = indexer.rx.try_recv() else {
            panic!("the full segment goes to the indexer");
        };
        assert_eq!(
            read_segment(&std::fs::read(&sealed.path).unwrap()).len(),
            SEAL_RECORDS
        );
        // A segment is sealed by the size of its records too.
        let big = |i: usize| (format!("audit/e/{i:020}/id"), vec![b'x'; SEAL_BYTES / 4]);
        lane.append((1..=3).map(big).collect()).unwrap();
        assert!(lane.file.is_some(), "3/4 of the bytes");
        lane.append(vec![big(4)]).unwrap();
        assert!(lane.file.is_none(), "sealed at the size bound");
        let Ok(ToIndexer::Segment(sealed)) = indexer.rx.try_recv() else {
            panic!("the full segment goes to the indexer");
        };
        assert_eq!(read_segment(&std::fs::read(&sealed.path).unwrap()).len(), 4);
        assert_eq!(lane.bytes, 0);
        lane.append(vec![entry(1)]).unwrap();
        // The directory is gone: the next segment cannot be made, the append fails.
        lane.seal();
        drop(dir);
        assert!(lane.append(vec![entry(2)]).is_err());
        assert!(lane.file.is_none());
    }

    #[test]
    fn a_final_record_replaces_its_early_version_in_the_main_store_or_in_the_one_store() {
        let row = |i: usize| format!("audit/e/{i:020}/id");
        for one_store in [false, true] {
            let log: Arc<dyn Store> = Arc::new(MemoryStore::new());
            let main: Arc<dyn Store> = if one_store {
                log.clone()
            } else {
                Arc::new(MemoryStore::new())
            };
            // Early versions of the records of two writes, in the main store.
            common_put(
                &*main,
                &[(row(1), b"early 1".to_vec()), (row(2), b"early 2".to_vec())],
            );
            let targets = Targets {
                log: log.clone(),
                main: (!one_store).then(|| main.clone()),
            };
            // Their final versions, in a segment with a read's record.
            let segment = vec![
                (format!("{REPLACES_PENDING}{}", row(1)), b"final 1".to_vec()),
                (format!("{REPLACES_PENDING}{}", row(2)), b"final 2".to_vec()),
                (row(2) + "x", b"a read".to_vec()),
            ];
            index(&targets, segment.clone()).unwrap();
            let values = |store: &dyn Store| -> Vec<(String, Vec<u8>)> {
                let r = store.begin_read().unwrap();
                let mut rows: Vec<_> = r
                    .scan("audit/e/", None, 100)
                    .unwrap()
                    .into_iter()
                    .flat_map(|(k, v)| tresor_cloudtrail::record::entry_rows(k, v))
                    .collect();
                rows.sort();
                rows
            };
            let expected = vec![
                (row(1), b"final 1".to_vec()),
                (row(2), b"final 2".to_vec()),
                (row(2) + "x", b"a read".to_vec()),
            ];
            assert_eq!(values(&*log), expected, "one store: {one_store}");
            if !one_store {
                assert!(values(&*main).is_empty(), "the early versions are gone");
            }
            // Indexed again (a crash before the segment was removed): the same result.
            index(&targets, segment).unwrap();
            assert_eq!(values(&*log), expected);
            // A final record alone in its segment keeps its own key (a chunk of one): in one
            // store it overwrites its early version, which is not deleted after it.
            common_put(&*main, &[(row(3), b"early 3".to_vec())]);
            index(
                &targets,
                vec![(format!("{REPLACES_PENDING}{}", row(3)), b"final 3".to_vec())],
            )
            .unwrap();
            assert!(values(&*log).contains(&(row(3), b"final 3".to_vec())));
            if !one_store {
                assert!(values(&*main).is_empty());
            }
        }
    }

    fn common_put(store: &dyn Store, entries: &[(String, Vec<u8>)]) {
        let mut t = store.begin_write().unwrap();
        for (k, v) in entries {
            t.put(k, v).unwrap();
        }
        t.commit().unwrap();
    }
}
