//! Connection hygiene: the timeouts on a connection's IO and the rate limit on accept-error
//! logging. (The cap on concurrent connections is a semaphore in the accept loop.)
//!
//! hyper's own header-read timer starts whenever it waits for a request head, so it cannot
//! tell a slow client from an idle keep-alive connection. [`Guarded`] wraps the stream and
//! applies two deadlines, checked whenever a read would block:
//! - header read: a new connection, or one whose next request has begun arriving, must
//!   deliver the request's headers within `header_read_timeout`;
//! - idle: otherwise (between keep-alive requests, or while a request is served and its body
//!   read), the connection is closed after `idle_timeout` without traffic.
//!
//! The request handler marks where a request's headers end ([`Activity::enter_service`]) and
//! where its handling ends ([`Activity::leave_service`]).
//!
//! The health lane: the accept loop runs on a thread of its own (a one-thread runtime), apart
//! from the request workers. Under load every worker is busy with requests (reads run inline,
//! and writers share the cores), so a `/health` probe served there queues behind them —
//! 15 ms at the 99th percentile in `bench/mixed.sh`, against a 10 ms budget. The lane thread
//! is idle almost always, so the kernel runs it as soon as a probe arrives. It peeks at each new
//! plain-TCP connection ([`first_request_is_health`]): a connection that opens with
//! `GET /health` (a load balancer's or orchestrator's probe) is served on the lane, any other
//! goes to the worker runtime. A non-health request that later arrives on a lane connection
//! is handed to the workers too, so the lane never runs service code. (TLS connections go to
//! the workers directly: their handshake is work the lane should not do.)

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const SERVICE: u8 = 2;

/// What a connection is doing, shared between its stream and its request handler.
pub struct Activity {
    base: Instant,
    phase: AtomicU8,
    /// Milliseconds after `base`: the last traffic, and when the current head began.
    last: AtomicU64,
    head_start: AtomicU64,
    /// Whether any byte has arrived on the connection yet.
    read_any: std::sync::atomic::AtomicBool,
}

impl Activity {
    /// A new connection: waiting for its first request's headers.
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            base: Instant::now(),
            phase: AtomicU8::new(HEAD),
            last: AtomicU64::new(0),
            head_start: AtomicU64::new(0),
            read_any: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A request's headers have arrived; it is being served.
    pub fn enter_service(&self) {
        self.phase.store(SERVICE, Ordering::Relaxed);
    }

    /// The response is ready; the connection waits for the next request.
    pub fn leave_service(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
        self.phase.store(IDLE, Ordering::Relaxed);
    }

    /// Whether the connection holds no request: between keep-alive requests, or new and
    /// silent. Such a connection may be shed when the server is at its connection cap.
    pub fn is_idle(&self) -> bool {
        match self.phase.load(Ordering::Relaxed) {
            IDLE => true,
            HEAD => !self.read_any.load(Ordering::Relaxed),
            _ => false,
        }
    }

    fn on_read(&self) {
        self.read_any.store(true, Ordering::Relaxed);
        let now = self.now_ms();
        self.last.store(now, Ordering::Relaxed);
        if self
            .phase
            .compare_exchange(IDLE, HEAD, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.head_start.store(now, Ordering::Relaxed);
        }
    }

    fn on_write(&self) {
        self.last.store(self.now_ms(), Ordering::Relaxed);
    }

    fn deadline(&self, header: Duration, idle: Duration) -> Instant {
        let (start, limit) = if self.phase.load(Ordering::Relaxed) == HEAD {
            (self.head_start.load(Ordering::Relaxed), header)
        } else {
            (self.last.load(Ordering::Relaxed), idle)
        };
        self.base + Duration::from_millis(start) + limit
    }
}

/// A stream that fails a blocked read with `TimedOut` once its connection's deadline passes.
pub struct Guarded<S> {
    inner: S,
    activity: Arc<Activity>,
    header: Duration,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, activity: Arc<Activity>, header: Duration, idle: Duration) -> Self {
        let first = activity.deadline(header, idle);
        Guarded {
            inner,
            activity,
            header,
            idle,
            sleep: Box::pin(tokio::time::sleep_until(first)),
        }
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection timed out")
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.activity.on_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let deadline = this.activity.deadline(this.header, this.idle);
                if Instant::now() >= deadline {
                    return Poll::Ready(Err(timed_out()));
                }
                // Moving the timer is a timer-wheel update, and the deadline moves with every
                // request on a keep-alive connection. A timer armed for an earlier instant than
                // the deadline only wakes this task early, to be armed again then (below); so
                // it moves here only when the deadline came closer: about once an idle
                // timeout, not once a request.
                if deadline < this.sleep.deadline() {
                    this.sleep.as_mut().reset(deadline);
                }
                if this.sleep.as_mut().poll(cx).is_ready() {
                    // The armed instant passed; the deadline (checked above) has not.
                    this.sleep.as_mut().reset(deadline);
                    if this.sleep.as_mut().poll(cx).is_ready() {
                        return Poll::Ready(Err(timed_out()));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.on_write();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Logs a recurring warning at most once per `every`, counting what it held back.
pub struct RateLimitedLog {
    every: Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    pub fn new(every: Duration) -> Self {
        RateLimitedLog {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// Whether to log now, and how many occurrences were held back since the last line.
    pub fn allow(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// Whether an accept error means the process or system is out of a resource (file
/// descriptors, buffers, memory), so that retrying at once would only spin.
pub fn is_resource_exhaustion(e: &io::Error) -> bool {
    // EMFILE and ENFILE have these numbers on Linux, the BSDs and macOS; ENOMEM too.
    const ENOMEM: i32 = 12;
    const ENFILE: i32 = 23;
    const EMFILE: i32 = 24;
    #[cfg(target_os = "linux")]
    const ENOBUFS: i32 = 105;
    #[cfg(not(target_os = "linux"))]
    const ENOBUFS: i32 = 55;
    matches!(e.raw_os_error(), Some(ENOMEM | ENFILE | EMFILE | ENOBUFS))
        || e.kind() == io::ErrorKind::OutOfMemory
}

/// Whether a request is the health probe, answered without authentication or body.
pub fn is_health(method: &http::Method, path: &str) -> bool {
    path == "/health" && (method == http::Method::GET || method == http::Method::HEAD)
}

/// How long the lane waits for a new connection's first bytes before handing it to the
/// workers undecided. A probe sends its request at once.
const SNIFF_WAIT: Duration = Duration::from_millis(50);

/// Whether a new connection's first request is `GET /health` or `HEAD /health`, from the bytes
/// it has sent so far; `None` while they are a prefix of one of those and too short to tell.
fn classify(seen: &[u8]) -> Option<bool> {
    const PROBES: [&[u8]; 2] = [b"GET /health", b"HEAD /health"];
    for probe in PROBES {
        if seen.len() <= probe.len() {
            if probe.starts_with(seen) {
                return None;
            }
        } else if seen.starts_with(probe) {
            // "/health" exactly: a space (then the version) or a query must follow.
            return Some(matches!(seen[probe.len()], b' ' | b'?'));
        }
    }
    Some(false)
}

/// Peeks (without consuming) at a new connection's first bytes: whether it opens with a
/// `/health` request. Gives up (false) after [`SNIFF_WAIT`].
pub async fn first_request_is_health(stream: &tokio::net::TcpStream) -> bool {
    let deadline = Instant::now() + SNIFF_WAIT;
    let mut buf = [0u8; 16];
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return false,
        };
        if let Some(decided) = classify(&buf[..n]) {
            return decided;
        }
        // A request line split across packets (rare): peek returns at once while bytes are
        // buffered, so wait a little for the rest instead of spinning.
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[test]
    fn rate_limited_log_counts_what_it_holds_back() {
        let mut l = RateLimitedLog::new(Duration::from_secs(3600));
        assert_eq!(l.allow(), Some(0));
        for _ in 0..5 {
            assert_eq!(l.allow(), None);
        }
        l.last = std::time::Instant::now().checked_sub(Duration::from_secs(7200));
        assert_eq!(l.allow(), Some(5));
    }

    #[test]
    fn a_connection_is_on_the_health_lane_only_if_it_opens_with_a_health_request() {
        assert_eq!(classify(b"GET /health HTTP/1.1\r\n"), Some(true));
        assert_eq!(classify(b"HEAD /health?x=1 HTTP/1.1"), Some(true));
        assert_eq!(classify(b"GET /healthz HTTP/1.1"), Some(false));
        assert_eq!(classify(b"POST / HTTP/1.1\r\n"), Some(false));
        assert_eq!(classify(b"PUT /health HTTP/1.1"), Some(false));
        assert_eq!(classify(b"GET /hea"), None);
        assert_eq!(classify(b"GET /health"), None);
        assert_eq!(classify(b"H"), None);
        assert_eq!(classify(b"\x16\x03\x01"), Some(false));
    }

    #[tokio::test]
    async fn sniffing_does_not_consume_the_request() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // Split across two writes: undecided after the first.
        client.write_all(b"GET /hea").await.unwrap();
        let writer = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            client.write_all(b"lth HTTP/1.1\r\n\r\n").await.unwrap();
            client
        });
        assert!(first_request_is_health(&server).await);
        let _client = writer.await.unwrap();
        let mut server = server;
        let mut buf = [0u8; 11];
        server.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"GET /health");

        // A silent connection is handed on undecided.
        let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        assert!(!first_request_is_health(&server).await);
    }

    #[test]
    fn emfile_is_resource_exhaustion_and_aborts_are_not() {
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(!is_resource_exhaustion(&io::Error::from(
            io::ErrorKind::ConnectionAborted
        )));
    }

    #[tokio::test]
    async fn a_silent_connection_times_out_on_the_header_deadline_and_an_idle_one_later() {
        let (client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let header = Duration::from_millis(300);
        let idle = Duration::from_millis(900);
        let mut g = Guarded::new(server, activity.clone(), header, idle);
        let mut buf = [0u8; 8];
        let started = Instant::now();
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= header);
        assert!(started.elapsed() < idle);

        // Served and answered: now the longer idle deadline applies.
        activity.enter_service();
        g.write_all(b"response").await.unwrap();
        activity.leave_service();
        let started = Instant::now();
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= idle);
        drop(client);
    }

    #[tokio::test]
    async fn a_timer_armed_earlier_than_the_deadline_wakes_early_but_does_not_time_out() {
        let (client, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let header = Duration::from_millis(200);
        // Well above the 300 ms between the bytes below, so a slow CI machine has margin.
        let idle = Duration::from_millis(1000);
        // Armed for the header deadline when made; the first request is served at once, so
        // the later idle deadline applies to the read below while that timer stays armed.
        let mut g = Guarded::new(server, activity.clone(), header, idle);
        let started = Instant::now();
        activity.enter_service();
        g.write_all(b"response").await.unwrap();
        activity.leave_service();
        let mut buf = [0u8; 8];
        let e = g.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() >= idle,
            "timed out at {:?}",
            started.elapsed()
        );

        // Traffic moves the deadline later without moving the timer; the connection lives
        // past the first armed instant for as long as bytes keep coming.
        let (mut client2, server) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut g = Guarded::new(server, activity.clone(), header, idle);
        activity.enter_service();
        activity.leave_service();
        let started = Instant::now();
        let feeder = tokio::spawn(async move {
            for _ in 0..4 {
                tokio::time::sleep(Duration::from_millis(300)).await;
                client2.write_all(b"x").await.unwrap();
                // Each byte is a new request's head: served and answered at once.
            }
            client2
        });
        for _ in 0..4 {
            assert_eq!(g.read(&mut buf).await.unwrap(), 1);
            activity.enter_service();
            activity.leave_service();
        }
        assert!(started.elapsed() >= Duration::from_millis(1200));
        let _client2 = feeder.await.unwrap();
        drop(client);
    }
}
