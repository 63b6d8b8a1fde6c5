//! What an attacker or a broken client sends, through real sockets: conflicting hosts, tunnels,
//! malformed bodies, dot segments, forged `Forwarded`, Host headers that would poison the cache,
//! cookies that personalise a page, and rule files that only look valid.

mod common;

use std::net::SocketAddr;

use common::*;
use http::{Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes on a fresh connection and reads until the server closes it.
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut reply))
        .await
        .expect("reply in time")
        .unwrap();
    String::from_utf8_lossy(&reply).into_owned()
}

fn status_line(reply: &str) -> &str {
    reply.lines().next().unwrap_or("")
}

async fn plain_site(extra: &str) -> (Origin, RulesDir, edgeseo::app::App) {
    let origin = Origin::start().await;
    let rules = RulesDir::new().site("shop", &site_for(origin.addr, extra));
    let app = start_proxy(&rules).await;
    (origin, rules, app)
}

#[tokio::test]
async fn ambiguous_hosts_and_tunnels_are_refused_before_the_origin() {
    let (origin, _rules, app) = plain_site("").await;
    let cases: [(&[u8], &str); 4] = [
        (
            b"GET / HTTP/1.1\r\nHost: shop.test\r\nHost: evil.example\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: shop.test evil\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: user@shop.test\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            b"CONNECT shop.test:443 HTTP/1.1\r\nHost: shop.test:443\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 405",
        ),
    ];
    for (request, want) in cases {
        let reply = raw(app.http_addr, request).await;
        assert!(
            status_line(&reply).starts_with(want),
            "{}\n→ {reply}",
            String::from_utf8_lossy(request)
        );
        if want.ends_with("405") {
            assert!(
                reply.to_ascii_lowercase().contains("\r\nallow: get"),
                "{reply}"
            );
        }
    }
    assert_eq!(origin.count(), 0, "nothing reached the origin");
}

#[tokio::test]
async fn http2_authority_and_host_that_disagree_are_400() {
    let (origin, _rules, app) = plain_site("").await;
    let client = h2c_client();
    let request = |host: &str| {
        // :authority comes from the URI; the Host header is sent as well.
        Request::get(format!("http://{}/page", app.http_addr))
            .header("host", host)
            .body(full_body(""))
            .unwrap()
    };
    let (status, _, _) = fetch(&client, request("shop.test")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = fetch(&client, request(&app.http_addr.to_string())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn a_malformed_chunked_body_from_the_client_is_400_not_502() {
    let (_origin, _rules, app) = plain_site("").await;
    let reply = raw(
        app.http_addr,
        b"POST /echo HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n",
    )
    .await;
    assert!(status_line(&reply).starts_with("HTTP/1.1 400"), "{reply}");
}

#[tokio::test]
async fn dot_segments_are_resolved_before_routing_and_never_sent_upstream() {
    let origin = Origin::start().await;
    origin.serve(
        "/page",
        CannedPage::html(
            "<!DOCTYPE html><html><head><title>Page</title></head><body><p>Hello</p></body></html>",
        ),
    );
    let rules = fixture_site(origin.addr, |s| s);
    let app = start_proxy(&rules).await;
    let reply = raw(
        app.http_addr,
        b"GET /vi/../id/./page HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status_line(&reply).starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply.contains("lang=\"id"),
        "rendered in Indonesian: {reply}"
    );
    assert!(
        origin.last_headers("/page").is_some(),
        "origin asked for /page"
    );
    // Escaped dots are dots, and `..` above the root stays at the root.
    let reply = raw(
        app.http_addr,
        b"GET /th/%2e%2E/../../page HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status_line(&reply).starts_with("HTTP/1.1 200"), "{reply}");
    let seen = origin.seen.lock().unwrap();
    assert!(
        seen.keys().all(|p| !p.contains("..") && !p.contains("%2e")),
        "{:?}",
        seen.keys()
    );
}

#[tokio::test]
async fn a_clients_forwarded_header_is_replaced_not_passed_on() {
    let (origin, _rules, app) = plain_site("").await;
    let req = Request::get(format!("http://{}/headers", app.http_addr))
        .header("host", "shop.test")
        .header("forwarded", "for=10.0.0.1;by=trusted-lb")
        .body(full_body(""))
        .unwrap();
    let (status, _, body) = fetch(&http1_client(), req).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("forwarded: for=127.0.0.1;proto=http;host=\"shop.test\""),
        "{text}"
    );
    assert!(!text.contains("10.0.0.1"), "{text}");
    drop(origin);
}

fn cacheable_page(text: &str) -> CannedPage {
    CannedPage::html(format!(
        "<!DOCTYPE html><html><head><title>{text}</title></head><body><p>{text}</p></body></html>"
    ))
    .header("cache-control", "max-age=300")
}

fn canonical(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let start = text.find("rel=\"canonical\"").expect("a canonical link");
    let tag_start = text[..start].rfind('<').unwrap();
    let tag_end = start + text[start..].find('>').unwrap();
    let tag = &text[tag_start..tag_end];
    let href = tag.split("href=\"").nth(1).unwrap();
    href[..href.find('"').unwrap()].to_string()
}

#[tokio::test]
async fn another_host_header_never_changes_what_the_next_visitor_gets() {
    let origin = Origin::start().await;
    origin.serve("/page", cacheable_page("Page"));
    // Without public_origin the page's absolute URLs come from the request.
    let rules = fixture_site(origin.addr, |s| {
        s.replace("public_origin = \"https://shop.example\"\n", "")
    });
    let app = start_proxy(&rules).await;
    let client = http1_client();
    let (status, _, body) = fetch(&client, get(app.http_addr, "localhost:1", "/id/page")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(canonical(&body), "http://localhost:1/id/page");
    for host in ["shop.test", "SHOP.test.", "shop.test:80"] {
        let (status, headers, body) = fetch(&client, get(app.http_addr, host, "/id/page")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(canonical(&body), "http://shop.test/id/page", "Host {host}");
        if host != "shop.test" {
            assert_eq!(headers["x-edgeseo-cache"], "HIT", "Host {host}");
        }
    }
    assert_eq!(origin.count(), 2, "one fill per page address");
}

#[tokio::test]
async fn cookies_keep_personal_pages_out_of_the_shared_cache() {
    let origin = Origin::start().await;
    origin.serve("/private", cacheable_page("private"));
    origin.serve(
        "/public",
        cacheable_page("public").header("cache-control", "public"),
    );
    let (_o, _rules, app) = {
        let rules = RulesDir::new().site("shop", &site_for(origin.addr, ""));
        let app = start_proxy(&rules).await;
        ((), rules, app)
    };
    let client = http1_client();
    let with_cookie = |path: &str, cookie: &str| {
        Request::get(format!("http://{}{path}", app.http_addr))
            .header("host", "shop.test")
            .header("cookie", cookie)
            .body(full_body(""))
            .unwrap()
    };
    // A cart cookie: the response could be personal, so it neither fills nor reads the entry.
    let (_, h, _) = fetch(&client, with_cookie("/private", "cart=42; _ga=GA1.1")).await;
    assert_eq!(h["x-edgeseo-cache"], "BYPASS");
    let (_, h, _) = fetch(&client, get(app.http_addr, "shop.test", "/private")).await;
    assert_eq!(h["x-edgeseo-cache"], "MISS");
    let (_, h, _) = fetch(&client, with_cookie("/private", "cart=42")).await;
    assert_eq!(
        h["x-edgeseo-cache"], "BYPASS",
        "a stored page is not served to it"
    );
    // Analytics cookies and edgeseo's own cookie change nothing.
    let (_, h, _) = fetch(
        &client,
        with_cookie("/private", "_ga=1; _gid=2; edgeseo_locale=id"),
    )
    .await;
    assert_eq!(h["x-edgeseo-cache"], "HIT");
    // What the origin marks public is shared whatever the cookies.
    let (_, h, _) = fetch(&client, with_cookie("/public", "cart=42")).await;
    assert_eq!(h["x-edgeseo-cache"], "MISS");
    let (_, h, _) = fetch(&client, with_cookie("/public", "cart=7")).await;
    assert_eq!(h["x-edgeseo-cache"], "HIT");
}

#[tokio::test]
async fn a_garbage_geoip_database_is_refused_by_check_with_its_position() {
    let origin = Origin::start().await;
    for (name, bytes) in [
        ("empty", &b""[..]),
        ("garbage", &b"this is not a MaxMind database\n"[..]),
        (
            "truncated",
            &include_bytes!("../geoip/iptoasn-country.mmdb")[..4096],
        ),
    ] {
        let rules = fixture_site(origin.addr, |s| {
            s.replace(
                "suggest = \"banner\"",
                "suggest = \"banner\"\ngeoip = \"bad.mmdb\"",
            )
        })
        .file("shop/bad.mmdb", "");
        std::fs::write(rules.path().join("shop/bad.mmdb"), bytes).unwrap();
        let err = edgeseo::config::Rules::load(rules.path())
            .expect_err(name)
            .to_string();
        assert!(err.contains("site.toml:"), "{name}: {err}");
        assert!(err.contains("GeoIP database"), "{name}: {err}");
    }
}

/// Log lines written while the guard lives, on this thread (tokio tests run on one thread).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    /// A plain-text subscriber writing here.
    fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish()
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn an_origin_dying_mid_stream_is_logged_and_the_client_sees_a_cut() {
    let logs = Captured::default();
    let _guard = tracing::subscriber::set_default(logs.subscriber());

    // An origin that promises 100,000 bytes, sends 1,000 and hangs up.
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = tcp.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = tcp.accept().await {
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head).await;
            let mut reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\n".to_vec();
            reply.extend_from_slice(&[b'x'; 1000]);
            let _ = stream.write_all(&reply).await;
        }
    });
    let rules = RulesDir::new().site("shop", &site_for(origin, ""));
    let app = start_proxy(&rules).await;
    let resp = send(
        &http1_client(),
        get(app.http_addr, "shop.test", "/file.bin"),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = tokio::time::timeout(PATIENCE, http_body_util::BodyExt::collect(resp.into_body()))
        .await
        .expect("ends in time");
    assert!(
        body.is_err(),
        "the client must not take a cut body for a whole one"
    );
    let text = logs.text();
    assert!(
        text.contains("origin response cut off mid-stream"),
        "{text}"
    );
    assert!(text.contains("shop"), "{text}");
}

/// 200 MiB of zeros as gzip (about 200 KB): what a broken or hostile origin can send as a page.
fn gzip_bomb() -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(b"<!DOCTYPE html><html><head><title>x</title></head><body><p>")
        .unwrap();
    let zeros = vec![b'0'; 1 << 20];
    for _ in 0..200 {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decompression_bomb_is_cut_and_other_visitors_are_served_meanwhile() {
    let logs = Captured::default();
    // Global for this test binary: the bomb is decoded on the runtime's worker threads.
    let _ = tracing::subscriber::set_global_default(logs.subscriber());

    let origin = Origin::start().await;
    origin.serve(
        "/bomb",
        CannedPage::html(gzip_bomb()).header("content-encoding", "gzip"),
    );
    origin.serve("/page", cacheable_page("Page"));
    let rules = fixture_site(origin.addr, |s| s);
    let app = start_proxy(&rules).await;
    let addr = app.http_addr;

    let bombs: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(async move {
                // Cut before the head was sent, the client sees an incomplete message.
                let Ok(resp) = http1_client()
                    .request(get(addr, "shop.test", "/id/bomb"))
                    .await
                else {
                    return 0;
                };
                let mut body = resp.into_body();
                let mut received = 0usize;
                while let Some(frame) = http_body_util::BodyExt::frame(&mut body).await {
                    match frame {
                        Ok(f) => received += f.data_ref().map_or(0, |d| d.len()),
                        Err(_) => break,
                    }
                }
                received
            })
        })
        .collect();
    // Meanwhile another visitor is answered.
    let (status, _, _) = tokio::time::timeout(
        PATIENCE,
        fetch(&http1_client(), get(addr, "shop.test", "/id/page")),
    )
    .await
    .expect("served while the bombs are handled");
    assert_eq!(status, StatusCode::OK);
    for bomb in bombs {
        let received = tokio::time::timeout(PATIENCE, bomb).await.unwrap().unwrap();
        assert!(
            (received as u64) < edgeseo::codec::MAX_DECODED,
            "cut before the limit: {received} bytes"
        );
    }
    let text = logs.text();
    assert!(text.contains("decoded body exceeds"), "{text}");
}

#[tokio::test]
async fn a_short_admin_token_from_the_environment_is_refused_like_one_in_server_toml() {
    let origin = Origin::start().await;
    let rules = RulesDir::new().site("shop", &site_for(origin.addr, ""));
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_edgeseo"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--rules",
        ])
        .arg(rules.path())
        .env("EDGESEO_ADMIN_TOKEN", "short-token")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(PATIENCE, run)
        .await
        .expect("refused at once")
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 16 characters"), "{err}");
}
