//! Upgraded connections through the proxy: a real WebSocket client (tokio-tungstenite) talking
//! to a real WebSocket server behind edgeseo, and a byte protocol of its own, on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What the WebSocket origin saw: the handshake's path and headers, then every message.
#[derive(Debug)]
enum Seen {
    Handshake(String, http::HeaderMap),
    Message(Message),
}

/// A WebSocket server that greets each client, then answers every text or binary message with
/// `echo: ` and the message, and reports what it sees.
// The handshake callback's error type is tungstenite's, not ours.
#[allow(clippy::result_large_err)]
async fn websocket_origin() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let seen = tx.clone();
                let callback = move |req: &Request, resp: Response| {
                    let _ = seen.send(Seen::Handshake(
                        req.uri().path().to_string(),
                        req.headers().clone(),
                    ));
                    Ok(resp)
                };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
                    return;
                };
                let _ = ws.send(Message::text("welcome")).await;
                while let Some(Ok(message)) = ws.next().await {
                    let _ = tx.send(Seen::Message(message.clone()));
                    let reply = match message {
                        Message::Text(t) => Message::text(format!("echo: {}", t.as_str())),
                        Message::Binary(b) => {
                            Message::binary([b"echo: ".as_slice(), &b[..]].concat())
                        }
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, rx)
}

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket through the proxy at `proxy`, for host `shop.test`.
async fn connect(proxy: SocketAddr, path: &str) -> Result<Client, WsError> {
    let request = http::Request::get(format!("ws://{proxy}{path}"))
        .header("host", "shop.test")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-extensions", "permessage-deflate")
        .body(())
        .unwrap();
    let connecting = tokio_tungstenite::connect_async(request);
    let (ws, resp) = tokio::time::timeout(PATIENCE, connecting)
        .await
        .expect("handshake in time")?;
    assert_eq!(resp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    Ok(ws)
}

async fn next(ws: &mut Client) -> Option<Message> {
    tokio::time::timeout(PATIENCE, ws.next())
        .await
        .expect("a message in time")
        .map(|m| m.expect("a valid message"))
}

async fn next_seen(seen: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(PATIENCE, seen.recv())
        .await
        .expect("the origin sees something in time")
        .expect("origin running")
}

async fn proxy_for(origin: SocketAddr, extra: &str) -> (RulesDir, edgeseo::app::App) {
    let rules = RulesDir::new().site("shop", &site_for(origin, extra));
    let app = start_proxy(&rules).await;
    (rules, app)
}

#[tokio::test]
async fn websocket_messages_flow_both_ways_and_close_cleanly() {
    let (origin, mut seen) = websocket_origin().await;
    let (_rules, app) = proxy_for(origin, "").await;
    let mut ws = connect(app.http_addr, "/live?room=7").await.unwrap();

    let Seen::Handshake(path, headers) = next_seen(&mut seen).await else {
        panic!("handshake first");
    };
    assert_eq!(path, "/live");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert!(
        headers.get("sec-websocket-extensions").is_none(),
        "no extension may be agreed across the relay"
    );

    assert_eq!(next(&mut ws).await, Some(Message::text("welcome")));
    ws.send(Message::text("halo kak")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::text("echo: halo kak")));
    ws.send(Message::binary(vec![0u8, 159, 146, 150]))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        Some(Message::binary(b"echo: \x00\x9f\x92\x96".to_vec()))
    );
    // A ping is answered at once, by this hop.
    ws.send(Message::Ping(b"still there?".to_vec().into()))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        Some(Message::Pong(b"still there?".to_vec().into()))
    );

    ws.close(None).await.unwrap();
    match next(&mut ws).await {
        Some(Message::Close(_)) | None => {}
        Some(other) => panic!("nothing but the close after closing: {other:?}"),
    }
    // The origin saw both messages, the ping, then the close.
    let mut messages = Vec::new();
    while messages.len() < 4 {
        if let Seen::Message(m) = next_seen(&mut seen).await {
            messages.push(m);
        }
    }
    assert_eq!(messages[0], Message::text("halo kak"));
    assert!(matches!(messages[2], Message::Ping(_)), "{messages:?}");
    assert!(matches!(messages[3], Message::Close(_)), "{messages:?}");
}

#[tokio::test]
async fn a_message_over_the_limit_closes_both_sides_with_1009() {
    let (origin, mut seen) = websocket_origin().await;
    let (_rules, app) = proxy_for(origin, "[websocket]\nmax_message = \"1KiB\"\n").await;
    let mut ws = connect(app.http_addr, "/live").await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::text("welcome")));
    ws.send(Message::text("x".repeat(1000))).await.unwrap();
    assert!(matches!(next(&mut ws).await, Some(Message::Text(t)) if t.len() == 1006));

    ws.send(Message::text("x".repeat(4096))).await.unwrap();
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Size),
        other => panic!("closed with 1009, got {other:?}"),
    }
    loop {
        match next_seen(&mut seen).await {
            Seen::Message(Message::Close(Some(frame))) => {
                assert_eq!(frame.code, CloseCode::Size);
                break;
            }
            Seen::Message(Message::Text(t)) => assert!(t.len() <= 1024, "never forwarded"),
            Seen::Handshake(..) => {}
            other => panic!("the origin is told why: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_idle_websocket_is_closed_with_1001() {
    let (origin, _seen) = websocket_origin().await;
    let (_rules, app) = proxy_for(origin, "[websocket]\nidle_timeout = \"300ms\"\n").await;
    let mut ws = connect(app.http_addr, "/live").await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::text("welcome")));
    let started = std::time::Instant::now();
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("closed as idle, got {other:?}"),
    }
    assert!(started.elapsed() >= Duration::from_millis(250));
}

#[tokio::test]
async fn with_upgrades_off_the_origin_gets_plain_http() {
    let (origin, mut seen) = websocket_origin().await;
    let (_rules, app) = proxy_for(origin, "[websocket]\nenabled = false\n").await;
    assert!(connect(app.http_addr, "/live").await.is_err());
    let nothing = tokio::time::timeout(Duration::from_millis(300), seen.recv()).await;
    assert!(
        nothing.is_err(),
        "no handshake reached the origin: {nothing:?}"
    );
}

/// An origin that switches any request to a protocol of its own (`Upgrade: echo`) and then
/// sends back every byte it reads, upper-cased.
async fn byte_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
                if !head.contains("upgrade: echo") {
                    let _ = stream
                        .write_all(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
                    .await;
                let mut buf = [0u8; 1024];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0
                        || stream
                            .write_all(&buf[..n].to_ascii_uppercase())
                            .await
                            .is_err()
                    {
                        break;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn another_upgrade_protocol_is_tunnelled_byte_for_byte() {
    let origin = byte_origin().await;
    let (_rules, app) = proxy_for(origin, "").await;
    let mut stream = TcpStream::connect(app.http_addr).await.unwrap();
    stream
        .write_all(b"GET /tunnel HTTP/1.1\r\nhost: shop.test\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .expect("response head in time")
            .unwrap();
        assert_eq!(n, 1, "head ended early: {}", String::from_utf8_lossy(&head));
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");

    for word in ["selamat pagi", "xin chào"] {
        stream.write_all(word.as_bytes()).await.unwrap();
        let mut got = vec![0u8; word.len()];
        tokio::time::timeout(PATIENCE, stream.read_exact(&mut got))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(got, word.to_ascii_uppercase().as_bytes());
    }
}

#[tokio::test]
async fn websocket_over_http2_extended_connect_reaches_an_http1_origin() {
    use http_body_util::Empty;
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use tokio_tungstenite::tungstenite::protocol::Role;

    let (origin, mut seen) = websocket_origin().await;
    // Connections idle for 400 ms are closed; one carrying a tunnel is not idle.
    let rules = RulesDir::new()
        .file("server.toml", "[limits]\nidle_timeout = \"400ms\"\n")
        .site("shop", &site_for(origin, ""));
    let app = start_proxy(&rules).await;
    let tcp = TcpStream::connect(app.http_addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let connect = || {
        let mut req = http::Request::connect("http://shop.test/live")
            .header("sec-websocket-version", "13")
            .body(Empty::<bytes::Bytes>::new())
            .unwrap();
        req.extensions_mut()
            .insert(hyper::ext::Protocol::from_static("websocket"));
        req
    };
    // Extended CONNECT may be sent once the server's SETTINGS allowing it have arrived.
    let mut attempts = 0;
    let mut resp = loop {
        match sender.send_request(connect()).await {
            Ok(resp) => break resp,
            Err(e) if attempts < 40 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(25)).await;
                let _ = e;
            }
            Err(e) => panic!("extended CONNECT refused: {e}"),
        }
    };
    assert_eq!(
        resp.status(),
        http::StatusCode::OK,
        "RFC 8441 accepts with 200"
    );
    assert!(resp.headers().get("sec-websocket-accept").is_none());

    let Seen::Handshake(path, headers) = next_seen(&mut seen).await else {
        panic!("handshake first");
    };
    assert_eq!(path, "/live");
    assert_eq!(headers["upgrade"], "websocket", "an HTTP/1.1 handshake");
    assert!(headers.contains_key("sec-websocket-key"));

    let upgraded = tokio::time::timeout(PATIENCE, hyper::upgrade::on(&mut resp))
        .await
        .expect("stream in time")
        .unwrap();
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    let first = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), Message::text("welcome"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    ws.send(Message::text("สวัสดีครับ")).await.unwrap();
    let echo = tokio::time::timeout(PATIENCE, ws.next()).await.unwrap();
    assert_eq!(echo.unwrap().unwrap(), Message::text("echo: สวัสดีครับ"));
    // Not closed as idle either: the connection still takes new requests.
    let other = http::Request::get("http://elsewhere.test/")
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let resp = tokio::time::timeout(PATIENCE, sender.send_request(other))
        .await
        .expect("answer in time")
        .expect("the connection is still open to new streams");
    assert_eq!(resp.status(), http::StatusCode::MISDIRECTED_REQUEST);
    ws.close(None).await.unwrap();
}
