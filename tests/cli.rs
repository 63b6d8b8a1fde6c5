//! The `edgeseo` binary as an operator runs it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use http::StatusCode;

fn edgeseo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgeseo"))
}

#[test]
fn check_accepts_the_shipped_rules() {
    let out = edgeseo()
        .args([
            "check",
            "--rules",
            concat!(env!("CARGO_MANIFEST_DIR"), "/rules"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn check_reports_every_problem_with_its_position() {
    let rules = RulesDir::new()
        .site("a", "hosts = [\"a.test\"]\ncolour = \"blue\"\n[origin]\nurl = \"http://127.0.0.1:1\"\n")
        .site(
            "b",
            "hosts = [\"b.test\", \"b.test:80\"]\n[origin]\nurl = \"ftp://127.0.0.1\"\nconnect_timeout = \"soon\"\n",
        )
        .site("c", "hosts = [\"c.test\"\n")
        .file("server.toml", "[limits]\nidle_timeout = \"0s\"\n");
    let out = edgeseo()
        .args(["check", "--rules"])
        .arg(rules.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let root = rules.path().display().to_string();
    for expected in [
        format!("{root}/a/site.toml:2:1: unknown field `colour`"),
        format!("{root}/b/site.toml:1:20: `b.test:80` is not a host name"),
        format!("{root}/b/site.toml:3:7: origin url scheme must be http or https"),
        format!("{root}/b/site.toml:4:19: invalid duration `soon`"),
        format!("{root}/c/site.toml:1:"),
        format!("{root}/server.toml:2:16: duration must be greater than zero"),
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&expected)),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}

#[test]
fn demo_serves_the_sample_site_and_stops_on_sigterm() {
    let mut child = edgeseo()
        .args(["demo", "--listen", "127.0.0.1:0", "--rules"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let home = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|line| {
            line.split_whitespace()
                .find(|w| w.starts_with("http://127.0.0.1:") && w.ends_with('/'))
                .filter(|_| line.trim_start().starts_with("home"))
                .map(str::to_string)
        })
        .expect("demo prints its home URL");
    // Keep reading so the demo never writes into a closed pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let addr: std::net::SocketAddr = home
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let client = http1_client();
        for host in ["127.0.0.1", "localhost"] {
            let (status, _, body) =
                fetch(&client, get(addr, &format!("{host}:{}", addr.port()), "/")).await;
            assert_eq!(status, StatusCode::OK);
            let page = String::from_utf8_lossy(&body);
            assert!(page.contains("LIANHE"), "demo home page through the proxy");
        }
    });

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "clean exit after SIGTERM: {status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "demo did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn chat_eval_prints_the_figures_of_a_labelled_set() {
    let root = env!("CARGO_MANIFEST_DIR");
    let eval = |set: &std::path::Path| {
        edgeseo()
            .args(["chat", "eval", "--rules", &format!("{root}/rules")])
            .args(["--site", "demo-supplier", "--set"])
            .arg(set)
            .output()
            .unwrap()
    };
    let out = eval(std::path::Path::new(&format!(
        "{root}/tests/data/chat/blind/vi.csv"
    )));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "site demo-supplier: 269 messages",
        "vi ",
        "all ",
        "per intent",
        "certification",
        "language ID",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing in:\n{stdout}"
        );
    }

    let broken = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(broken.path(), "text,intent,lang\nhalo,greeting,jv\n").unwrap();
    let out = eval(broken.path());
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:2:1: unknown language `jv`",
            broken.path().display()
        )),
        "{stderr}"
    );
}

#[test]
fn check_rejects_a_broken_translation_file_with_its_position() {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/shop");
    let rules = copy_site(&shop, "shop", |site| site).file(
        "shop/translations/th.po",
        "msgid \"\"\nmsgstr \"\"\n\n#: /guide\nmsgid \"ราคา\"\nmsgstr \"ราคา ส่ง\n",
    );
    let out = edgeseo()
        .args(["check", "--rules"])
        .arg(rules.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Columns count characters: the Thai text is 8 characters (24 bytes) long.
    let expected = format!(
        "{}/shop/translations/th.po:6:17: missing closing quote",
        rules.path().display()
    );
    assert!(
        stdout.lines().any(|l| l == expected),
        "missing `{expected}` in:\n{stdout}"
    );
}
