//! Compression at the edge: text the origin sends uncompressed reaches clients in the coding they
//! prefer, streams as it is compressed, and is cached once per coding.

mod common;

use std::time::Duration;

use common::*;
use edgeseo::codec::{Coding, Decoder};
use http::{Request, StatusCode};
use http_body_util::BodyExt;

/// A script of about 30 KB: text that compresses well, as real scripts do.
fn script() -> String {
    (0..600)
        .map(|i| format!("function handler{i}(event) {{ return event.target.value + {i}; }}\n"))
        .collect()
}

fn request(
    app: &edgeseo::app::App,
    host: &str,
    path: &str,
    accept: Option<&str>,
) -> Request<edgeseo::body::Body> {
    let mut req = Request::get(format!("http://{}{path}", app.http_addr)).header("host", host);
    if let Some(accept) = accept {
        req = req.header("accept-encoding", accept);
    }
    req.body(edgeseo::body::empty()).unwrap()
}

/// edgeseo in front of `origin` as a plain (not localized) site for `shop.test`, with `extra`
/// site.toml lines; the rules directory lives as long as the returned guard.
async fn plain_site(origin: &Origin, extra: &str) -> (RulesDir, edgeseo::app::App) {
    let rules = RulesDir::new().site("plain", &site_for(origin.addr, extra));
    let app = start_proxy(&rules).await;
    (rules, app)
}

#[tokio::test]
async fn text_is_compressed_in_the_coding_the_client_prefers() {
    let origin = Origin::start().await;
    let js = script();
    let png: Vec<u8> = (0..20_000u32).map(|i| (i * 31 % 251) as u8).collect();
    origin.serve(
        "/app.js",
        CannedPage::new("application/javascript", js.clone())
            .header("etag", "\"v1\"")
            .header("accept-ranges", "bytes"),
    );
    origin.serve("/logo.png", CannedPage::new("image/png", png.clone()));
    origin.serve("/tiny.css", CannedPage::new("text/css", "body{margin:0}"));
    origin.serve(
        "/raw.txt",
        CannedPage::new("text/plain", js.clone()).header("cache-control", "no-transform"),
    );
    let (_rules, app) = plain_site(&origin, "").await;
    let client = http1_client();

    for (accept, expected) in [
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("gzip"), Some("gzip")),
        (Some("zstd;q=1, br;q=0.5"), Some("zstd")),
        (Some("br;q=0, gzip;q=0.3"), Some("gzip")),
        (Some("deflate"), None),
        (None, None),
    ] {
        let (status, headers, body) =
            fetch(&client, request(&app, "shop.test", "/app.js", accept)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.get("content-encoding").map(|v| v.to_str().unwrap()),
            expected,
            "{accept:?}"
        );
        assert_eq!(decode(&headers, &body), js.as_bytes(), "{accept:?}");
        if let Some(expected) = expected {
            assert!(
                body.len() * 5 < js.len(),
                "{accept:?}: {} bytes",
                body.len()
            );
            assert_eq!(headers["vary"], "Accept-Encoding");
            assert_eq!(
                headers["etag"], "W/\"v1\"",
                "a changed body keeps a weak validator"
            );
            assert!(!headers.contains_key("content-length"));
            assert!(!headers.contains_key("accept-ranges"));
            // The origin is asked for the client's coding only.
            let asked = origin.last_headers("/app.js").unwrap();
            assert_eq!(asked["accept-encoding"], expected);
        } else {
            assert_eq!(headers["content-length"], js.len().to_string());
            assert_eq!(headers["etag"], "\"v1\"");
        }
    }

    // Images, bodies too small to gain, and responses that forbid transformation pass as sent.
    for (path, len) in [
        ("/logo.png", png.len()),
        ("/tiny.css", 14),
        ("/raw.txt", js.len()),
    ] {
        let accept = Some("gzip, br, zstd");
        let (_, headers, body) = fetch(&client, request(&app, "shop.test", path, accept)).await;
        assert!(!headers.contains_key("content-encoding"), "{path}");
        assert_eq!(body.len(), len, "{path}");
    }
}

#[tokio::test]
async fn compression_can_be_turned_off_per_site() {
    let origin = Origin::start().await;
    let js = script();
    origin.serve(
        "/app.js",
        CannedPage::new("application/javascript", js.clone()),
    );
    let (_rules, app) = plain_site(&origin, "[compress]\nenabled = false\n").await;
    let (_, headers, body) = fetch(
        &http1_client(),
        request(&app, "shop.test", "/app.js", Some("br, gzip")),
    )
    .await;
    assert!(!headers.contains_key("content-encoding"));
    assert_eq!(body, js.as_bytes());
}

#[tokio::test]
async fn each_coding_is_cached_once_and_hits_serve_the_stored_bytes() {
    let origin = Origin::start().await;
    let js = script();
    origin.serve(
        "/app.js",
        CannedPage::new("application/javascript", js.clone())
            .header("cache-control", "max-age=600"),
    );
    let (_rules, app) = plain_site(&origin, "").await;
    let client = http1_client();
    let codings = [Some("br"), Some("gzip"), Some("zstd"), None];
    let mut first = Vec::new();
    for accept in codings {
        let (_, headers, body) =
            fetch(&client, request(&app, "shop.test", "/app.js", accept)).await;
        assert_eq!(headers["x-edgeseo-cache"], "MISS", "{accept:?}");
        first.push(body);
    }
    assert_eq!(origin.count(), 4, "one origin fetch per coding");
    for (accept, stored) in codings.into_iter().zip(&first) {
        let (_, headers, body) =
            fetch(&client, request(&app, "shop.test", "/app.js", accept)).await;
        assert_eq!(headers["x-edgeseo-cache"], "HIT", "{accept:?}");
        assert_eq!(
            &body, stored,
            "{accept:?}: the stored bytes, not compressed again"
        );
        assert_eq!(
            headers.get("content-encoding").map(|v| v.to_str().unwrap()),
            accept
        );
        assert_eq!(decode(&headers, &body), js.as_bytes());
    }
    assert_eq!(origin.count(), 4);
}

/// The first part of a page reaches the client, decodable, while the origin still holds the rest.
#[tokio::test]
async fn compressed_responses_still_stream() {
    let origin = Origin::start().await;
    let js = script();
    let mut slow = CannedPage::new("application/javascript", js.clone());
    slow.hold_after_first = Some(8 * 1024);
    origin.serve("/slow.js", slow);
    let (_rules, app) = plain_site(&origin, "").await;
    for coding in [Coding::Brotli, Coding::Gzip, Coding::Zstd] {
        let resp = send(
            &http1_client(),
            request(&app, "shop.test", "/slow.js", Some(coding.name())),
        )
        .await;
        assert_eq!(resp.headers()["content-encoding"], coding.name());
        let mut body = resp.into_body();
        let mut decoder = Decoder::new(coding);
        let mut seen = Vec::new();
        while seen.len() < 8 * 1024 {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .unwrap_or_else(|_| panic!("{coding:?}: the first part was held back"))
                .expect("more body")
                .expect("body reads");
            if let Ok(data) = frame.into_data() {
                seen.extend_from_slice(&decoder.push(&data).unwrap());
            }
        }
        assert_eq!(&seen[..], &js.as_bytes()[..seen.len()], "{coding:?}");
        origin.release.notify_one();
        while let Some(frame) = tokio::time::timeout(PATIENCE, body.frame()).await.unwrap() {
            if let Ok(data) = frame.unwrap().into_data() {
                seen.extend_from_slice(&decoder.push(&data).unwrap());
            }
        }
        seen.extend(decoder.finish().unwrap());
        assert_eq!(seen, js.as_bytes(), "{coding:?}");
    }
}

/// The demo's pages, its sitemap and the scripts edgeseo serves go out compressed.
#[tokio::test]
async fn the_demo_and_its_edge_scripts_are_compressed() {
    let app = start_demo().await;
    let client = http1_client();
    for path in [
        "/id/products/air-fryer-4-5l",
        "/sitemap.xml",
        "/__edgeseo/widget.js",
        "/__edgeseo/locale.js",
    ] {
        let (status, headers, body) = fetch(
            &client,
            request(&app, "127.0.0.1", path, Some("gzip, deflate, br, zstd")),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert_eq!(headers["content-encoding"], "br", "{path}");
        let plain = decode(&headers, &body);
        assert!(
            plain.len() > body.len() * 2,
            "{path}: {} → {}",
            plain.len(),
            body.len()
        );
    }
}
