//! The chat endpoint of the demo: real requests, real answers, limits.

mod common;

use std::path::Path;

use common::*;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

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
    let app = start_demo().await;
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
async fn a_named_product_is_answered_with_its_facts() {
    let app = start_demo().await;
    // Names in each language, the marketplaces' search terms, misspellings, Thai without spaces.
    for (message, intent, sku, facts) in [
        (
            "brp harga air fryer min?",
            "price_quote",
            "LH-AF-45",
            &[
                "Rp 408.400",
                "500 pcs",
                "/id/products/air-fryer-4-5l",
                "31/12/2027",
            ][..],
        ),
        (
            "gia noi chien khong dau bao nhieu shop",
            "price_quote",
            "LH-AF-45",
            &["645.000 ₫", "/vi/products/air-fryer-4-5l"],
        ),
        (
            "what is the moq for the rice coker",
            "moq",
            "LH-RC-500",
            &["500 pcs", "USD 18.50", "/products/digital-rice-cooker-5l"],
        ),
        (
            "magic com produksinya berapa lama?",
            "lead_time",
            "LH-RC-500",
            &["25–35 hari", "/id/products/digital-rice-cooker-5l"],
        ),
        (
            "หม้อทอดไร้น้ำมันราคาเท่าไหร่คะ",
            "price_quote",
            "LH-AF-45",
            &["฿841.62", "/th/products/air-fryer-4-5l"],
        ),
        // Specifications from facts.toml, in the buyer's language.
        (
            "spesifikasi air fryer apa aja kak?",
            "product_specs",
            "LH-AF-45",
            &[
                "Spesifikasi Air Fryer 4.5 Liter: Kapasitas panci 4.5 L",
                "daya 1400 W",
                "/id/products/air-fryer-4-5l",
            ],
        ),
        (
            "thong so noi com dien tu 5L the nao?",
            "product_specs",
            "LH-RC-500",
            &["Thông số Nồi cơm điện tử 5L: 5.0 L", "công suất 900 W"],
        ),
        (
            "what is the wattage of the blender?",
            "product_specs",
            "LH-BL-15",
            &["Heavy-Duty Blender 1.5L specifications:", "1000 W"],
        ),
    ] {
        let body = serde_json::json!({"message": message}).to_string();
        let (status, _, answer) = chat(&app, &body, &[]).await;
        assert_eq!(status, StatusCode::OK, "{message}");
        assert_eq!(answer["intent"], intent, "{message}: {answer}");
        assert_eq!(answer["product"], sku, "{message}: {answer}");
        let text = answer["answer"].as_str().unwrap();
        for fact in facts {
            assert!(text.contains(fact), "{message}: {fact} missing from {text}");
        }
    }
    // A question that names no product, or a word every product's keywords share, gets the
    // intent's answer alone.
    for message in [
        "brp harga min?",
        "harga murah dong",
        "what's your price list",
    ] {
        let body = serde_json::json!({"message": message}).to_string();
        let (_, _, answer) = chat(&app, &body, &[]).await;
        assert_eq!(answer["intent"], "price_quote", "{message}: {answer}");
        assert!(answer.get("product").is_none(), "{message}: {answer}");
    }
}

/// A fact of facts.toml is said only in the languages it is written in.
#[tokio::test]
async fn sample_facts_are_said_in_the_languages_they_are_written_in() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/demo-supplier");
    let rules = copy_site(&demo, "demo", |site| site).file(
        "demo/facts.toml",
        "[\"LH-SM-12\"]\nsamples.id = \"sampel unit standar dikirim 3 hari kerja, dengan logo Anda 7-10 hari\"\n",
    );
    let app = start_proxy(&rules).await;
    let ask = |message: &str| serde_json::json!({ "message": message }).to_string();
    let (_, _, answer) = chat(&app, &ask("bisa minta sampel stand mixer kak?"), &[]).await;
    assert_eq!(answer["intent"], "samples", "{answer}");
    assert_eq!(answer["product"], "LH-SM-12", "{answer}");
    let text = answer["answer"].as_str().unwrap();
    assert!(
        text.starts_with(
            "Sampel Mixer Berdiri (Stand Mixer) 1200W: sampel unit standar dikirim 3 hari kerja, dengan logo Anda 7-10 hari."
        ),
        "{text}"
    );
    let (_, _, answer) = chat(&app, &ask("can I get a sample of the stand mixer?"), &[]).await;
    assert_eq!(answer["intent"], "samples", "{answer}");
    let text = answer["answer"].as_str().unwrap();
    assert!(
        text.starts_with("Product page of Stand Mixer 1200W:"),
        "{text}"
    );
    assert!(!text.contains("sampel unit"), "{text}");
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let app = start_demo().await;
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

const MOQ_ID: &str = r#"{"message":"berapa minimal order rice cooker kak?","session":"s1"}"#;

#[tokio::test]
async fn forwards_to_the_sites_backend_with_language_and_intent() {
    let backend = Origin::start().await;
    backend.serve(
        "/chat",
        CannedPage::new(
            "application/json",
            r#"{"answer":"Minimal order 200 unit, kak.","ticket":42}"#,
        )
        .header("set-cookie", "chat=abc; Path=/"),
    );
    let app = start_demo_with_backend(&format!("http://{}/chat", backend.addr), "").await;
    // What a browser sends along, and a header a client must not be able to set for the edge.
    let extra = [
        ("accept-encoding", "gzip, br"),
        ("x-edgeseo-intent", "refund"),
    ];
    let (status, headers, answer) = chat(&app, MOQ_ID, &extra).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["source"], "backend");
    assert_eq!(answer["answer"], "Minimal order 200 unit, kak.");
    assert_eq!(answer["ticket"], 42, "the backend's own fields are kept");
    assert_eq!(answer["language"], "id");
    assert_eq!(answer["intent"], "moq");
    assert_eq!(headers["x-edgeseo-chat-source"], "backend");
    assert_eq!(headers["x-edgeseo-intent"], "moq");
    assert_eq!(headers["set-cookie"], "chat=abc; Path=/");

    let seen = backend.last_headers("/chat").expect("backend was asked");
    assert!(
        seen.get("accept-encoding").is_none(),
        "the reply is read here"
    );
    assert_eq!(seen["x-edgeseo-language"], "id");
    assert_eq!(seen["x-edgeseo-intent"], "moq");
    assert!(
        seen["x-edgeseo-confidence"]
            .to_str()
            .unwrap()
            .parse::<f32>()
            .unwrap()
            >= 0.5
    );
    assert_eq!(seen["content-type"], "application/json");
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["host"], backend.addr.to_string().as_str());
}

#[tokio::test]
async fn event_streams_pass_through_as_they_come() {
    let backend = Origin::start().await;
    let first = "data: Minimal order\n\n";
    let mut page = CannedPage::new(
        "text/event-stream",
        format!("{first}data:  200 unit\n\ndata: [DONE]\n\n"),
    );
    page.hold_after_first = Some(first.len());
    backend.serve("/chat", page);
    let app = start_demo_with_backend(
        &format!("http://{}/chat", backend.addr),
        "backend_max_concurrent = 1",
    )
    .await;
    let req = Request::post(format!("http://{}/api/chat", app.http_addr))
        .header("host", "localhost")
        .header("content-type", "application/json")
        .header("accept", "text/event-stream")
        .body(full_body(MOQ_ID))
        .unwrap();
    let resp = send(&http1_client(), req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    assert_eq!(resp.headers()["x-edgeseo-language"], "id");
    assert_eq!(resp.headers()["x-edgeseo-intent"], "moq");
    let mut body = resp.into_body();
    // The first event arrives while the backend still holds the rest back.
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("first event streamed")
        .unwrap()
        .unwrap();
    assert_eq!(frame.into_data().unwrap(), first.as_bytes());

    // The stream holds the site's only backend slot: the next buyer gets the KB answer now.
    let (status, headers, answer) = chat(&app, MOQ_ID, &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["source"], "fallback", "{answer}");
    assert_eq!(answer["language"], "id");
    assert_eq!(answer["intent"], "moq");
    assert!(
        answer["answer"].as_str().unwrap().contains("MOQ"),
        "{answer}"
    );
    assert_eq!(headers["x-edgeseo-chat-fallback"], "overloaded");

    backend.release.notify_one();
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"data:  200 unit\n\ndata: [DONE]\n\n");
    // The slot is free again once the stream has ended.
    backend.serve(
        "/chat",
        CannedPage::new("application/json", r#"{"answer":"ok"}"#),
    );
    let (_, _, answer) = chat(&app, MOQ_ID, &[]).await;
    assert_eq!(answer["source"], "backend", "{answer}");
}

#[tokio::test]
async fn a_failing_backend_costs_the_buyer_nothing() {
    let backend = Origin::start().await;
    let app = start_demo_with_backend(
        &format!("http://{}/chat", backend.addr),
        "backend_timeout = \"400ms\"",
    )
    .await;
    let cases = [
        (CannedPage::new("text/plain", "busy").status(503), "status"),
        (
            CannedPage::new("text/plain", "slow down").status(429),
            "overloaded",
        ),
        (
            CannedPage::new("application/json", r#"{"text":"no answer field"}"#),
            "invalid-reply",
        ),
        (
            CannedPage::new("application/json", "{broken"),
            "invalid-reply",
        ),
        (
            // The head comes at once, the JSON body never: the deadline covers both.
            CannedPage {
                hold_after_first: Some(1),
                ..CannedPage::new("application/json", r#"{"answer":"late"}"#)
            },
            "timeout",
        ),
    ];
    for (page, reason) in cases {
        backend.serve("/chat", page);
        let started = std::time::Instant::now();
        let (status, headers, answer) = chat(&app, MOQ_ID, &[]).await;
        assert_eq!(status, StatusCode::OK, "{reason}: {answer}");
        assert_eq!(answer["source"], "fallback", "{reason}: {answer}");
        assert_eq!(answer["language"], "id");
        assert_eq!(answer["intent"], "moq");
        assert_eq!(headers["x-edgeseo-chat-fallback"], reason);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "{reason}"
        );
    }
    backend.release.notify_waiters();

    // A stream that stalls after its first event is cut after backend_timeout.
    let first = "data: Minimal\n\n";
    backend.serve(
        "/chat",
        CannedPage {
            hold_after_first: Some(first.len()),
            ..CannedPage::new("text/event-stream", format!("{first}data: never\n\n"))
        },
    );
    let req = Request::post(format!("http://{}/api/chat", app.http_addr))
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(full_body(MOQ_ID))
        .unwrap();
    let resp = send(&http1_client(), req).await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let cut = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        resp.into_body().collect(),
    )
    .await
    .expect("the stalled stream ends");
    assert!(cut.is_err(), "a cut stream is not a complete answer");
    backend.release.notify_waiters();

    // A backend that takes longer than backend_timeout to answer at all.
    let app = start_demo_with_backend(
        &format!("http://{}/slow", backend.addr),
        "backend_timeout = \"300ms\"",
    )
    .await;
    let (_, headers, answer) = chat(&app, MOQ_ID, &[]).await;
    assert_eq!(answer["source"], "fallback");
    assert_eq!(headers["x-edgeseo-chat-fallback"], "timeout");

    // Nothing listening at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let app = start_demo_with_backend(&format!("http://{addr}/chat"), "").await;
    let (_, headers, answer) = chat(&app, MOQ_ID, &[]).await;
    assert_eq!(answer["source"], "fallback");
    assert_eq!(headers["x-edgeseo-chat-fallback"], "unreachable");
}

#[tokio::test]
async fn backend_settings_are_checked() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/demo-supplier");
    let rules = copy_site(&src, "demo", |site| {
        site.replace("[chat]\n", "[chat]\nbackend = \"ftp://10.0.0.7/chat\"\n")
            .replace("widget = true", "widget = true\nbackend_max_concurrent = 0")
    });
    let err = edgeseo::config::Rules::load(rules.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("site.toml:"), "{err}");
    assert!(
        err.contains("chat backend url scheme must be http or https"),
        "{err}"
    );
    assert!(err.contains("0 is out of range"), "{err}");
}

#[tokio::test]
async fn widget_is_served_and_injected_in_the_page_locale() {
    let app = start_demo().await;
    let (status, headers, script) = fetch(
        &http1_client(),
        get(app.http_addr, "localhost", "/__edgeseo/widget.js"),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(script.len() < 12 * 1024, "a few KB, not {}", script.len());

    for (path, locale) in [
        ("/", "en"),
        ("/id/", "id"),
        ("/vi/products", "vi"),
        ("/th/about", "th"),
    ] {
        let (status, _, html) = fetch(&http1_client(), get(app.http_addr, "localhost", path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let doc = scraper::Html::parse_document(std::str::from_utf8(&html).unwrap());
        let selector =
            scraper::Selector::parse(r#"body > script[src="/__edgeseo/widget.js"]"#).unwrap();
        let tags: Vec<_> = doc.select(&selector).collect();
        assert_eq!(tags.len(), 1, "{path}: one widget tag, a child of <body>");
        assert_eq!(tags[0].attr("data-locale"), Some(locale), "{path}");
        assert_eq!(tags[0].attr("data-endpoint"), Some("/api/chat"), "{path}");
    }
}

#[test]
fn limiter_memory_stays_bounded_under_a_million_clients() {
    let rules =
        edgeseo::config::Rules::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")))
            .unwrap();
    let site = &rules.sites[0];
    let chat = edgeseo::chat::ChatService::new(site.chat.clone().unwrap(), None, "").unwrap();
    // A million distinct addresses (10.0.0.0/8 is not exempt) and 100,000 sessions, one
    // request each, as a scan or a botnet would send them.
    for n in 0..1_000_000u32 {
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 | n));
        assert!(chat.check_ip(ip).is_ok());
    }
    let client = "10.255.255.255".parse().unwrap();
    for n in 0..100_000 {
        assert!(chat.check_session(client, &format!("session-{n}")).is_ok());
    }
    assert_eq!(chat.tracked_clients(), 1_100_000);
    // governor lets a key go one emission interval after its quota has refilled: with the demo's
    // 60 per minute per IP and 30 per minute per session, 2 s and 4 s after a single request.
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert!(chat.check_session(client, "just-now").is_ok());
    chat.prune();
    let left = chat.tracked_clients();
    assert!(
        (1..=100_001).contains(&left),
        "every address forgotten, the session just seen kept: {left}"
    );
    std::thread::sleep(std::time::Duration::from_millis(4100));
    chat.prune();
    assert_eq!(chat.tracked_clients(), 0);
}

/// The certifier's measure on messages written blind (tests/data/chat/blind: writers who never saw
/// the training corpus or the model): every message goes through the demo's endpoint with the page
/// locale of its language, as a buyer on that locale's pages sends it. The floors sit a little
/// below the figures measured when the set was added (README, "Chat accuracy"), so a change that
/// makes the chat worse for unseen buyers fails here.
#[tokio::test]
async fn blind_buyer_messages_are_understood() {
    use edgeseo::chat::eval::Report;
    use edgeseo::config::{SourceFile, parse_examples};
    use edgeseo::locale::Locale;

    let app = start_demo().await;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/chat/blind");
    let mut report = Report::new(true);
    let (mut messages, mut named) = (0, Vec::new());
    for lang in Locale::ALL {
        let path = dir.join(format!("{}.csv", lang.code()));
        let mut diags = Vec::new();
        let text = std::fs::read_to_string(&path).unwrap();
        let set = parse_examples(&SourceFile::new(&path, text), &mut diags);
        assert!(diags.is_empty(), "{diags:?}");
        assert!(set.len() > 250, "{}", path.display());
        for m in &set {
            let body = serde_json::json!({"message": m.text, "locale": lang.code()}).to_string();
            let (status, _, answer) = chat(&app, &body, &[]).await;
            assert_eq!(status, StatusCode::OK, "{}", m.text);
            let detected = answer["language"].as_str().and_then(Locale::from_code);
            report.add(m, detected.unwrap(), answer["intent"].as_str().unwrap());
            messages += 1;
            if let Some(sku) = answer["product"].as_str() {
                named.push(format!("{sku}: {}", m.text));
            }
        }
    }
    // The set is about many trades and names none of the demo's products by name; an answer led
    // by a kitchen appliance's facts there is a false hit (1 of 1,076 when added, and a right
    // one: a question about a vacuum flask).
    assert!(named.len() * 100 <= messages, "{named:#?}");
    let floors = [
        (
            "intent, all",
            report.intent_accuracy(None).percent(),
            INTENT_FLOOR,
        ),
        (
            "language ID",
            report.language_accuracy(None).percent(),
            LANGUAGE_FLOOR,
        ),
        (
            "out of scope → unknown",
            report.out_of_scope(None).percent(),
            OUT_OF_SCOPE_FLOOR,
        ),
        (
            "in scope answered",
            100.0 - report.refused(None).percent(),
            ANSWERED_FLOOR,
        ),
    ]
    .into_iter()
    .chain(Locale::ALL.map(|l| {
        (
            "intent, one language",
            report.intent_accuracy(Some(l)).percent(),
            LANGUAGE_INTENT_FLOOR,
        )
    }));
    for (what, got, floor) in floors {
        assert!(got >= floor, "{what}: {got:.1} % < {floor} %\n{report}");
    }
}

// Measured when the set was added: intent 98.5 (lowest language 97.3), language ID 99.2, out of
// scope 95.6, in scope answered 99.8. Language ID since words are learnt from the corpus: 99.7.
const INTENT_FLOOR: f64 = 97.5;
const LANGUAGE_INTENT_FLOOR: f64 = 96.0;
const LANGUAGE_FLOOR: f64 = 99.4;
const OUT_OF_SCOPE_FLOOR: f64 = 93.0;
const ANSWERED_FLOOR: f64 = 98.5;

/// A supplier of another trade with no chat files of its own: the base corpus and answers serve
/// it, filled with its own company facts.
#[tokio::test]
async fn a_site_without_chat_files_answers_from_the_base() {
    let origin = Origin::start().await;
    let rules = RulesDir::new().site(
        "fasteners",
        &site_for(
            origin.addr,
            "[organization]\nname = \"Ningbo Haixin Fastener Co., Ltd.\"\nemail = \"export@haixin-fastener.example\"\nwhatsapp = \"+86 139 0000 1111\"\nzalo = \"+84 912 000 111\"\nline = \"@haixin\"\n[chat]\npath = \"/api/chat\"\n",
        ),
    );
    let app = start_proxy(&rules).await;
    let ask = |message: &'static str| {
        let url = format!("http://{}/api/chat", app.http_addr);
        async move {
            let req = Request::post(url)
                .header("host", "shop.test")
                .header("content-type", "application/json")
                .body(full_body(
                    serde_json::json!({"message": message}).to_string(),
                ))
                .unwrap();
            let (status, _, bytes) = fetch(&http1_client(), req).await;
            assert_eq!(status, StatusCode::OK);
            serde_json::from_slice::<Value>(&bytes).unwrap()
        }
    };
    let a = ask("MOQ for M10 hex bolts grade 8.8?").await;
    assert_eq!(a["intent"], "moq", "{a}");
    let a = ask("sy mau bicara dengan sales, bukan bot").await;
    assert_eq!(
        (a["language"].as_str(), a["intent"].as_str()),
        (Some("id"), Some("contact_human")),
        "{a}"
    );
    let text = a["answer"].as_str().unwrap();
    assert!(
        text.contains("WhatsApp +86 139 0000 1111")
            && text.contains("export@haixin-fastener.example"),
        "{text}"
    );
    assert!(!text.contains('{'), "{text}");
    // Vietnamese buyers are offered Zalo first, Thai buyers LINE; others neither.
    assert!(!text.contains("Zalo") && !text.contains("LINE"), "{text}");
    for (message, first, other) in [
        (
            "cho em gặp nhân viên kinh doanh với ạ",
            "Zalo +84 912 000 111",
            "LINE",
        ),
        ("ขอคุยกับเซลส์หน่อยค่ะ", "LINE @haixin", "Zalo"),
    ] {
        let a = ask(message).await;
        assert_eq!(a["intent"], "contact_human", "{a}");
        let text = a["answer"].as_str().unwrap();
        assert!(
            text.contains(&format!("{first}, WhatsApp +86 139 0000 1111")) && !text.contains(other),
            "{text}"
        );
    }
    let a = ask("who won the football match last night").await;
    assert_eq!(a["intent"], "unknown", "{a}");
    assert!(
        a["answer"]
            .as_str()
            .unwrap()
            .contains("export@haixin-fastener.example"),
        "{a}"
    );
}

/// A site's own examples add an intent of its own; `base = false` without files is refused.
#[tokio::test]
async fn site_examples_add_to_the_base_and_base_can_be_switched_off() {
    let origin = Origin::start().await;
    let chat = "[chat]\npath = \"/api/chat\"\n";
    let mut examples = String::from("text,intent,lang\n");
    for t in [
        "do you have a bonded warehouse in batam",
        "stock in your batam warehouse?",
        "can I pick up from the batam warehouse",
        "ada stok di gudang batam?",
        "gudang batam buka jam berapa",
        "ambil barang di gudang batam bisa?",
    ] {
        let lang = if t.contains("gudang") { "id" } else { "en" };
        examples.push_str(&format!("{t},local_warehouse,{lang}\n"));
    }
    let answers = "[local_warehouse]\nen = \"Our bonded warehouse in Batam ships within 2 days.\"\nid = \"Gudang berikat kami di Batam mengirim dalam 2 hari.\"\nvi = \"Kho ngoại quan của chúng tôi ở Batam giao trong 2 ngày.\"\nth = \"คลังสินค้าทัณฑ์บนของเราที่บาตัมจัดส่งภายใน 2 วัน\"\n";
    let rules = RulesDir::new()
        .site("shop", &site_for(origin.addr, chat))
        .file("shop/chat/intents.csv", &examples)
        .file("shop/chat/answers.toml", answers);
    let app = start_proxy(&rules).await;
    let req = |message: &str| {
        Request::post(format!("http://{}/api/chat", app.http_addr))
            .header("host", "shop.test")
            .header("content-type", "application/json")
            .body(full_body(
                serde_json::json!({"message": message}).to_string(),
            ))
            .unwrap()
    };
    let (_, _, bytes) = fetch(
        &http1_client(),
        req("is there stock in the batam warehouse?"),
    )
    .await;
    let a: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(a["intent"], "local_warehouse", "{a}");
    assert!(a["answer"].as_str().unwrap().contains("Batam"), "{a}");
    let (_, _, bytes) = fetch(
        &http1_client(),
        req("what is your payment terms, T/T or L/C?"),
    )
    .await;
    let a: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        a["intent"], "payment_terms",
        "base intents still answered: {a}"
    );

    let no_base = RulesDir::new().site(
        "shop",
        &site_for(origin.addr, "[chat]\npath = \"/api/chat\"\nbase = false\n"),
    );
    let err = edgeseo::config::Rules::load(no_base.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("shop/chat/intents.csv:1:1: cannot read"),
        "{err}"
    );
}

/// Regulatory questions are answered from the knowledge base: the entries' text in the buyer's
/// language, their sources cited, marked as guidance; other questions keep their answers.
#[tokio::test]
async fn regulatory_questions_are_answered_from_the_knowledge_base() {
    let app = start_demo().await;
    for (message, language, entry, fact, cited) in [
        (
            "does our lipstick need BPOM notification before export to Jakarta?",
            "en",
            "id-bpom-cosmetics",
            "BPOM",
            "Sources: ",
        ),
        (
            "mainan anak impor wajib SNI gak kak?",
            "id",
            "id-sni-toys",
            "SNI",
            "Sumber: ",
        ),
        (
            "mỹ phẩm nhập khẩu vào Việt Nam phải công bố ở đâu ạ?",
            "vi",
            "vn-cosmetics-notification",
            "công bố",
            "Nguồn: ",
        ),
        (
            "หมวกกันน็อคนำเข้าต้องมีมอก.ไหมครับ",
            "th",
            "th-tisi-helmets-steel-building",
            "มอก.",
            "แหล่งอ้างอิง: ",
        ),
    ] {
        let body = serde_json::json!({"message": message}).to_string();
        let (status, _, a) = chat(&app, &body, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(a["language"], language, "{a}");
        let sources: Vec<&str> = a["sources"]
            .as_array()
            .unwrap_or_else(|| panic!("no sources: {a}"))
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert!(sources.contains(&entry), "{message}: {sources:?}");
        let text = a["answer"].as_str().unwrap();
        assert!(text.contains(fact) && text.contains(cited), "{text}");
    }
    // A price question naming a product keeps the product's facts, and cites nothing.
    let (_, _, a) = chat(&app, r#"{"message":"brp harga air fryer min?"}"#, &[]).await;
    assert_eq!(a["product"], "LH-AF-45", "{a}");
    assert!(a.get("sources").is_none(), "{a}");
}

/// The certification's measure for knowledge answers, on questions written blind
/// (tests/data/chat/kb/blind6-*.csv and the earlier blind*-*.csv: writers who never saw the
/// knowledge base, from the BRIEF-blind*.md beside them): the share of answers stating every fact
/// a correct answer must contain, through the demo's endpoint. And nothing else: an answer from
/// the knowledge base is the cited entries' own text, the citation and the disclaimer, word for
/// word. The floors sit a little below the figures in the README ("Regulatory questions").
#[tokio::test]
async fn knowledge_questions_written_blind_are_answered_with_their_facts() {
    let app = start_demo().await;
    for (set, floor, language_floor) in KB_FLOORS {
        let (right, total) = knowledge_score(&app, set).await;
        let all = 100.0 * right.iter().sum::<usize>() as f64 / total.iter().sum::<usize>() as f64;
        assert!(
            all >= floor,
            "{set}: {all:.1} % < {floor} % ({right:?} of {total:?})"
        );
        for (l, (r, t)) in right.iter().zip(total).enumerate() {
            let got = 100.0 * *r as f64 / t as f64;
            assert!(got >= language_floor, "{set} {l}: {got:.1} %");
        }
    }
}

// blind15, the current blind set, measured when it arrived: 98.3 % (en 98.3, id 100, vi 96.7,
// th 98.3); blind14 98.3 % (98.3, 98.3, 96.7, 100) and blind13 94.6 % (95.0, 96.7, 93.3, 93.3)
// when each arrived. The misses of all three are unread. The other
// sets' misses have been read, so they guard against regressions; blind12 scored 97.5 % when it
// arrived, blind11 94.2 %, the ten before 71.7-95.8 %. On the current code: blind13 95.0 %,
// blind12 98.8, blind11 98.8, blind10 98.8, blind9 98.3, blind8 97.5, blind7 98.8, blind6 97.5,
// blind5 97.5, blind4 97.5, blind3 97.9, blind2 98.3, blind 97.9 (their lowest language 93.3,
// 96.7, 98.3, 96.7, 95.0, 95.0, 96.7, 95.0, 95.0, 95.0, 95.0, 96.7, 96.7).
const KB_FLOORS: [(&str, f64, f64); 15] = [
    ("blind15", 97.0, 95.0),
    ("blind14", 97.0, 95.0),
    ("blind13", 94.0, 91.0),
    ("blind12", 97.5, 95.0),
    ("blind11", 97.5, 95.0),
    ("blind10", 97.5, 95.0),
    ("blind9", 97.0, 93.0),
    ("blind8", 96.5, 93.0),
    ("blind7", 97.5, 95.0),
    ("blind6", 96.5, 93.0),
    ("blind5", 96.5, 93.0),
    ("blind4", 96.5, 93.0),
    ("blind3", 97.0, 93.0),
    ("blind2", 97.0, 95.0),
    ("blind", 97.0, 95.0),
];

/// Per language (en, id, vi, th): answers with every fact, and questions, of the set
/// `tests/data/chat/kb/<set>-<lang>.csv`; checks on the way that knowledge answers are verbatim.
async fn knowledge_score(app: &edgeseo::app::App, set: &str) -> ([usize; 4], [usize; 4]) {
    use edgeseo::chat::eval::{missing_facts, parse_kb_questions};
    use edgeseo::config::base_regulations;
    use edgeseo::locale::Locale;

    let entries = base_regulations().unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/chat/kb");
    let mut right = [0usize; 4];
    let mut total = [0usize; 4];
    for lang in Locale::ALL {
        let text = std::fs::read_to_string(dir.join(format!("{set}-{}.csv", lang.code()))).unwrap();
        for q in parse_kb_questions(&text).unwrap() {
            let body =
                serde_json::json!({"message": q.question, "locale": lang.code()}).to_string();
            let (status, _, a) = chat(app, &body, &[]).await;
            assert_eq!(status, StatusCode::OK, "{}", q.question);
            let answer = a["answer"].as_str().unwrap();
            total[lang as usize] += 1;
            right[lang as usize] += usize::from(missing_facts(answer, &q.facts).is_empty());
            // A product's facts may lead the answer; the questions name none of the demo's.
            let (Some(cited), None) = (a["sources"].as_array(), a.get("product")) else {
                continue;
            };
            let said = Locale::from_code(a["language"].as_str().unwrap()).unwrap();
            let mut rest = answer.to_string();
            for id in cited {
                let e = entries
                    .iter()
                    .find(|e| e.id == id.as_str().unwrap())
                    .unwrap();
                assert!(
                    rest.contains(&e.text[said as usize]),
                    "{id} not verbatim in {answer}"
                );
                rest = rest.replacen(&e.text[said as usize], "", 1);
            }
            let lines: Vec<&str> = rest.lines().filter(|l| !l.trim().is_empty()).collect();
            assert_eq!(
                lines.len(),
                2,
                "only the citation and the disclaimer remain: {rest}"
            );
        }
    }
    (right, total)
}

/// A site's own `chat/regulations.toml` adds entries (and replaces shipped ones of the same id);
/// a broken one is refused with its file, line and column.
#[tokio::test]
async fn a_site_adds_regulatory_entries_of_its_own() {
    let origin = Origin::start().await;
    let chat = "[chat]\npath = \"/api/chat\"\n";
    let own = "[[entry]]\nid = \"id-batam-free-trade-zone\"\nmarket = \"ID\"\nauthority = \"BP Batam\"\ntopic = \"Batam free trade zone\"\nkeywords = [\"batam\", \"free trade zone\", \"FTZ\"]\nsource = \"BP Batam\"\nreviewed = \"2026-12\"\n[entry.text]\nen = \"Goods entering the Batam free trade zone are declared to customs in Batam and pay no import duty while they stay in the zone.\"\nid = \"Barang yang masuk kawasan perdagangan bebas Batam diberitahukan ke bea cukai Batam dan tidak dikenai bea masuk selama berada di kawasan.\"\nvi = \"Hàng vào khu thương mại tự do Batam khai báo với hải quan Batam và không chịu thuế nhập khẩu khi còn trong khu.\"\nth = \"สินค้าที่เข้าเขตการค้าเสรีบาตัมต้องสำแดงต่อศุลกากรบาตัม และไม่เสียอากรขาเข้าระหว่างอยู่ในเขต\"\n";
    let rules = RulesDir::new()
        .site("shop", &site_for(origin.addr, chat))
        .file("shop/chat/regulations.toml", own);
    let app = start_proxy(&rules).await;
    let req = Request::post(format!("http://{}/api/chat", app.http_addr))
        .header("host", "shop.test")
        .header("content-type", "application/json")
        .body(full_body(
            r#"{"message":"is there import duty in the Batam free trade zone?"}"#.to_string(),
        ))
        .unwrap();
    let (_, _, bytes) = fetch(&http1_client(), req).await;
    let a: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(a["sources"][0], "id-batam-free-trade-zone", "{a}");
    assert!(
        a["answer"]
            .as_str()
            .unwrap()
            .contains("BP Batam (reviewed 2026-12)"),
        "{a}"
    );

    let broken = own.replace("market = \"ID\"", "market = \"Batam\"");
    let rules = RulesDir::new()
        .site("shop", &site_for(origin.addr, chat))
        .file("shop/chat/regulations.toml", &broken);
    let err = edgeseo::config::Rules::load(rules.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "shop/chat/regulations.toml:3:10: [id-batam-free-trade-zone] unknown market `Batam`"
        ),
        "{err}"
    );
}
