//! The `edgeseo` binary as an operator runs it.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use http::StatusCode;

/// `edgeseo check` on a rules directory that has problems: what it printed.
fn check_fails(rules: &Path) -> String {
    let out = edgeseo()
        .args(["check", "--rules"])
        .arg(rules)
        .output()
        .unwrap();
    assert!(!out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

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
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // The coverage of each locale's translation, as the coverage guard sees it.
    for locale in ["id", "vi", "th"] {
        let expected = format!("demo-supplier/{locale}: page text 100.0 % translated");
        assert!(
            stdout.contains(&expected),
            "missing `{expected}` in:\n{stdout}"
        );
    }
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
    let stdout = check_fails(rules.path());
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
    let mut site_toml = String::new();
    let rules = copy_site(&shop, "shop", |site| {
        site_toml = site.replace(
            "min_coverage = 0",
            "min_coverage = 1.5\nexclude = [\".reviews\", \"div[\"]\nglossary = [\"LIANHE\", \" \"]",
        );
        site_toml.clone()
    })
    .file(
        "shop/translations/th.po",
        "msgid \"\"\nmsgstr \"\"\n\n#: /guide\nmsgid \"ราคา\"\nmsgstr \"ราคา ส่ง\n",
    );
    let stdout = check_fails(rules.path());
    // Columns count characters: the Thai text is 8 characters (24 bytes) long.
    let expected = format!(
        "{}/shop/translations/th.po:6:17: missing closing quote",
        rules.path().display()
    );
    assert!(
        stdout.lines().any(|l| l == expected),
        "missing `{expected}` in:\n{stdout}"
    );
    let line = |key: &str| 1 + site_toml.lines().position(|l| l.starts_with(key)).unwrap();
    let root = rules.path().display();
    for expected in [
        format!(
            "{root}/shop/site.toml:{}:16: min_coverage is a share between 0 and 1",
            line("min_coverage")
        ),
        format!(
            "{root}/shop/site.toml:{}:24: invalid CSS selector",
            line("exclude")
        ),
        format!(
            "{root}/shop/site.toml:{}:23: a glossary term cannot be empty",
            line("glossary")
        ),
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(&expected)),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}

/// `translate extract` crawls the origin (home, sitemap, links; robots.txt obeyed), merges what it
/// finds into the PO files (translations kept, vanished ones obsolete), and what it writes is
/// valid for gettext's own checker.
#[tokio::test(flavor = "multi_thread")]
async fn translate_extract_crawls_the_origin_and_merges_the_po_files() {
    let origin = Origin::start().await;
    let html = |body: &str| {
        CannedPage::new(
            "text/html; charset=utf-8",
            format!("<html><body>{body}</body></html>"),
        )
    };
    origin.serve(
        "/robots.txt",
        CannedPage::new(
            "text/plain",
            "User-agent: *\nDisallow: /private\nSitemap: http://shop.test/map.xml\n",
        ),
    );
    origin.serve(
        "/map.xml",
        CannedPage::new(
            "application/xml",
            "<urlset><url><loc>http://shop.test/guide</loc></url></urlset>",
        ),
    );
    origin.serve(
        "/",
        html("<h1>Welcome buyers</h1><p>See <a href=\"/b\">our <b>range</b></a> and <a href=\"/private\">staff</a>.</p><a href=\"https://elsewhere.example/x\">out</a>"),
    );
    origin.serve(
        "/guide",
        html("<h1>Kettle buying guide</h1><p>Price 12 USD</p>"),
    );
    origin.serve(
        "/b",
        html("<p>Welcome buyers</p><img src=\"/k.jpg\" alt=\"Kettle on a table\">"),
    );
    origin.serve("/private", html("<p>Staff only</p>"));
    let rules = fixture_site(origin.addr, |site| site);
    let po = rules.path().join("shop/translations/id.po");
    let before = std::fs::read_to_string(&po).unwrap();
    assert!(before.contains("msgstr \"Panduan membeli ketel\""));

    let dir = rules.path().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        edgeseo()
            .args([
                "translate",
                "extract",
                "--site",
                "shop",
                "--max-pages",
                "10",
                "--rules",
            ])
            .arg(&dir)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !origin.seen.lock().unwrap().contains_key("/private"),
        "robots.txt obeyed"
    );
    assert!(stdout.starts_with("3 pages, 6 segments"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("/guide") && l.contains("3/4")),
        "{stdout}"
    );

    let after = std::fs::read_to_string(&po).unwrap();
    for entry in [
        "#: /guide\nmsgid \"Kettle buying guide\"\nmsgstr \"Panduan membeli ketel\"",
        "#: / /b\nmsgid \"Welcome buyers\"\nmsgstr \"\"",
        "#: /\nmsgid \"See <1>our <2>range</2></1> and <3>staff</3>.\"\nmsgstr \"\"",
        "#: /b\nmsgid \"Kettle on a table\"\nmsgstr \"Ketel di atas meja\"",
        "#~ msgid \"Auto shut-off\"\n#~ msgstr \"Mati otomatis\"",
    ] {
        assert!(after.contains(entry), "missing {entry:?} in:\n{after}");
    }
    assert!(!after.contains("Staff only"), "{after}");
    let vi = std::fs::read_to_string(rules.path().join("shop/translations/vi.po")).unwrap();
    assert!(vi.contains("\"Language: vi\\n\"") && vi.contains("msgid \"Welcome buyers\""));

    match Command::new("msgfmt").arg("--version").output() {
        Ok(_) => {
            for file in [&po, &rules.path().join("shop/translations/vi.po")] {
                let check = Command::new("msgfmt")
                    .args(["--check", "--check-format", "-o", "/dev/null"])
                    .arg(file)
                    .output()
                    .unwrap();
                assert!(
                    check.status.success(),
                    "{}",
                    String::from_utf8_lossy(&check.stderr)
                );
            }
        }
        Err(_) if std::env::var_os("EDGESEO_REQUIRE_MSGFMT").is_none() => {
            eprintln!("msgfmt (Debian package gettext) not installed: PO files not checked by it");
        }
        Err(e) => panic!("msgfmt is needed in CI (.ci/run installs gettext): {e}"),
    }
}
