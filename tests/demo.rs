//! The embedded demo behind the proxy: every page and asset it links to is served.

mod common;

use std::collections::{BTreeSet, VecDeque};

use common::*;
use http::StatusCode;

fn root_links(html: &str) -> Vec<String> {
    let mut links = Vec::new();
    for attr in ["href=\"", "src=\"", "action=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            if let Some(end) = rest.find('"') {
                let link = &rest[..end];
                if link.starts_with('/') && !link.starts_with("//") {
                    links.push(link.split('#').next().unwrap().to_string());
                }
            }
        }
    }
    links
}

#[tokio::test]
async fn every_linked_page_and_asset_is_served() {
    let app = start_demo().await;
    let client = http1_client();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([String::from("/")]);
    while let Some(path) = queue.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let (status, headers, body) = fetch(&client, get(app.http_addr, "localhost", &path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let content_type = headers["content-type"].to_str().unwrap();
        if content_type.starts_with("text/html") {
            let html = String::from_utf8(body.to_vec()).unwrap();
            assert!(html.contains("<title>"), "{path} has a title");
            queue.extend(root_links(&html));
        }
    }
    assert!(seen.len() >= 20, "crawled {} URLs: {seen:?}", seen.len());
    let products = seen.iter().filter(|p| p.starts_with("/products/")).count();
    assert!(products >= 10, "{seen:?}");

    let (status, _, body) = fetch(&client, get(app.http_addr, "localhost", "/no-such-page")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(String::from_utf8_lossy(&body).contains("LIANHE"));
}

#[tokio::test]
async fn benchmark_page_is_about_60_kb() {
    let app = start_demo().await;
    let (status, _, body) = fetch(
        &http1_client(),
        get(app.http_addr, "127.0.0.1", "/products/air-fryer-4-5l"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        (50_000..70_000).contains(&body.len()),
        "{} bytes",
        body.len()
    );
}
