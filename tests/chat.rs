//! The chat endpoint of the demo: real requests, real answers, limits.

mod common;

use std::path::Path;

use common::*;
use http::{Request, StatusCode};
use serde_json::Value;

async fn demo() -> edgeseo::app::App {
    start_proxy_with(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")),
        None,
        Default::default(),
    )
    .await
}

async fn chat(
    app: &edgeseo::app::App,
    body: &str,
    extra: &[(&str, &str)],
) -> (StatusCode, http::HeaderMap, Value) {
    let mut req = Request::post(format!("http://{}/api/chat", app.http_addr))
        .header("host", "localhost")
        .header("content-type", "application/json");
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let (status, headers, bytes) = fetch(
        &http1_client(),
        req.body(full_body(body.to_string())).unwrap(),
    )
    .await;
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, headers, json)
}

#[tokio::test]
async fn answers_in_the_buyers_language_with_the_intent() {
    let app = demo().await;
    for (message, language, intent) in [
        ("brp harga air fryer min?", "id", "price_quote"),
        ("gia si bao nhieu vay shop", "vi", "price_quote"),
        ("หม้อหุงข้าวมี มอก. ไหมคะ", "th", "certification"),
        ("what is the moq for the rice cooker", "en", "moq"),
        ("bisa kirim sample dulu gak kak?", "id", "samples"),
        ("ship ve hai phong mat bao lau", "vi", "shipping"),
    ] {
        let (status, _, answer) = chat(
            &app,
            &serde_json::json!({"message": message}).to_string(),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{message}");
        assert_eq!(answer["language"], language, "{message}: {answer}");
        assert_eq!(answer["intent"], intent, "{message}: {answer}");
        assert_eq!(answer["source"], "kb");
        assert!(answer["confidence"].as_f64().unwrap() >= 0.5);
        assert!(
            !answer["answer"].as_str().unwrap().contains('{'),
            "placeholders filled"
        );
    }
    let (_, _, answer) = chat(&app, r#"{"message":"brp harga air fryer min?"}"#, &[]).await;
    assert!(
        answer["answer"]
            .as_str()
            .unwrap()
            .contains("sales@lianhe-appliance.example")
    );
    // Nonsense gets the polite handover, not a confident wrong answer.
    let (_, _, answer) = chat(&app, r#"{"message":"zxqv plmk wrtz"}"#, &[]).await;
    assert_eq!(answer["intent"], "unknown", "{answer}");
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let app = demo().await;
    let (status, _, body) = chat(&app, "{not json", &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].is_string());
    let (status, _, _) = chat(&app, r#"{"message":"   "}"#, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = chat(&app, r#"{"text":"hi"}"#, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let long = serde_json::json!({"message": "a".repeat(5000)}).to_string();
    let (status, _, _) = chat(&app, &long, &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    let req = Request::post(format!("http://{}/api/chat", app.http_addr))
        .header("host", "localhost")
        .header("content-type", "text/plain")
        .body(full_body("hello"))
        .unwrap();
    let (status, _, _) = fetch(&http1_client(), req).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn per_ip_quota_trips_for_a_non_exempt_client() {
    // The demo trusts no proxy; a copy of its rules that trusts 127.0.0.1 lets a test speak for
    // another client address through X-Forwarded-For.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/demo-supplier");
    let rules = copy_site(&src, "demo", |site| {
        site.replace("trusted_proxies = []", "trusted_proxies = [\"127.0.0.1\"]")
            .replace("per_ip_per_minute = 60", "per_ip_per_minute = 3")
    });
    let app = start_proxy(&rules).await;
    let body = r#"{"message":"hello"}"#;
    // 127.0.0.1 itself is exempt: no per-IP quota.
    for _ in 0..5 {
        let (status, _, _) = chat(&app, body, &[]).await;
        assert_eq!(status, StatusCode::OK);
    }
    let visitor = [("x-forwarded-for", "203.0.113.50")];
    for _ in 0..3 {
        let (status, _, _) = chat(&app, body, &visitor).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, headers, _) = chat(&app, body, &visitor).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // Another visitor is unaffected.
    let (status, _, _) = chat(&app, body, &[("x-forwarded-for", "203.0.113.51")]).await;
    assert_eq!(status, StatusCode::OK);
}
