//! The proxy core end to end: a real origin, edgeseo in front, real HTTP/1.1 and HTTP/2 clients.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn setup(extra: &str) -> (Origin, RulesDir, edgeseo::app::App) {
    let origin = Origin::start().await;
    let rules = RulesDir::new().site("shop", &site_for(origin.addr, extra));
    let app = start_proxy(&rules).await;
    (origin, rules, app)
}

#[tokio::test]
async fn get_and_head_reach_the_origin() {
    let (origin, _rules, app) = setup("").await;
    let client = http1_client();
    let (status, headers, body) = fetch(&client, get(app.http_addr, "shop.test", "/page")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&body).contains("origin page"));
    assert_eq!(headers["via"], "1.1 edgeseo");
    let get_len = body.len();

    let head = Request::head(format!("http://{}/page", app.http_addr))
        .header("host", "shop.test")
        .body(edgeseo::body::empty())
        .unwrap();
    let (status, headers, body) = fetch(&client, head).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(headers["content-length"], get_len.to_string().as_str());
    assert_eq!(origin.count(), 2);
}

#[tokio::test]
async fn host_matching_ignores_port_and_case() {
    let (_origin, _rules, app) = setup("").await;
    let client = http1_client();
    for host in ["shop.test", "SHOP.test:8080", "127.0.0.1:1"] {
        let (status, _, _) = fetch(&client, get(app.http_addr, host, "/")).await;
        assert_eq!(status, StatusCode::OK, "host {host}");
    }
}

#[tokio::test]
async fn unknown_host_is_421_and_never_forwarded() {
    let (origin, _rules, app) = setup("").await;
    let client = http1_client();
    for host in ["evil.example", "shop.test.evil.example", "localhost"] {
        let (status, _, _) = fetch(&client, get(app.http_addr, host, "/")).await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "host {host}");
    }
    // An absolute-form request naming another host is not an open proxy either.
    let mut stream = TcpStream::connect(app.http_addr).await.unwrap();
    stream
        .write_all(
            b"GET http://evil.example/ HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
        )
        .await
        .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 421"), "{reply}");
    assert_eq!(origin.count(), 0);
}

#[tokio::test]
async fn post_bodies_stream_in_both_directions() {
    let (_origin, _rules, app) = setup("").await;
    let (mut tx, body) = channel_body();
    let req = Request::post(format!("http://{}/echo", app.http_addr))
        .header("host", "shop.test")
        .body(body)
        .unwrap();
    let client = http1_client();
    let pending = tokio::spawn(async move { send(&client, req).await });
    // The origin echoes as it reads: each piece must come back before the next one is sent, which
    // is only possible if neither direction is buffered whole.
    tx.send_data(Bytes::from_static(b"first piece;"))
        .await
        .unwrap();
    let resp = pending.await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut received = Vec::new();
    for piece in [&b"second piece;"[..], b"third piece;"] {
        let frame = tokio::time::timeout(PATIENCE, body.frame())
            .await
            .expect("echo arrives before the request body ends")
            .unwrap()
            .unwrap();
        received.extend_from_slice(frame.data_ref().unwrap());
        tx.send_data(Bytes::from_static(piece)).await.unwrap();
    }
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    received.extend_from_slice(&rest);
    assert_eq!(received, b"first piece;second piece;third piece;");
}

#[tokio::test]
async fn large_response_streams_before_the_origin_finishes() {
    let (origin, _rules, app) = setup("").await;
    let client = http1_client();
    let resp = send(&client, get(app.http_addr, "shop.test", "/stream")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body();
    let mut received = 0usize;
    // The origin holds back the last 3 MiB until released: the first MiB must arrive first.
    while received < STREAM_FIRST {
        let frame = tokio::time::timeout(PATIENCE, body.frame())
            .await
            .expect("first bytes arrive while the origin is still sending")
            .unwrap()
            .unwrap();
        received += frame.data_ref().map_or(0, |d| d.len());
    }
    origin.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(received + rest.len(), STREAM_FIRST + STREAM_REST);
    assert!(rest.iter().rev().take(10).all(|&b| b == b'b'));
}

#[tokio::test]
async fn multi_megabyte_upload_is_forwarded_whole() {
    let (_origin, _rules, app) = setup("[limits]\nmax_request_body = \"16MiB\"\n").await;
    let payload: Vec<u8> = (0..6_000_000u32).map(|i| (i % 251) as u8).collect();
    let req = Request::post(format!("http://{}/echo", app.http_addr))
        .header("host", "shop.test")
        .body(full_body(payload.clone()))
        .unwrap();
    let (status, _, body) = fetch(&http1_client(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), payload.len());
    assert!(body == payload, "echoed body differs");
}

#[tokio::test]
async fn chunked_response_passes_through() {
    let (_origin, _rules, app) = setup("").await;
    let (status, headers, body) =
        fetch(&http1_client(), get(app.http_addr, "shop.test", "/chunked")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["transfer-encoding"], "chunked");
    assert_eq!(&body[..], b"chunk0;chunk1;chunk2;chunk3;chunk4;");
}

#[tokio::test]
async fn http2_client_is_served_and_origin_gets_http11() {
    let (_origin, _rules, app) = setup("").await;
    let client = h2c_client();
    let req = Request::get(format!("http://shop.test:{}/headers", app.http_addr.port()))
        .body(edgeseo::body::empty())
        .unwrap();
    // The request goes to the proxy's address while its :authority names the site.
    let mut req = req;
    *req.uri_mut() = format!("http://127.0.0.1:{}/headers", app.http_addr.port())
        .parse()
        .unwrap();
    let resp = send(&client, req).await;
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    assert!(text.starts_with("GET /headers HTTP/1.1"), "{text}");
    assert!(text.contains("via: 2 edgeseo"), "{text}");
}

#[tokio::test]
async fn origin_down_is_502() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let rules = RulesDir::new().site("shop", &site_for(closed, ""));
    let app = start_proxy(&rules).await;
    let (status, headers, body) =
        fetch(&http1_client(), get(app.http_addr, "shop.test", "/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(&body[..], b"502 Bad Gateway\n");
}

#[tokio::test]
async fn slow_origin_is_504() {
    let (_origin, _rules, app) = setup("").await;
    let started = std::time::Instant::now();
    let (status, _, _) = fetch(&http1_client(), get(app.http_addr, "shop.test", "/slow")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "timed out at the configured 1 s"
    );
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let (origin, _rules, app) = setup("[limits]\nmax_request_body = \"1KiB\"\n").await;
    let client = http1_client();
    let declared = Request::post(format!("http://{}/echo", app.http_addr))
        .header("host", "shop.test")
        .body(full_body(vec![b'x'; 4096]))
        .unwrap();
    let (status, _, _) = fetch(&client, declared).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        origin.count(),
        0,
        "a declared oversized body is refused before forwarding"
    );

    // A chunked body has no declared length: the limit trips while streaming.
    let (mut tx, body) = channel_body();
    let chunked = Request::post(format!("http://{}/headers", app.http_addr))
        .header("host", "shop.test")
        .body(body)
        .unwrap();
    tokio::spawn(async move {
        for _ in 0..8 {
            if tx.send_data(Bytes::from(vec![b'y'; 512])).await.is_err() {
                break;
            }
        }
    });
    let (status, _, _) = fetch(&http1_client(), chunked).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_and_forwarding_headers_added() {
    let (_origin, _rules, app) = setup("").await;
    let client = http1_client();
    let req = Request::get(format!("http://{}/headers", app.http_addr))
        .header("host", "shop.test:8080")
        .header("connection", "x-client-hop")
        .header("x-client-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-kept", "yes")
        .body(edgeseo::body::empty())
        .unwrap();
    let (_, _, body) = fetch(&client, req).await;
    let seen = String::from_utf8(body.to_vec()).unwrap();
    for gone in ["x-client-hop", "keep-alive", "proxy-authorization"] {
        assert!(
            !seen.contains(&format!("{gone}:")),
            "{gone} forwarded:\n{seen}"
        );
    }
    assert!(seen.contains("x-kept: yes"));
    assert!(
        seen.contains("x-forwarded-for: 198.51.100.7, 127.0.0.1"),
        "{seen}"
    );
    assert!(seen.contains("x-forwarded-proto: http"));
    assert!(seen.contains("x-forwarded-host: shop.test:8080"));
    assert!(seen.contains("via: 1.1 edgeseo"));
    // Upstream Host is the origin's own authority unless the site says otherwise.
    assert!(seen.contains(&format!("host: {}", _origin.addr)), "{seen}");

    let (_, headers, _) = fetch(&client, get(app.http_addr, "shop.test", "/hop")).await;
    assert!(!headers.contains_key("x-origin-hop"));
    assert!(!headers.contains_key("keep-alive"));
    assert_eq!(headers["x-kept"], "yes");
}

#[tokio::test]
async fn configured_upstream_host_header_is_sent() {
    let origin = Origin::start().await;
    let site = format!(
        "hosts = [\"shop.test\"]\n[origin]\nurl = \"http://{}\"\nhost = \"www.supplier.example\"\n",
        origin.addr
    );
    let rules = RulesDir::new().site("shop", &site);
    let app = start_proxy(&rules).await;
    let (_, _, body) = fetch(&http1_client(), get(app.http_addr, "shop.test", "/headers")).await;
    let seen = String::from_utf8(body.to_vec()).unwrap();
    assert!(seen.contains("host: www.supplier.example\n"), "{seen}");
}

#[tokio::test]
async fn oversized_request_head_is_431() {
    let (_origin, _rules, app) = setup("").await;
    let req = Request::get(format!("http://{}/", app.http_addr))
        .header("host", "shop.test")
        .header("x-big", "z".repeat(100 * 1024))
        .body(edgeseo::body::empty())
        .unwrap();
    let (status, _, _) = fetch(&http1_client(), req).await;
    assert_eq!(status, StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
}

#[tokio::test]
async fn slow_request_head_is_cut_off() {
    let origin = Origin::start().await;
    let rules = RulesDir::new()
        .site("shop", &site_for(origin.addr, ""))
        .file(
            "server.toml",
            "[limits]\nheader_read_timeout = \"300ms\"\nidle_timeout = \"400ms\"\n",
        );
    let app = start_proxy(&rules).await;

    // Slowloris: a head that never completes.
    let mut stream = TcpStream::connect(app.http_addr).await.unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: shop.test\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "connection with an incomplete head is closed"
    );

    // An idle keep-alive connection is closed too.
    let mut stream = TcpStream::connect(app.http_addr).await.unwrap();
    stream
        .write_all(b"GET /page HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "idle keep-alive connection is closed");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

/// Reads one response (head and a `Content-Length` body) from a keep-alive connection.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("response in time")
            .unwrap();
        assert!(
            n > 0,
            "connection closed early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn keep_alive_connections_wait_idle_timeout_not_header_read_timeout() {
    let origin = Origin::start().await;
    let rules = RulesDir::new()
        .site("shop", &site_for(origin.addr, ""))
        .file(
            "server.toml",
            "[limits]\nheader_read_timeout = \"300ms\"\nidle_timeout = \"2s\"\n",
        );
    let app = start_proxy(&rules).await;
    let mut stream = TcpStream::connect(app.http_addr).await.unwrap();
    let request = b"GET /page HTTP/1.1\r\nHost: shop.test\r\n\r\n";
    stream.write_all(request).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Well past the header timeout, within the idle one: the connection still serves.
    tokio::time::sleep(Duration::from_millis(900)).await;
    stream.write_all(request).await.unwrap();
    assert!(read_response(&mut stream).await.starts_with("HTTP/1.1 200"));
    // Then, idle for the idle timeout, it is closed.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(6), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "closed after idle_timeout");
}

#[tokio::test]
async fn an_http2_connection_answering_pings_is_still_closed_when_idle() {
    let origin = Origin::start().await;
    let rules = RulesDir::new()
        .site("shop", &site_for(origin.addr, ""))
        .file("server.toml", "[limits]\nidle_timeout = \"1s\"\n");
    let app = start_proxy(&rules).await;
    let tcp = TcpStream::connect(app.http_addr).await.unwrap();
    // hyper's client answers the server's pings (sent every half idle timeout) by itself.
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    let connection = tokio::spawn(connection);
    let req = Request::get(format!("http://{}/page", app.http_addr))
        .body(edgeseo::body::empty())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(6), connection).await;
    assert!(ended.is_ok(), "the server closed the idle connection");
}

#[tokio::test]
async fn a_half_sent_http2_header_block_is_cut_off_like_an_http1_head() {
    let origin = Origin::start().await;
    let rules = RulesDir::new()
        .site("shop", &site_for(origin.addr, ""))
        .file(
            "server.toml",
            "[limits]\nheader_read_timeout = \"300ms\"\nidle_timeout = \"30s\"\n",
        );
    let app = start_proxy(&rules).await;
    let mut stream = TcpStream::connect(app.http_addr).await.unwrap();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS (empty), then HEADERS on stream 1 with END_STREAM but not END_HEADERS: the
    // block stays open, waiting for a CONTINUATION that never comes.
    bytes.extend_from_slice(&[0, 0, 0, 0x4, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[0, 0, 1, 0x1, 0x1, 0, 0, 0, 1, 0x82]);
    stream.write_all(&bytes).await.unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "closed after header_read_timeout, not idle_timeout"
    );
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let origin = Origin::start().await;
    let site = format!(
        "hosts = [\"shop.test\"]\n[origin]\nurl = \"http://{}\"\nresponse_timeout = \"10s\"\n",
        origin.addr
    );
    let rules = RulesDir::new().site("shop", &site);
    let app = start_proxy(&rules).await;
    let addr = app.http_addr;
    let client = http1_client();
    let in_flight =
        tokio::spawn(async move { fetch(&client, get(addr, "shop.test", "/slow")).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::time::timeout(PATIENCE, app.shutdown())
        .await
        .expect("drains in time");
    let (status, _, body) = in_flight.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"slow");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn broken_reload_keeps_the_old_rules() {
    let (origin, rules, app) = setup("").await;
    std::fs::write(
        rules.path().join("shop/site.toml"),
        "hosts = [\"shop.test\"\n",
    )
    .unwrap();
    let err = app.reload("test").unwrap_err().to_string();
    assert!(err.contains("site.toml:1:"), "{err}");
    let (status, _, _) = fetch(&http1_client(), get(app.http_addr, "shop.test", "/")).await;
    assert_eq!(status, StatusCode::OK);

    std::fs::write(
        rules.path().join("shop/site.toml"),
        site_for(origin.addr, "").replace("shop.test", "new.test"),
    )
    .unwrap();
    app.reload("test").unwrap();
    let (status, _, _) = fetch(&http1_client(), get(app.http_addr, "new.test", "/")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = fetch(&http1_client(), get(app.http_addr, "shop.test", "/")).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
}
