//! Two instances sharing one Redis (`[fleet]`), as a hosting provider runs them behind a load
//! balancer: a chat client spread over both is held to one quota, a purge or reload asked of one
//! reaches the other, and when Redis dies both go on serving on their own limits.
//! Needs Debian's redis-server (started here on a loopback port); skipped with a message without
//! it, unless `EDGESEO_REQUIRE_REDIS=1` (set by .ci/run, which installs it).

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use edgeseo::app::App;
use http::{Request, StatusCode};

const TOKEN: &str = "fleet-test-token-0123456789";

struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Option<Redis> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var_os("EDGESEO_REQUIRE_REDIS").is_none(),
                "redis-server is required (apt-get install redis-server)"
            );
            eprintln!("skipped: redis-server not installed (apt-get install redis-server)");
            return None;
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let redis = Redis {
            child,
            port,
            _dir: dir,
        };
        let client = redis::Client::open(redis.url()).unwrap();
        let start = Instant::now();
        let answers = || {
            let mut conn = client.get_connection().ok()?;
            redis::cmd("PING").query::<String>(&mut conn).ok()
        };
        while answers().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "redis-server never answered"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn chat(app: &App) -> (StatusCode, Duration) {
    let req = Request::post(format!("http://{}/api/chat", app.http_addr))
        .header("host", "shop.test")
        .header("content-type", "application/json")
        .body(full_body(
            r#"{"message":"what is your price for 500 pcs?","locale":"en"}"#,
        ))
        .unwrap();
    let start = Instant::now();
    let (status, _, _) = fetch(&http1_client(), req).await;
    (status, start.elapsed())
}

async fn page(app: &App) -> String {
    let (status, headers, _) =
        fetch(&http1_client(), get(app.http_addr, "shop.test", "/about")).await;
    assert_eq!(status, StatusCode::OK);
    headers["x-edgeseo-cache"].to_str().unwrap().to_owned()
}

async fn admin(app: &App, path: &str, body: &str) -> (StatusCode, serde_json::Value) {
    let req = Request::post(format!("http://{}{path}", app.admin_addr.unwrap()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(full_body(body.to_string()))
        .unwrap();
    let (status, _, body) = fetch(&http1_client(), req).await;
    (status, serde_json::from_slice(&body).unwrap())
}

async fn metrics(app: &App) -> String {
    let req = Request::get(format!("http://{}/metrics", app.admin_addr.unwrap()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(full_body(""))
        .unwrap();
    String::from_utf8(fetch(&http1_client(), req).await.2.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_quotas_purges_and_reloads_and_outlive_redis() {
    let Some(mut redis) = Redis::start() else {
        return;
    };
    let origin = Origin::start().await;
    origin.serve(
        "/about",
        CannedPage::html("<p>about us</p>").header("cache-control", "max-age=600"),
    );
    let rules = RulesDir::new()
        .site(
            "shop",
            &site_for(
                origin.addr,
                "[cache]\n[chat]\npath = \"/api/chat\"\nper_ip_per_minute = 4\n",
            ),
        )
        .file(
            "server.toml",
            &format!(
                "[admin]\ntoken = \"{TOKEN}\"\n[reload]\nwatch = false\n[fleet]\nredis = \"{}\"\nkey_prefix = \"fleet-test\"\n",
                redis.url()
            ),
        );
    let a = start_with_admin(&rules).await;
    let b = start_with_admin(&rules).await;

    // One client, its requests spread over both instances: four a minute in all, not per
    // instance. (The instances reach Redis in the background; the first answers may come
    // before, from their own limiters, so wait until a purge is told.)
    eventually("both instances reach Redis", || async {
        admin(&a, "/purge", r#"{"site":"shop"}"#).await.1["fleet"] == "told"
            && admin(&b, "/purge", r#"{"site":"shop"}"#).await.1["fleet"] == "told"
    })
    .await;
    let mut statuses = Vec::new();
    for n in 0..8 {
        statuses.push(chat(if n % 2 == 0 { &a } else { &b }).await.0);
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, limited), (4, 4), "{statuses:?}");

    // A purge asked of one instance empties the other's cache too.
    for app in [&a, &b] {
        page(app).await;
        assert_eq!(page(app).await, "HIT");
    }
    let (status, body) = admin(&a, "/purge", r#"{"site":"shop"}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["fleet"], "told", "{body}");
    eventually("the other instance's page purged", || async {
        page(&b).await == "MISS"
    })
    .await;

    // So does a reload.
    let before = b.control.reloads();
    let (status, body) = admin(&a, "/reload", "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["fleet"], "told", "{body}");
    eventually("the other instance reloaded", || async {
        b.control.reloads() == before + 1
    })
    .await;

    assert!(metrics(&a).await.contains("edgeseo_fleet_redis_up 1\n"));

    // Redis gone: pages and chat go on, each instance on its own limits, none held up waiting.
    redis.kill();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, took) = chat(&a).await;
        assert!(took < Duration::from_secs(2), "a chat answer took {took:?}");
        statuses.push(status);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ],
        "the instance's own per-IP quota of 4"
    );
    assert_eq!(chat(&b).await.0, StatusCode::OK);
    page(&b).await;
    let (status, body) = admin(&a, "/purge", r#"{"site":"shop"}"#).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["fleet"], "unreachable", "{body}");
    let text = metrics(&a).await;
    assert!(text.contains("edgeseo_fleet_redis_up 0\n"), "{text}");
    let fallbacks: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("edgeseo_fleet_fallbacks_total "))
        .expect("fallbacks counted")
        .parse()
        .unwrap();
    assert!(fallbacks >= 5, "{text}");
}
