//! Listeners and connections: accepts TCP (and TLS) connections, serves HTTP/1.1 and HTTP/2 on each
//! with hyper, enforces the connection-level limits, and drains on shutdown.
//!
//! Lifecycle of a connection: accepted (counts against `max_connections`) → optional TLS handshake
//! (bounded by `header_read_timeout`) → served until the client closes, the connection sits idle
//! for `idle_timeout` with no request in flight, or shutdown begins; then hyper's graceful shutdown
//! lets in-flight requests finish, and after `drain_timeout` whatever is left is aborted.
//!
//! The two timeouts are kept here rather than by hyper, whose HTTP/1 header timeout also runs
//! while a keep-alive connection waits for its next request (closing it after 10 s instead of
//! 75), and whose HTTP/2 has no idle timeout at all. Idleness counts requests, not bytes, so
//! HTTP/2 pings cannot keep a connection open. An HTTP/1 request head must be complete within
//! `header_read_timeout` of its first byte (of the connection's start, for the first request).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::body::Body;
use crate::config::ServerSettings;

/// What the handler knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// True when the client connected over TLS.
    pub tls: bool,
    /// The TLS server name the client asked for.
    pub sni: Option<String>,
    /// The connection's bookkeeping of requests in flight (`busy`).
    activity: Option<Arc<Activity>>,
}

impl ConnInfo {
    /// Counts as a request in flight until dropped: an HTTP/2 stream turned into a tunnel
    /// (RFC 8441) outlives its request, and must keep its connection from being closed as idle.
    pub fn busy(&self) -> Busy {
        Busy {
            _guard: self.activity.as_ref().map(Activity::begin_request),
        }
    }
}

/// See [`ConnInfo::busy`].
pub struct Busy {
    _guard: Option<RequestGuard>,
}

/// Answers requests. Implemented by the proxy and by the embedded demo site.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// A bound socket, plain or TLS.
pub struct Listener {
    pub tcp: TcpListener,
    pub tls: Option<TlsAcceptor>,
}

/// Tells the accept loops to stop and the connections to drain.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn new() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }

    pub async fn wait(&mut self) {
        // An error means the sender is gone, which also means shut down.
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Serves `listener` with `handler` until `shutdown` fires, then drains.
pub async fn serve<H: Handler>(
    listener: Listener,
    handler: Arc<H>,
    settings: ServerSettings,
    mut shutdown: Shutdown,
) {
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    let mut conns = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            _ = shutdown.wait() => break,
        };
        let accepted = tokio::select! {
            accepted = listener.tcp.accept() => accepted,
            _ = shutdown.wait() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().unwrap_or(peer);
        let conn = ConnInfo {
            peer,
            local,
            tls: listener.tls.is_some(),
            sni: None,
            activity: None,
        };
        let tls = listener.tls.clone();
        let (handler, settings, shutdown) = (handler.clone(), settings.clone(), shutdown.clone());
        conns.spawn(async move {
            let _permit = permit;
            serve_connection(stream, tls, conn, handler, settings, shutdown).await;
        });
        // Reap finished connection tasks so the set does not grow with every connection ever made.
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let drain = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(settings.drain_timeout, drain)
        .await
        .is_err()
    {
        tracing::warn!(
            remaining = conns.len(),
            "drain timeout: aborting connections"
        );
        conns.shutdown().await;
    }
}

async fn serve_connection<H: Handler>(
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    mut conn: ConnInfo,
    handler: Arc<H>,
    settings: Arc<ServerSettings>,
    shutdown: Shutdown,
) {
    let activity = Arc::new(Activity::new());
    conn.activity = Some(activity.clone());
    // Tracked above TLS, so that it reads what the HTTP layer reads.
    match tls {
        None => {
            let stream = Tracked::new(stream, &activity);
            drive(stream, conn, handler, settings, shutdown, activity).await
        }
        Some(acceptor) => {
            let handshake =
                tokio::time::timeout(settings.header_read_timeout, acceptor.accept(stream)).await;
            match handshake {
                Ok(Ok(tls_stream)) => {
                    conn.sni = tls_stream
                        .get_ref()
                        .1
                        .server_name()
                        .map(str::to_ascii_lowercase);
                    let alpn = tls_stream.get_ref().1.alpn_protocol();
                    if alpn == Some(crate::acme::TLS_ALPN_PROTOCOL) {
                        // A CA's TLS-ALPN-01 validation ends with the handshake.
                        return;
                    }
                    let h2 = alpn == Some(b"h2");
                    let mut stream = Tracked::new(tls_stream, &activity);
                    if h2 {
                        stream.scan = Scan::Frames(FrameScan::after_preface());
                        activity.mark_http2();
                    }
                    drive(stream, conn, handler, settings, shutdown, activity.clone()).await
                }
                Ok(Err(e)) => {
                    tracing::debug!(peer = %conn.peer, error = %e, "TLS handshake failed")
                }
                Err(_) => tracing::debug!(peer = %conn.peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn drive<H, S>(
    stream: S,
    conn: ConnInfo,
    handler: Arc<H>,
    settings: Arc<ServerSettings>,
    mut shutdown: Shutdown,
    activity: Arc<Activity>,
) where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(settings.max_header_size.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(settings.max_header_size as u32)
        // Pings find dead peers; well within the idle timeout so a dead one is noticed first.
        .keep_alive_interval(Some(
            (settings.idle_timeout / 2).min(Duration::from_secs(30)),
        ))
        // WebSocket over HTTP/2 (RFC 8441): CONNECT with `:protocol`.
        .enable_connect_protocol();

    let peer = conn.peer;
    let conn = Arc::new(conn);
    let in_flight = activity.clone();
    let service = service_fn(move |req: Request<Incoming>| {
        let (handler, conn, in_flight) = (handler.clone(), conn.clone(), in_flight.clone());
        async move {
            let _guard = in_flight.begin_request();
            Ok::<_, std::convert::Infallible>(handler.handle(req, &conn).await)
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(connection);

    let tick = settings.idle_timeout.min(settings.header_read_timeout) / 4;
    let mut idle_check = tokio::time::interval(tick + Duration::from_millis(1));
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.wait(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            _ = idle_check.tick(), if !closing => {
                if activity.head_pending_for() >= settings.header_read_timeout {
                    tracing::debug!(%peer, "request head not complete in time: closing");
                    return;
                }
                if activity.idle_for() >= settings.idle_timeout {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Request bookkeeping of one connection, for the idle and header timeouts. Times are
/// milliseconds since `start`.
#[derive(Debug)]
struct Activity {
    start: Instant,
    /// Last time a request began or ended (0: the connection's start).
    last_request_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// When the bytes of a request head not yet complete started arriving (HTTP/1), or a
    /// header block was opened and not yet closed (HTTP/2); `NONE` when no head is pending.
    head_since_ms: AtomicU64,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_request_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            // The first request's head is due from the connection's start, bytes or not.
            head_since_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// HTTP/1 bytes came in while no request is in flight: a head has begun.
    fn head_bytes(&self) {
        if self.in_flight.load(Ordering::Relaxed) == 0 {
            self.head_started();
        }
    }

    fn head_started(&self) {
        let _ = self.head_since_ms.compare_exchange(
            NONE,
            self.now_ms(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
    }

    /// An HTTP/2 header block opened (HEADERS without END_HEADERS) or closed.
    fn header_block(&self, open: bool) {
        if open {
            self.head_started();
        } else {
            self.head_since_ms.store(NONE, Ordering::Relaxed);
        }
    }

    /// HTTP/2, by its preface or by ALPN: between requests it reads control frames, which are
    /// no head, so only an open header block counts.
    fn mark_http2(&self) {
        self.head_since_ms.store(NONE, Ordering::Relaxed);
    }

    /// How long a request head has been arriving without completing.
    fn head_pending_for(&self) -> Duration {
        match self.head_since_ms.load(Ordering::Relaxed) {
            NONE => Duration::ZERO,
            since => Duration::from_millis(self.now_ms().saturating_sub(since)),
        }
    }

    /// How long the connection has had no request in flight.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = self.last_request_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.now_ms().saturating_sub(last))
    }

    fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.head_since_ms.store(NONE, Ordering::Relaxed);
        self.last_request_ms.store(self.now_ms(), Ordering::Relaxed);
        RequestGuard(self.clone())
    }
}

struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let activity = &self.0;
        activity
            .last_request_ms
            .store(activity.now_ms(), Ordering::Relaxed);
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A stream that reports what it reads to the connection's bookkeeping.
    struct Tracked<S> {
        #[pin]
        inner: S,
        activity: Arc<Activity>,
        scan: Scan,
    }
}

impl<S> Tracked<S> {
    fn new(inner: S, activity: &Arc<Activity>) -> Self {
        Tracked {
            inner,
            activity: activity.clone(),
            scan: Scan::Start,
        }
    }
}

/// What the bytes read so far say about the protocol.
enum Scan {
    /// Nothing read yet.
    Start,
    Http1,
    Frames(FrameScan),
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Follows HTTP/2 frame boundaries through the byte stream (frames may be split anywhere) to see
/// when a header block opens (HEADERS without END_HEADERS) and closes (END_HEADERS).
struct FrameScan {
    /// Bytes of the preface, then of payloads, still to skip.
    skip: usize,
    head: [u8; 9],
    filled: usize,
}

impl FrameScan {
    fn new() -> Self {
        Self {
            skip: H2_PREFACE.len(),
            head: [0; 9],
            filled: 0,
        }
    }

    fn after_preface() -> Self {
        Self {
            skip: 0,
            ..Self::new()
        }
    }

    fn feed(&mut self, mut bytes: &[u8], activity: &Activity) {
        const HEADERS: u8 = 0x1;
        const CONTINUATION: u8 = 0x9;
        const END_HEADERS: u8 = 0x4;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (9 - self.filled).min(bytes.len());
            self.head[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == 9 {
                self.filled = 0;
                let h = self.head;
                self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
                if h[3] == HEADERS || h[3] == CONTINUATION {
                    activity.header_block(h[4] & END_HEADERS == 0);
                }
            }
        }
    }
}

impl<S: AsyncRead> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let poll = this.inner.poll_read(cx, buf);
        let bytes = &buf.filled()[before..];
        if !bytes.is_empty() {
            if let Scan::Start = this.scan {
                *this.scan = if bytes.starts_with(&H2_PREFACE[..bytes.len().min(H2_PREFACE.len())])
                {
                    this.activity.mark_http2();
                    Scan::Frames(FrameScan::new())
                } else {
                    Scan::Http1
                };
            }
            match this.scan {
                Scan::Frames(frames) => frames.feed(bytes, this.activity),
                _ => this.activity.head_bytes(),
            }
        }
        poll
    }
}

impl<S: AsyncWrite> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().inner.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}
