//! Rules reloaded when their files change on disk: an edit is served without a signal, an
//! invalid edit keeps the previous rules serving and is reported, and reloads under load fail
//! no request.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use edgeseo::app::App;
use http::{Request, StatusCode};

const TOKEN: &str = "reload-test-token-0123456789";

fn rules(origin: std::net::SocketAddr) -> RulesDir {
    RulesDir::new().site("shop", &site_for(origin, "")).file(
        "server.toml",
        &format!("[admin]\ntoken = \"{TOKEN}\"\n[reload]\ndebounce = \"100ms\"\n"),
    )
}

/// Saves as editors do: a new file renamed over the old one.
fn save(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.swp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

async fn status(app: &App, host: &str) -> StatusCode {
    fetch(&http1_client(), get(app.http_addr, host, "/about"))
        .await
        .0
}

async fn health(app: &App) -> serde_json::Value {
    let req = Request::get(format!("http://{}/healthz", app.admin_addr.unwrap()))
        .body(full_body(""))
        .unwrap();
    let (_, _, body) = fetch(&http1_client(), req).await;
    serde_json::from_slice(&body).unwrap()
}

async fn metrics(app: &App) -> String {
    let req = Request::get(format!("http://{}/metrics", app.admin_addr.unwrap()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(full_body(""))
        .unwrap();
    String::from_utf8(fetch(&http1_client(), req).await.2.to_vec()).unwrap()
}

#[tokio::test]
async fn an_edit_on_disk_is_served_without_a_signal() {
    let origin = Origin::start().await;
    origin.serve("/about", CannedPage::html("<p>about</p>"));
    let rules = rules(origin.addr);
    let app = start_with_admin(&rules).await;
    assert_eq!(status(&app, "shop.test").await, StatusCode::OK);
    assert_ne!(status(&app, "new.test").await, StatusCode::OK);

    let site = site_for(origin.addr, "").replace("\"shop.test\"", "\"shop.test\", \"new.test\"");
    save(&rules.path().join("shop/site.toml"), &site);
    eventually("the new host is served", || async {
        status(&app, "new.test").await == StatusCode::OK
    })
    .await;
    assert_eq!(app.control.reloads(), 1, "one save, one reload");
}

/// A ConfigMap update as the kubelet makes it: the new files in a new timestamped directory,
/// then `..data` swapped to it by a rename; the names in the rules directory are links through
/// `..data` and never change themselves.
#[tokio::test]
#[cfg(unix)]
async fn a_kubernetes_config_map_update_is_served_without_a_signal() {
    use std::os::unix::fs::symlink;
    let origin = Origin::start().await;
    origin.serve("/about", CannedPage::html("<p>about</p>"));
    let rules = RulesDir::new();
    let root = rules.path();
    let write_version = |stamp: &str, hosts: &str| {
        let site = site_for(origin.addr, "").replace("\"shop.test\"", hosts);
        std::fs::create_dir_all(root.join(stamp).join("shop")).unwrap();
        std::fs::write(root.join(stamp).join("shop/site.toml"), site).unwrap();
        std::fs::write(
            root.join(stamp).join("server.toml"),
            format!("[admin]\ntoken = \"{TOKEN}\"\n[reload]\ndebounce = \"100ms\"\n"),
        )
        .unwrap();
    };
    write_version("..2026_12_06_10_00_00.1", "\"shop.test\"");
    symlink("..2026_12_06_10_00_00.1", root.join("..data")).unwrap();
    symlink("..data/shop", root.join("shop")).unwrap();
    symlink("..data/server.toml", root.join("server.toml")).unwrap();
    let app = start_with_admin(&rules).await;
    assert_eq!(status(&app, "shop.test").await, StatusCode::OK);
    assert_ne!(status(&app, "new.test").await, StatusCode::OK);

    write_version("..2026_12_06_10_05_00.2", "\"shop.test\", \"new.test\"");
    symlink("..2026_12_06_10_05_00.2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    eventually("the new host is served", || async {
        status(&app, "new.test").await == StatusCode::OK
    })
    .await;
    assert_eq!(health(&app).await["rules"]["valid"], true);
}

#[tokio::test]
async fn an_invalid_edit_keeps_the_old_rules_and_is_reported() {
    let origin = Origin::start().await;
    origin.serve("/about", CannedPage::html("<p>about</p>"));
    let rules = rules(origin.addr);
    let app = start_with_admin(&rules).await;
    let path = rules.path().join("shop/site.toml");
    assert_eq!(health(&app).await["rules"]["valid"], true);

    save(
        &path,
        &site_for(origin.addr, "[cache]\nmax_age = \"soon\"\n"),
    );
    eventually("the edit is refused", || async {
        health(&app).await["rules"]["valid"] == false
    })
    .await;
    let error = health(&app).await["rules"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        error.contains("site.toml:"),
        "file, line and column: {error}"
    );
    assert!(
        error.contains("soon") || error.contains("max_age"),
        "{error}"
    );
    assert_eq!(
        status(&app, "shop.test").await,
        StatusCode::OK,
        "old rules serve"
    );
    let m = metrics(&app).await;
    assert!(m.contains("edgeseo_rules_valid 0"), "{m}");
    assert!(m.contains("edgeseo_reload_failures_total 1"), "{m}");

    save(&path, &site_for(origin.addr, ""));
    eventually("the fixed rules are taken", || async {
        health(&app).await["rules"]["valid"] == true
    })
    .await;
    assert!(metrics(&app).await.contains("edgeseo_rules_valid 1"));
}

#[tokio::test]
async fn twenty_reloads_under_load_fail_no_request() {
    let origin = Origin::start().await;
    origin.serve("/about", CannedPage::html("<p>about</p>"));
    let rules = rules(origin.addr);
    let app = Arc::new(start_with_admin(&rules).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (app, stop, done, failed) = (app.clone(), stop.clone(), done.clone(), failed.clone());
        load.push(tokio::spawn(async move {
            let client = http1_client();
            // Bounded: the loop also ends after a minute.
            let start = Instant::now();
            while !stop.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(60) {
                let req = get(app.http_addr, "shop.test", "/about");
                match client.request(req).await {
                    Ok(resp) if resp.status() == StatusCode::OK => {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let path = rules.path().join("shop/site.toml");
    for i in 1..=20u64 {
        let before = done.load(Ordering::Relaxed);
        save(&path, &format!("# edit {i}\n{}", site_for(origin.addr, "")));
        eventually("the edit is reloaded", || async {
            app.control.reloads() >= i
        })
        .await;
        eventually("requests flow", || async {
            done.load(Ordering::Relaxed) > before
        })
        .await;
        assert_eq!(failed.load(Ordering::Relaxed), 0, "after reload {i}");
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let (done, failed) = (done.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert_eq!(failed, 0, "{failed} of {} requests failed", done + failed);
    assert!(app.control.reloads() >= 20);
    assert_eq!(app.control.reload_failures(), 0);
    println!("20 reloads while {done} requests were served, none failed");
}
