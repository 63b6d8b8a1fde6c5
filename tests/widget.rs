//! The chat widget in a real browser: Debian's headless Chromium, driven by playwright-core
//! (tests/browser), opens a demo page through edgeseo, uses the widget with the keyboard and
//! reads the answer back. Skipped with a message where Node, playwright-core or Chromium is
//! missing, unless EDGESEO_REQUIRE_BROWSER=1 (as in .ci/run, which installs them).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use http::{Request, StatusCode};
use serde_json::Value;

fn browser_available(dir: &Path) -> Result<(), String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!("{chromium} not found (apt-get install chromium)"));
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return Err("playwright-core not installed (cd tests/browser && npm ci)".into());
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err("node not found".into()),
    }
}

/// Runs the browser script against `base`; `None` when the browser test is skipped.
async fn buyer_session(base: &str, path: &str, message: &str) -> Option<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if let Err(why) = browser_available(&dir) {
        assert!(
            std::env::var_os("EDGESEO_REQUIRE_BROWSER").is_none(),
            "browser test required but {why}"
        );
        eprintln!("skipping the browser test: {why}");
        return None;
    }
    let out = tokio::time::timeout(
        std::time::Duration::from_secs(90),
        tokio::process::Command::new("node")
            .arg(dir.join("widget.mjs"))
            .args([base, path, message])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("browser run finishes within 90 s")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_str(stdout.trim()).expect("JSON from the browser run"))
}

const QUESTION: &str = "kak, minimal order blender berapa pcs ya?";

#[tokio::test]
async fn buyer_asks_in_indonesian_and_reads_the_indonesian_answer() {
    let app = start_demo().await;
    let base = format!("http://{}", app.http_addr);
    let Some(seen) = buyer_session(&base, "/id/products", QUESTION).await else {
        return;
    };

    // The same question straight to the endpoint, as the widget's page would ask it.
    let req = Request::post(format!("{base}/api/chat"))
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(full_body(
            serde_json::json!({"message": QUESTION, "locale": "id"}).to_string(),
        ))
        .unwrap();
    let (status, _, bytes) = fetch(&http1_client(), req).await;
    assert_eq!(status, StatusCode::OK);
    let api: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(api["language"], "id");
    assert_eq!(api["intent"], "moq");

    // Indonesian interface on an Indonesian page.
    assert_eq!(seen["launcher"], "Chat dengan kami", "{seen}");
    assert_eq!(seen["title"], "Layanan pelanggan", "{seen}");
    assert_eq!(seen["placeholder"], "Ketik pertanyaan Anda…", "{seen}");
    assert_eq!(seen["launcherExpanded"], "false");
    // Keyboard: Enter on the launcher opens it with the cursor in the message field; Escape
    // closes it and gives focus back to the launcher.
    assert_eq!(seen["focusAfterOpen"], "input", "{seen}");
    assert_eq!(seen["hiddenAfterEscape"], true, "{seen}");
    assert_eq!(seen["focusAfterEscape"], "button.l", "{seen}");
    // The buyer's question and the Indonesian knowledge-base answer.
    assert_eq!(seen["question"], QUESTION);
    assert_eq!(seen["lang"], "id", "{seen}");
    assert_eq!(seen["intent"], "moq", "{seen}");
    assert_eq!(seen["answer"], api["answer"], "{seen}");
    // The blender's facts lead the answer, and the link to its Indonesian page is one to click.
    assert_eq!(api["product"], "LH-BL-15");
    assert_eq!(
        seen["links"],
        serde_json::json!([{"href": "/id/products/blender-1-5l", "text": "/id/products/blender-1-5l"}]),
        "{seen}"
    );
    // On a 360 px wide phone the open panel fills the screen and nothing sticks out.
    let panel = &seen["mobilePanel"];
    assert!(panel["x"].as_f64().unwrap() >= 0.0, "{seen}");
    assert!(
        panel["x"].as_f64().unwrap() + panel["width"].as_f64().unwrap() <= 360.5,
        "{seen}"
    );
    assert!(panel["width"].as_f64().unwrap() >= 359.0, "{seen}");
    let launcher = &seen["mobileLauncher"];
    assert!(
        launcher["height"].as_f64().unwrap() >= 44.0,
        "touch target: {seen}"
    );
    // On phones the launcher sits in the switcher's bar, not over the page: no price or form
    // field under it.
    let phones = seen["phones"].as_array().expect("phone widths measured");
    assert_eq!(phones.len(), 3, "{seen}");
    for phone in phones {
        assert_eq!(phone["inSwitcher"], true, "{phone}");
        assert_eq!(phone["fixed"], "static", "{phone}");
        assert!(phone["guarded"].as_u64().unwrap() > 0, "{phone}");
        assert_eq!(phone["covered"], serde_json::json!([]), "{phone}");
        assert!(
            phone["launcher"]["height"].as_f64().unwrap() >= 44.0,
            "{phone}"
        );
    }
    // The suggestion banner on the English page sits above the page, not over it, in the
    // buyer's language, and "no thanks" is remembered.
    let banner = &seen["banner"];
    assert_eq!(banner["position"], "static", "{seen}");
    assert_eq!(banner["firstInBody"], true, "{seen}");
    assert_eq!(banner["lang"], "id", "{seen}");
    assert!(
        banner["nextTop"].as_f64().unwrap() >= banner["bottom"].as_f64().unwrap() - 0.5,
        "{seen}"
    );
    assert!(
        banner["offer"]
            .as_str()
            .unwrap()
            .contains("next=%2Fid%2Fproducts"),
        "{seen}"
    );
    assert_eq!(seen["bannerAfterDismiss"], 0, "{seen}");
    assert_eq!(seen["dismissCookie"], "en", "{seen}");
    // The language switcher's link leads to the Vietnamese page and the choice is remembered.
    assert_eq!(seen["switchedPath"], "/vi/products", "{seen}");
    assert_eq!(seen["switchedLang"], "vi-VN", "{seen}");
    assert_eq!(seen["localeCookie"], "vi", "{seen}");
}

#[tokio::test]
async fn a_backends_event_stream_is_shown_as_one_answer() {
    let backend = Origin::start().await;
    backend.serve(
        "/chat",
        CannedPage::new(
            "text/event-stream",
            concat!(
                "event: meta\ndata: {\"ticket\":7}\n\n",
                "data: {\"delta\":\"Halo kak, \"}\n\n",
                "data: {\"delta\":\"minimal 200 unit.\"}\n\n",
                "data: [DONE]\n\n",
            ),
        ),
    );
    let app = start_demo_with_backend(&format!("http://{}/chat", backend.addr), "").await;
    let base = format!("http://{}", app.http_addr);
    let Some(seen) = buyer_session(&base, "/id/", QUESTION).await else {
        return;
    };
    assert_eq!(seen["answer"], "Halo kak, minimal 200 unit.", "{seen}");
    assert_eq!(seen["lang"], "id", "{seen}");
    assert_eq!(seen["intent"], "moq", "{seen}");
    let asked = backend
        .last_headers("/chat")
        .expect("the backend was asked");
    assert_eq!(asked["x-edgeseo-language"], "id");
}

#[tokio::test]
async fn a_generated_reply_streams_into_the_widget() {
    // An OpenAI-compatible model that streams its reply in three chunks.
    let model = Origin::start().await;
    let reply = [
        "Halo kak, untuk blender ",
        "minimal order kami 500 pcs per model, ",
        "dan warna bisa disesuaikan untuk pesanan di atas jumlah itu ya.",
    ];
    let mut events: String = reply
        .iter()
        .map(|t| {
            let chunk = serde_json::json!({"choices": [{"delta": {"content": t}}]});
            format!("data: {chunk}\n\n")
        })
        .collect();
    events.push_str("data: [DONE]\n\n");
    model.serve(
        "/v1/chat/completions",
        CannedPage::new("text/event-stream", events),
    );
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/demo-supplier");
    let url = format!("http://{}/v1/chat/completions", model.addr);
    let rules = copy_site(&src, "demo", |site| {
        site.replace(
            "[chat]\n",
            &format!("[chat]\nllm = {{ url = \"{url}\", model = \"m\" }}\n"),
        )
    });
    let app = start_proxy(&rules).await;
    let base = format!("http://{}", app.http_addr);
    let Some(seen) = buyer_session(&base, "/id/", QUESTION).await else {
        return;
    };
    assert_eq!(seen["answer"], reply.concat(), "{seen}");
    assert_eq!(seen["lang"], "id", "{seen}");
    assert!(model.last_headers("/v1/chat/completions").is_some());
}
