//! `/metrics` as Prometheus scrapes it, parsed back with a parser this project did not write
//! (prometheus-parse): the request path's counters and latency histograms after real requests.

mod common;

use std::collections::HashMap;

use common::*;
use edgeseo::app::App;
use http::{Request, StatusCode};

const TOKEN: &str = "metrics-test-token-0123456789";

async fn scrape(app: &App) -> Vec<prometheus_parse::Sample> {
    let req = Request::get(format!("http://{}/metrics", app.admin_addr.unwrap()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(full_body(""))
        .unwrap();
    let (status, headers, body) = fetch(&http1_client(), req).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.ends_with("# EOF\n"), "a complete exposition");
    let lines = text.lines().map(|l| Ok(l.to_string()));
    prometheus_parse::Scrape::parse(lines).unwrap().samples
}

/// The value of the sample `name` whose labels include all of `labels`, if there is one.
fn value(samples: &[prometheus_parse::Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: a single value, not {other:?}"),
        })
        .collect();
    assert!(found.len() <= 1, "{name} {labels:?}: {found:?}");
    found.first().copied()
}

async fn post_chat(addr: std::net::SocketAddr, message: &str) -> (StatusCode, http::HeaderMap) {
    let req = Request::post(format!("http://{addr}/api/chat"))
        .header("host", "shop.test")
        .header("content-type", "application/json")
        .body(full_body(format!(r#"{{"message":"{message}"}}"#)))
        .unwrap();
    let (status, headers, _) = fetch(&http1_client(), req).await;
    (status, headers)
}

#[tokio::test]
async fn requests_latency_origin_failures_and_chat_are_counted() {
    let origin = Origin::start().await;
    origin.serve("/", CannedPage::html("<html><body>home</body></html>"));
    let rules = RulesDir::new()
        .file("server.toml", &format!("[admin]\ntoken = \"{TOKEN}\"\n"))
        .site(
            "shop",
            &site_for(
                origin.addr,
                "[chat]\npath = \"/api/chat\"\nper_ip_per_minute = 2\n",
            ),
        )
        // Nothing listens on the discard port of loopback: every request is refused.
        .site(
            "down",
            "hosts = [\"down.test\"]\n[origin]\nurl = \"http://127.0.0.1:9\"\nconnect_timeout = \"1s\"\n",
        );
    let app = start_with_admin(&rules).await;
    let client = http1_client();
    let before = scrape(&app).await;
    assert_eq!(
        value(&before, "edgeseo_requests_total", &[("site", "shop")]),
        None,
        "nothing counted before the first request"
    );

    for _ in 0..3 {
        let (status, _, _) = fetch(&client, get(app.http_addr, "shop.test", "/")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, _) = fetch(&client, get(app.http_addr, "elsewhere.test", "/")).await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    let (status, _, _) = fetch(&client, get(app.http_addr, "down.test", "/")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    let (status, _, _) = fetch(&client, get(app.http_addr, "shop.test", "/slow")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);

    let (status, headers) = post_chat(app.http_addr, "brp harga 500 pcs kak?").await;
    assert_eq!(status, StatusCode::OK);
    let intent = headers["x-edgeseo-intent"].to_str().unwrap().to_string();
    assert_eq!(
        post_chat(app.http_addr, "MOQ berapa?").await.0,
        StatusCode::OK
    );
    assert_eq!(
        post_chat(app.http_addr, "hello?").await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "two a minute per address"
    );

    let m = scrape(&app).await;
    let requests = |labels: &[(&str, &str)]| value(&m, "edgeseo_requests_total", labels);
    assert_eq!(
        requests(&[("site", "shop"), ("locale", ""), ("status", "2xx")]),
        Some(5.0),
        "three pages and two chat answers"
    );
    assert_eq!(requests(&[("site", ""), ("status", "4xx")]), Some(1.0));
    assert_eq!(requests(&[("site", "shop"), ("status", "4xx")]), Some(1.0));
    assert_eq!(requests(&[("site", "shop"), ("status", "5xx")]), Some(1.0));
    assert_eq!(requests(&[("site", "down"), ("status", "5xx")]), Some(1.0));

    let failures = |site, kind| {
        value(
            &m,
            "edgeseo_origin_failures_total",
            &[("site", site), ("kind", kind)],
        )
    };
    assert_eq!(failures("down", "unreachable"), Some(1.0));
    assert_eq!(failures("shop", "timeout"), Some(1.0));

    assert_eq!(
        value(
            &m,
            "edgeseo_chat_answers_total",
            &[("site", "shop"), ("language", "id"), ("intent", &intent)]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&m, "edgeseo_chat_rate_limited_total", &[("site", "shop")]),
        Some(1.0)
    );

    // Latency: every request in one of the two histograms, the timed-out one past a second.
    let count = |kind| {
        value(
            &m,
            "edgeseo_request_duration_seconds_count",
            &[("kind", kind)],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(count("page"), 6.0);
    assert_eq!(count("chat"), 3.0);
    let buckets: HashMap<String, f64> = m
        .iter()
        .filter(|s| s.metric == "edgeseo_request_duration_seconds")
        .filter(|s| s.labels.get("kind") == Some("page"))
        .flat_map(|s| match &s.value {
            prometheus_parse::Value::Histogram(counts) => counts
                .iter()
                .map(|c| (c.less_than.to_string(), c.count))
                .collect::<Vec<_>>(),
            other => panic!("a histogram, not {other:?}"),
        })
        .collect();
    assert_eq!(buckets["inf"], 6.0, "{buckets:?}");
    assert_eq!(
        buckets["0.512"], 5.0,
        "all but the 1 s timeout: {buckets:?}"
    );

    // The cache families are there, read at the scrape.
    assert!(value(&m, "edgeseo_cache_responses_total", &[("status", "miss")]).is_some());
    assert_eq!(
        value(&m, "edgeseo_cache_removals_total", &[("cause", "purged")]),
        Some(0.0)
    );
}
