//! The page cache through real sockets: a counting origin, edgeseo with its admin listener, and
//! HTTP clients.

mod common;

use std::time::Duration;

use common::*;
use edgeseo::app::App;
use http::{Request, StatusCode};
use http_body_util::BodyExt;

const TOKEN: &str = "test-admin-token-0123456789";

/// The fixture site (localized) plus a plain site, both in front of `origin`.
fn rules_for(origin: std::net::SocketAddr, server_toml: &str, cache_toml: &str) -> RulesDir {
    fixture_site(origin, |site| format!("{site}\n[cache]\n{cache_toml}"))
        .site(
            "plain",
            &format!("hosts = [\"plain.test\"]\n[origin]\nurl = \"http://{origin}\"\n[cache]\n{cache_toml}"),
        )
        .file("server.toml", &format!("[admin]\ntoken = \"{TOKEN}\"\n{server_toml}"))
}

fn page(cache_control: &str, text: &str) -> CannedPage {
    CannedPage::html(format!(
        "<!DOCTYPE html><html><head><title>{text}</title></head><body><p>{text}</p></body></html>"
    ))
    .header("cache-control", cache_control)
}

async fn hit(app: &App, host: &str, path: &str) -> (StatusCode, http::HeaderMap, String) {
    let (status, headers, body) = fetch(&http1_client(), get(app.http_addr, host, path)).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn cache_status(headers: &http::HeaderMap) -> &str {
    headers["x-edgeseo-cache"].to_str().unwrap()
}

#[tokio::test]
async fn hit_after_miss_with_age_and_head_from_the_get_entry() {
    let origin = Origin::start().await;
    origin.serve("/about", page("public, max-age=60", "about"));
    let rules = rules_for(origin.addr, "", "");
    let app = start_with_admin(&rules).await;
    let (_, h1, first) = hit(&app, "shop.test", "/about").await;
    assert_eq!(cache_status(&h1), "MISS");
    let (_, h2, second) = hit(&app, "shop.test", "/about").await;
    assert_eq!(cache_status(&h2), "HIT");
    assert!(h2.contains_key("age"));
    assert_eq!(first, second, "the hit is the rendered page");
    assert!(second.contains("lang=\"en\""));
    assert_eq!(origin.count(), 1);

    let head = Request::head(format!("http://{}/about", app.http_addr))
        .header("host", "shop.test")
        .body(edgeseo::body::empty())
        .unwrap();
    let (status, headers, body) = fetch(&http1_client(), head).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache_status(&headers), "HIT");
    assert_eq!(headers["content-length"], second.len().to_string().as_str());
    assert!(body.is_empty());
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn locales_sites_and_codings_never_share_an_entry() {
    let origin = Origin::start().await;
    origin.serve("/about", page("public, max-age=60", "about"));
    let rules = rules_for(origin.addr, "", "");
    let app = start_with_admin(&rules).await;
    let (_, en, en_body) = hit(&app, "shop.test", "/about").await;
    let (_, id, id_body) = hit(&app, "shop.test", "/id/about").await;
    let (_, plain, plain_body) = hit(&app, "plain.test", "/about").await;
    for h in [&en, &id, &plain] {
        assert_eq!(cache_status(h), "MISS");
    }
    assert_eq!(origin.count(), 3);
    assert!(en_body.contains("lang=\"en\"") && id_body.contains("lang=\"id-ID\""));
    assert!(
        !plain_body.contains("hreflang"),
        "the plain site is not rewritten"
    );
    for (host, path, body) in [
        ("shop.test", "/about", &en_body),
        ("shop.test", "/id/about", &id_body),
        ("plain.test", "/about", &plain_body),
    ] {
        let (_, h, again) = hit(&app, host, path).await;
        assert_eq!(cache_status(&h), "HIT", "{host}{path}");
        assert_eq!(&again, body, "{host}{path}");
    }
    // A client that accepts gzip gets its own variant.
    let gz = Request::get(format!("http://{}/about", app.http_addr))
        .header("host", "shop.test")
        .header("accept-encoding", "gzip")
        .body(edgeseo::body::empty())
        .unwrap();
    let (_, h, _) = fetch(&http1_client(), gz).await;
    assert_eq!(cache_status(&h), "MISS");
    assert_eq!(origin.count(), 4);
}

#[tokio::test]
async fn assets_are_shared_across_locales() {
    let origin = Origin::start().await;
    origin.serve(
        "/style.css",
        CannedPage::new("text/css", "body{}").header("cache-control", "max-age=600"),
    );
    let rules = rules_for(origin.addr, "", "");
    let app = start_with_admin(&rules).await;
    let (_, h, _) = hit(&app, "shop.test", "/id/style.css").await;
    assert_eq!(cache_status(&h), "MISS");
    let (_, h, body) = hit(&app, "shop.test", "/th/style.css").await;
    assert_eq!(cache_status(&h), "HIT");
    assert_eq!(body, "body{}");
    assert_eq!(origin.count(), 1);
}

#[tokio::test]
async fn personal_and_failed_responses_are_not_stored() {
    let origin = Origin::start().await;
    origin.serve(
        "/cookie",
        page("public, max-age=60", "c").header("set-cookie", "sid=abc"),
    );
    origin.serve("/private", page("private, max-age=60", "p"));
    origin.serve("/nostore", page("no-store", "n"));
    origin.serve("/vary", page("max-age=60", "v").header("vary", "Cookie"));
    origin.serve("/error", page("max-age=60", "e").status(500));
    let rules = rules_for(origin.addr, "", "session_cookies = [\"PHPSESSID\"]");
    let app = start_with_admin(&rules).await;
    for path in ["/cookie", "/private", "/nostore", "/vary", "/error"] {
        let before = origin.count();
        hit(&app, "plain.test", path).await;
        let (_, h, _) = hit(&app, "plain.test", path).await;
        assert_eq!(cache_status(&h), "MISS", "{path}");
        assert_eq!(origin.count(), before + 2, "{path} fetched both times");
    }
    // A visitor with a session cookie bypasses the cache entirely.
    origin.serve("/page", page("max-age=60", "x"));
    hit(&app, "plain.test", "/page").await;
    let with_session = Request::get(format!("http://{}/page", app.http_addr))
        .header("host", "plain.test")
        .header("cookie", "theme=dark; PHPSESSID=s1")
        .body(edgeseo::body::empty())
        .unwrap();
    let (_, h, _) = fetch(&http1_client(), with_session).await;
    assert_eq!(cache_status(&h), "BYPASS");
}

#[tokio::test]
async fn a_404_is_stored_as_a_404() {
    let origin = Origin::start().await;
    origin.serve("/gone", page("max-age=60", "not here").status(404));
    let rules = rules_for(origin.addr, "", "");
    let app = start_with_admin(&rules).await;
    hit(&app, "plain.test", "/gone").await;
    let (status, h, _) = hit(&app, "plain.test", "/gone").await;
    assert_eq!(cache_status(&h), "HIT");
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn entries_expire() {
    let origin = Origin::start().await;
    origin.serve("/short", page("max-age=1", "short"));
    let rules = rules_for(
        origin.addr,
        "",
        "stale_while_revalidate = \"0s\"\nstale_if_error = \"0s\"",
    );
    let app = start_with_admin(&rules).await;
    hit(&app, "plain.test", "/short").await;
    let (_, h, _) = hit(&app, "plain.test", "/short").await;
    assert_eq!(cache_status(&h), "HIT");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let (_, h, _) = hit(&app, "plain.test", "/short").await;
    assert_eq!(cache_status(&h), "MISS");
    assert_eq!(origin.count(), 2);
}

#[tokio::test]
async fn stale_while_revalidate_refreshes_exactly_once() {
    let origin = Origin::start().await;
    origin.serve("/news", page("max-age=1, stale-while-revalidate=30", "old"));
    let rules = rules_for(origin.addr, "", "");
    let app = start_with_admin(&rules).await;
    hit(&app, "plain.test", "/news").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    origin.serve("/news", page("max-age=60", "new"));
    let client = http1_client();
    let mut pending = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        let addr = app.http_addr;
        pending.push(tokio::spawn(async move {
            fetch(&client, get(addr, "plain.test", "/news")).await
        }));
    }
    for p in pending {
        let (_, h, body) = p.await.unwrap();
        assert_eq!(cache_status(&h), "STALE");
        assert!(String::from_utf8_lossy(&body).contains("old"));
    }
    // The one background fetch lands, and the next visitor gets the new page.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        origin.count(),
        2,
        "one initial fetch and exactly one refresh"
    );
    let (_, h, body) = hit(&app, "plain.test", "/news").await;
    assert_eq!(cache_status(&h), "HIT");
    assert!(body.contains("new"));
}

#[tokio::test]
async fn a_stale_page_stands_in_for_a_dead_origin() {
    let origin = Origin::start().await;
    origin.serve("/products", page("max-age=1", "catalogue"));
    let rules = rules_for(
        origin.addr,
        "",
        "stale_while_revalidate = \"0s\"\nstale_if_error = \"10m\"",
    );
    let app = start_with_admin(&rules).await;
    hit(&app, "shop.test", "/id/products").await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    origin.stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, h, body) = hit(&app, "shop.test", "/id/products").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cache_status(&h), "STALE");
    assert!(body.contains("catalogue") && body.contains("lang=\"id-ID\""));
    // Never cached at all: the failure shows.
    let (status, _, _) = hit(&app, "shop.test", "/th/products").await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_hundred_concurrent_misses_cost_one_origin_request() {
    let origin = Origin::start().await;
    let mut slow = page("public, max-age=60", &"popular ".repeat(5000));
    slow.hold_after_first = Some(4096);
    origin.serve("/popular", slow);
    let rules = rules_for(origin.addr, "", "");
    let app = start_with_admin(&rules).await;
    let client = http1_client();
    let mut pending = Vec::new();
    for _ in 0..100 {
        let client = client.clone();
        let addr = app.http_addr;
        pending.push(tokio::spawn(async move {
            fetch(&client, get(addr, "shop.test", "/vi/popular")).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    origin.release.notify_one();
    let mut statuses = std::collections::HashMap::new();
    let mut bodies = std::collections::HashSet::new();
    for p in pending {
        let (status, h, body) = p.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        *statuses.entry(cache_status(&h).to_string()).or_insert(0) += 1;
        bodies.insert(body);
    }
    assert_eq!(origin.count(), 1, "{statuses:?}");
    assert_eq!(statuses.get("MISS"), Some(&1));
    assert_eq!(statuses.get("HIT"), Some(&99));
    assert_eq!(bodies.len(), 1, "everyone got the same page");
}

#[tokio::test]
async fn a_client_leaving_mid_stream_leaves_no_entry() {
    let origin = Origin::start().await;
    let mut slow = page("public, max-age=60", &"long page ".repeat(20_000));
    slow.hold_after_first = Some(8192);
    origin.serve("/long", slow);
    let rules = rules_for(origin.addr, "", "");
    let app = start_with_admin(&rules).await;
    {
        let resp = send(&http1_client(), get(app.http_addr, "plain.test", "/long")).await;
        let mut body = resp.into_body();
        let _ = body.frame().await;
        // Dropping the body and its client closes the connection mid-response.
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    origin.release.notify_one();
    tokio::time::sleep(Duration::from_millis(200)).await;
    origin.serve("/long", page("public, max-age=60", "complete"));
    let (_, h, body) = hit(&app, "plain.test", "/long").await;
    assert_eq!(cache_status(&h), "MISS", "no truncated entry was stored");
    assert!(body.contains("complete"));
}

#[tokio::test]
async fn conditional_requests_are_answered_from_the_cache() {
    let origin = Origin::start().await;
    origin.serve(
        "/doc",
        page("max-age=60", "doc")
            .header("etag", "\"v1\"")
            .header("last-modified", "Sun, 29 Nov 2026 08:00:00 GMT"),
    );
    let rules = rules_for(origin.addr, "", "");
    let app = start_with_admin(&rules).await;
    hit(&app, "plain.test", "/doc").await;
    for (name, value) in [
        ("if-none-match", "\"v0\", \"v1\""),
        ("if-none-match", "W/\"v1\""),
        ("if-modified-since", "Sun, 29 Nov 2026 09:00:00 GMT"),
    ] {
        let req = Request::get(format!("http://{}/doc", app.http_addr))
            .header("host", "plain.test")
            .header(name, value)
            .body(edgeseo::body::empty())
            .unwrap();
        let (status, h, body) = fetch(&http1_client(), req).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{name}: {value}");
        assert_eq!(h["etag"], "\"v1\"");
        assert!(body.is_empty());
    }
    let req = Request::get(format!("http://{}/doc", app.http_addr))
        .header("host", "plain.test")
        .header("if-none-match", "\"v2\"")
        .body(edgeseo::body::empty())
        .unwrap();
    let (status, _, _) = fetch(&http1_client(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(origin.count(), 1);
}

async fn admin(
    app: &App,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", app.admin_addr.unwrap()));
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = req.body(full_body(body.to_string())).unwrap();
    let (status, _, body) = fetch(&http1_client(), req).await;
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn purge_by_prefix_and_locale_through_the_admin_listener() {
    let origin = Origin::start().await;
    for p in ["/products/a", "/products/b", "/about"] {
        origin.serve(p, page("max-age=600", p));
    }
    let rules = rules_for(origin.addr, "", "");
    let app = start_with_admin(&rules).await;
    let paths = [
        "/products/a",
        "/id/products/a",
        "/id/products/b",
        "/th/products/a",
        "/id/about",
    ];
    for p in paths {
        hit(&app, "shop.test", p).await;
    }
    let (status, _) = admin(&app, "POST", "/purge", None, r#"{"site":"shop"}"#).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = admin(
        &app,
        "POST",
        "/purge",
        Some("wrong-token-wrong-token"),
        r#"{"site":"shop"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = admin(
        &app,
        "POST",
        "/purge",
        Some(TOKEN),
        r#"{"site":"shop","path_prefix":"/products","locale":"id"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"purged":2}"#);
    for (p, expected) in [
        ("/products/a", "HIT"),
        ("/id/products/a", "MISS"),
        ("/id/products/b", "MISS"),
        ("/th/products/a", "HIT"),
        ("/id/about", "HIT"),
    ] {
        let (_, h, _) = hit(&app, "shop.test", p).await;
        assert_eq!(cache_status(&h), expected, "{p}");
    }
    let (status, _) = admin(&app, "POST", "/purge", Some(TOKEN), r#"{"site":"nope"}"#).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = admin(&app, "POST", "/purge", Some(TOKEN), "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Health needs no token; metrics and reload do; a reload empties the cache.
    let (status, body) = admin(&app, "GET", "/healthz", None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("\"status\":\"ok\""));
    let (status, metrics) = admin(&app, "GET", "/metrics", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        metrics.contains("edgeseo_cache_responses_total{status=\"hit\"} 3"),
        "{metrics}"
    );
    // The fixture's Indonesian memory translates 44 of the 46 words of the one page it names.
    for line in [
        "edgeseo_translation_coverage{site=\"shop\",locale=\"id\"} 0.9565",
        "edgeseo_translation_pages_advertised{site=\"shop\",locale=\"id\"} 1",
        "edgeseo_translation_pages{site=\"shop\",locale=\"vi\"} 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }
    let (status, _) = admin(&app, "POST", "/reload", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::OK);
    let (_, h, _) = hit(&app, "shop.test", "/about").await;
    assert_eq!(cache_status(&h), "MISS");
    std::fs::write(rules.path().join("shop/site.toml"), "hosts = [").unwrap();
    let (status, body) = admin(&app, "POST", "/reload", Some(TOKEN), "").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("site.toml:1:"), "{body}");
}

#[tokio::test]
async fn capacity_holds_under_a_flood_of_distinct_urls() {
    let origin = Origin::start().await;
    origin.serve("/item", page("max-age=600", &"x".repeat(10_000)));
    let rules = rules_for(origin.addr, "[cache]\nmax_size = \"1MiB\"\n", "");
    let app = start_with_admin(&rules).await;
    let client = http1_client();
    for i in 0..400 {
        let (status, _, _) = fetch(
            &client,
            get(app.http_addr, "plain.test", &format!("/item?v={i}")),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (entries, bytes) = app.cache().usage().await;
    assert!(bytes <= 1 << 20, "{bytes} bytes cached");
    // Which ones stay is the admission policy's choice (TinyLFU, whose sampling lets the count
    // vary from run to run: 49 was seen); that the bound holds, and that the cache keeps a good
    // share of what fits, is ours.
    assert!(
        (25..=105).contains(&entries),
        "{entries} entries of ~10 KB in 1 MiB"
    );
}
