//! Upgraded connections: once the origin has agreed to switch protocols (101), the client's and
//! the origin's connections are joined here until one side ends, nothing has moved for the
//! site's idle timeout, or (WebSocket) a message is larger than the site allows.
//!
//! WebSocket is relayed message by message, with tungstenite speaking to each side, so that the
//! size limit and the idle timeout end the session with the protocol's own close statuses (1009
//! and 1001) instead of a cut connection; any other protocol is copied byte for byte. Both
//! directions run at once: a peer that is slow to read never stops the other direction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::config::Websocket;

/// Why a tunnel ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A side closed (or, for bytes, both finished).
    Closed,
    /// Nothing moved for the idle timeout.
    Idle,
    /// A WebSocket message over `max_message`.
    TooBig,
    /// A side broke the protocol or the connection.
    Failed,
}

/// How long closing handshakes may take once a tunnel ends.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Relays WebSocket messages between the client and the origin.
pub async fn websocket(client: Upgraded, origin: Upgraded, limits: &Websocket) -> Ending {
    let config = WebSocketConfig::default()
        .max_message_size(Some(limits.max_message))
        .max_frame_size(Some(limits.max_message));
    let client =
        WebSocketStream::from_raw_socket(TokioIo::new(client), Role::Server, Some(config)).await;
    let origin =
        WebSocketStream::from_raw_socket(TokioIo::new(origin), Role::Client, Some(config)).await;
    let (mut to_client, mut from_client) = client.split();
    let (mut to_origin, mut from_origin) = origin.split();
    let activity = Activity::new();
    let (ending, close, from_client_side) = tokio::select! {
        (e, frame) = relay(&mut from_client, &mut to_origin, &activity) => (e, frame, true),
        (e, frame) = relay(&mut from_origin, &mut to_client, &activity) => (e, frame, false),
        () = activity.idle(limits.idle_timeout) => (Ending::Idle, None, false),
    };
    let frame = |code: CloseCode, reason: &'static str| {
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    };
    // The side that sent a close gets its handshake completed; the other is told why.
    let (to_client_frame, to_origin_frame) = match ending {
        Ending::Closed if from_client_side => (None, close),
        Ending::Closed => (close, None),
        Ending::Idle => (
            frame(CloseCode::Away, "idle timeout"),
            frame(CloseCode::Away, "idle timeout"),
        ),
        Ending::TooBig => (
            frame(CloseCode::Size, "message too big"),
            frame(CloseCode::Size, "message too big"),
        ),
        Ending::Failed => (None, None),
    };
    let finish = async {
        tokio::join!(
            say_goodbye(&mut to_client, to_client_frame),
            say_goodbye(&mut to_origin, to_origin_frame),
        )
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, finish).await;
    ending
}

/// Forwards messages from one side to the other until a close, an error or the end of input.
/// Pongs answer this hop's pings and stay here; pings travel, so that each end still sees its
/// peer's keep-alives.
async fn relay<S, K>(from: &mut S, to: &mut K, activity: &Activity) -> (Ending, Option<CloseFrame>)
where
    S: Stream<Item = Result<Message, WsError>> + Unpin,
    K: Sink<Message, Error = WsError> + Unpin,
{
    while let Some(item) = from.next().await {
        activity.touch();
        let message = match item {
            Ok(Message::Close(frame)) => return (Ending::Closed, frame),
            Ok(Message::Pong(_) | Message::Frame(_)) => continue,
            Ok(message) => message,
            Err(WsError::Capacity(_)) => return (Ending::TooBig, None),
            Err(_) => return (Ending::Failed, None),
        };
        if to.send(message).await.is_err() {
            return (Ending::Failed, None);
        }
        activity.touch();
    }
    (Ending::Closed, None)
}

async fn say_goodbye<K>(to: &mut K, frame: Option<CloseFrame>)
where
    K: Sink<Message, Error = WsError> + Unpin,
{
    if let Some(frame) = frame {
        let _ = to.send(Message::Close(Some(frame))).await;
    }
    let _ = to.close().await;
}

/// Copies bytes both ways until both directions have ended, or nothing moved for `idle`.
pub async fn bytes(client: Upgraded, origin: Upgraded, idle: Duration) -> Ending {
    let (mut client_read, mut client_write) = tokio::io::split(TokioIo::new(client));
    let (mut origin_read, mut origin_write) = tokio::io::split(TokioIo::new(origin));
    let activity = Activity::new();
    let both = async {
        tokio::join!(
            copy(&mut client_read, &mut origin_write, &activity),
            copy(&mut origin_read, &mut client_write, &activity),
        )
    };
    tokio::select! {
        (up, down) = both => if up.is_ok() && down.is_ok() { Ending::Closed } else { Ending::Failed },
        () = activity.idle(idle) => Ending::Idle,
    }
}

/// One direction: a clean end of input is passed on as a half close.
async fn copy<R, W>(from: &mut R, to: &mut W, activity: &Activity) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 16 << 10];
    loop {
        let n = from.read(&mut buf).await?;
        activity.touch();
        if n == 0 {
            return to.shutdown().await;
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// When anything last moved through a tunnel, shared by its two directions.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Completes once nothing has moved for `idle`.
    async fn idle(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let quiet = last.elapsed();
            if quiet >= idle {
                return;
            }
            tokio::time::sleep(idle - quiet).await;
        }
    }
}
