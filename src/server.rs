//! Listeners and connections: accepts TCP (and TLS) connections, serves HTTP/1.1 and HTTP/2 on each
//! with hyper, enforces the connection-level limits, and drains on shutdown.
//!
//! Lifecycle of a connection: accepted (counts against `max_connections`) → optional TLS handshake
//! (bounded by `header_read_timeout`) → served until the client closes, the connection sits idle
//! for `idle_timeout` with no request in flight, or shutdown begins; then hyper's graceful shutdown
//! lets in-flight requests finish, and after `drain_timeout` whatever is left is aborted.

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
    let stream = Tracked {
        inner: stream,
        activity: activity.clone(),
    };
    match tls {
        None => drive(stream, conn, handler, settings, shutdown, activity).await,
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
                    drive(tls_stream, conn, handler, settings, shutdown, activity).await
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
        .header_read_timeout(settings.header_read_timeout)
        .max_buf_size(settings.max_header_size.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(settings.max_concurrent_streams)
        .max_header_list_size(settings.max_header_size as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)));

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

    let mut idle_check =
        tokio::time::interval(settings.idle_timeout / 4 + Duration::from_millis(1));
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
                if activity.idle_for() >= settings.idle_timeout {
                    closing = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Traffic and request bookkeeping of one connection, for the idle timeout.
struct Activity {
    start: Instant,
    last_io_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has had neither traffic nor a request being handled.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return Duration::ZERO;
        }
        let last = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }

    fn begin_request(self: &Arc<Self>) -> RequestGuard {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard(self.clone())
    }
}

struct RequestGuard(Arc<Activity>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A socket that records when bytes last moved.
    struct Tracked<S> {
        #[pin]
        inner: S,
        activity: Arc<Activity>,
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
        if buf.filled().len() > before {
            this.activity.touch();
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
        let this = self.project();
        let poll = this.inner.poll_write(cx, buf);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let poll = this.inner.poll_write_vectored(cx, bufs);
        if matches!(poll, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        poll
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
