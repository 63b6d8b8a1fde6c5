//! `edgeseo stress` against chat servers on loopback whose latency is known: the figures it
//! reports are the server's, a stall is not hidden, and the report it writes can be verified.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use edgeseo::config::ChatExample;
use edgeseo::locale::Locale;
use edgeseo::server::{ConnInfo, Handler, Listener, Shutdown, serve};
use edgeseo::stress::{self, StressPlan};
use http_body_util::BodyExt;

/// A chat endpoint that answers after `delay`, intent `greeting` in English unless the message
/// says "ask moq"; from its `stall_at`-th request on, every request waits until two seconds
/// after that one arrived (a stop-the-world pause).
struct FixedLatencyChat {
    delay: Duration,
    stall_at: Option<u64>,
    seen: AtomicU64,
    stall_until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Handler for FixedLatencyChat {
    async fn handle(
        &self,
        req: http::Request<hyper::body::Incoming>,
        _conn: &ConnInfo,
    ) -> http::Response<edgeseo::body::Body> {
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let until = {
            let mut stall = self.stall_until.lock().unwrap();
            if self.stall_at == Some(n) {
                *stall = Some(tokio::time::Instant::now() + Duration::from_secs(2));
            }
            *stall
        };
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        tokio::time::sleep(self.delay).await;
        let intent = if json["message"].as_str().unwrap().contains("ask moq") {
            "moq"
        } else {
            "greeting"
        };
        let reply = serde_json::json!({"language": "en", "intent": intent, "confidence": 0.9, "answer": "Hello", "source": "kb"});
        http::Response::new(edgeseo::body::full(reply.to_string()))
    }
}

async fn chat_server(
    delay: Duration,
    stall_at: Option<u64>,
) -> (String, tokio::sync::watch::Sender<bool>) {
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let (stop, shutdown) = Shutdown::new();
    let handler = FixedLatencyChat {
        delay,
        stall_at,
        seen: AtomicU64::new(0),
        stall_until: std::sync::Mutex::new(None),
    };
    tokio::spawn(serve(
        Listener { tcp, tls: None },
        Arc::new(handler),
        edgeseo::config::ServerSettings::default(),
        shutdown,
    ));
    (format!("http://{addr}/api/chat"), stop)
}

fn messages() -> Vec<ChatExample> {
    // Three of four answered right: "ask moq" comes back as moq, labelled greeting.
    ["hello there", "good morning", "hi team", "hello, ask moq"]
        .iter()
        .map(|t| ChatExample {
            text: (*t).to_owned(),
            intent: "greeting".to_owned(),
            lang: Locale::En,
            industry: None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_the_servers_latency_and_the_planned_rate() {
    let (target, stop) = chat_server(Duration::from_millis(20), None).await;
    let plan = StressPlan {
        target,
        rate: 200.0,
        duration: Duration::from_secs(2),
        timeout: Duration::from_secs(3),
        messages: messages(),
    };
    let r = stress::run(&plan, |_| {}).await.unwrap();
    assert_eq!(
        (r.sent, r.ok, r.errors, r.timeouts),
        (400, 400, 0, 0),
        "{r:?}"
    );
    assert!((r.achieved_rate - 200.0).abs() < 1.0, "{r:?}");
    let l = &r.latency_ms;
    // The server's 20 ms, plus loopback and scheduling; never less.
    assert!(l.p50 >= 20.0 && l.p50 < 60.0, "{l:?}");
    assert!(l.mean >= 20.0 && l.mean < 80.0, "{l:?}");
    let all = r.accuracy.iter().find(|a| a.lang == "all").unwrap();
    assert_eq!(
        (all.answered, all.intent_correct, all.language_correct),
        (400, 300, 400)
    );
    assert_eq!(r.timeline.len(), 2);
    assert!(
        r.timeline.iter().all(|s| s.sent == 200 && s.ok == 200),
        "{:?}",
        r.timeline
    );
    let _ = stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_second_stall_shows_in_p99_and_max() {
    let (target, stop) = chat_server(Duration::from_millis(2), Some(100)).await;
    let plan = StressPlan {
        target,
        rate: 200.0,
        duration: Duration::from_secs(3),
        timeout: Duration::from_secs(5),
        messages: messages(),
    };
    let r = stress::run(&plan, |_| {}).await.unwrap();
    assert_eq!(r.ok, 600, "{r:?}");
    let l = &r.latency_ms;
    // Open loop: requests due during the stall are not postponed, so they wait it out.
    assert!(l.max >= 1900.0 && l.max < 2600.0, "{l:?}");
    assert!(l.p99 >= 1500.0, "{l:?}");
    let worst = r.timeline.iter().map(|s| s.max_ms).fold(0.0, f64::max);
    assert!(worst >= 1900.0, "{:?}", r.timeline);
    let _ = stop.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_verifies_until_a_byte_changes() {
    let (target, stop) = chat_server(Duration::from_millis(1), None).await;
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set.csv");
    std::fs::write(
        &set,
        "text,intent,lang\nhello there,greeting,en\nhello ask moq,greeting,en\n",
    )
    .unwrap();
    let out = dir.path().join("report");
    let edgeseo = || Command::new(env!("CARGO_BIN_EXE_edgeseo"));
    let run = edgeseo()
        .args([
            "stress",
            "--target",
            &target,
            "--rate",
            "50",
            "--duration",
            "1s",
            "--set",
        ])
        .arg(&set)
        .arg("--out")
        .arg(&out)
        // No PDF here (tests/audit.rs reads one back): a browser starting would disturb the
        // latency measured by the other tests of this file, which run alongside.
        .env("EDGESEO_CHROMIUM", "/nonexistent/chromium")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    // 50 req/s and 50 % intent: the run works, the certification fails (exit 2), and says why.
    assert_eq!(
        run.status.code(),
        Some(2),
        "{stdout}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("FAIL  throughput: 50.0 answers/s"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  intent recognition: 50.0 %"),
        "{stdout}"
    );
    assert!(stdout.contains("pass  average latency"), "{stdout}");

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schema"], "edgeseo-report/1");
    assert_eq!(report["stress"]["passed"], false);
    assert_eq!(report["stress"]["result"]["sent"], 50);
    let input = &report["inputs"][0];
    assert_eq!(input["path"], set.display().to_string());
    assert_eq!(
        input["sha256"],
        edgeseo::report::sha256_hex(&std::fs::read(&set).unwrap())
    );
    assert_eq!(
        report["edgeseo"]["executable_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64
    );

    let verify = || {
        let out = edgeseo().arg("verify-report").arg(&out).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = verify();
    assert!(
        ok && text.contains("ok        report.json") && text.contains("ok        report.html"),
        "{text}"
    );

    // The message set changed since: still an intact report, with a note.
    std::fs::write(&set, "text,intent,lang\nhi,greeting,en\n").unwrap();
    let (ok, text) = verify();
    assert!(
        ok && text.contains("differs from the one the report was made from"),
        "{text}"
    );

    let mut bytes = std::fs::read(out.join("report.json")).unwrap();
    let at = bytes.iter().position(|&b| b == b'5').unwrap();
    bytes[at] = b'6';
    std::fs::write(out.join("report.json"), &bytes).unwrap();
    let (ok, text) = verify();
    assert!(!ok && text.contains("CHANGED   report.json"), "{text}");
    bytes[at] = b'5';
    std::fs::write(out.join("report.json"), &bytes).unwrap();
    std::fs::write(out.join("extra.html"), "<p>added later</p>").unwrap();
    let (ok, text) = verify();
    assert!(!ok && text.contains("UNLISTED  extra.html"), "{text}");
    let _ = stop.send(true);
}
