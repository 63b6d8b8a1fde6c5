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

/// Every one of `expected` begins a line of `check`'s report.
fn assert_reported(stdout: &str, expected: &[String]) {
    for expected in expected {
        assert!(
            stdout.lines().any(|l| l.starts_with(expected.as_str())),
            "missing `{expected}` in:\n{stdout}"
        );
    }
}

fn edgeseo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_edgeseo"))
}

/// The fixture shop with its pages.toml edited: the rules directory and the edited text.
fn shop_with_pages(edit: impl FnOnce(String) -> String) -> (RulesDir, String) {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/shop");
    let pages = edit(std::fs::read_to_string(shop.join("pages.toml")).unwrap());
    let rules = copy_site(&shop, "shop", |site| site).file("shop/pages.toml", &pages);
    (rules, pages)
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
    // Every demo title and description has an alternative that fits each of its pages.
    assert!(!stdout.contains("warning"), "{stdout}");
}

/// Kubernetes mounts a ConfigMap's files through hidden directories (`..data`, linking to a
/// timestamped one, and each name a link through it); those are not sites, nor is `.git`.
#[test]
#[cfg(unix)]
fn check_accepts_rules_laid_out_as_kubernetes_mounts_them() {
    use std::os::unix::fs::symlink;
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/shop");
    let stamped = copy_site(&shop, "shop", |site| site);
    let rules = RulesDir::new().file(".git/HEAD", "ref: refs/heads/main\n");
    let stamp = rules.path().join("..2026_12_06_10_00_00.000000001");
    std::fs::rename(stamped.path(), &stamp).unwrap();
    symlink(
        "..2026_12_06_10_00_00.000000001",
        rules.path().join("..data"),
    )
    .unwrap();
    symlink("..data/shop", rules.path().join("shop")).unwrap();

    let out = edgeseo()
        .args(["check", "--rules"])
        .arg(rules.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("..data"), "{stdout}");
}

#[test]
fn check_warns_of_titles_and_descriptions_that_fit_no_results_page() {
    let long = "About {org.name}: kettles, kitchen appliances and housewares made in our own factory since 2008";
    let (rules, pages) = shop_with_pages(|pages| {
        pages
            .replace(
                "en = \"{product.name} | {org.name}\"",
                "en = [\"{product.name} from our factory in Foshan, Guangdong, wholesale for Southeast Asian importers | {org.name}\", \"{product.name} wholesale | {org.name}\"]",
            )
            .replace("en = \"About {org.name}\"", &format!("en = \"{long}\""))
    });
    let out = edgeseo()
        .args(["check", "--rules"])
        .arg(rules.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    // A warning, not an error: the rules load and serve.
    assert!(out.status.success(), "{stdout}");
    let line = 1 + pages
        .lines()
        .position(|l| l.contains("since 2008"))
        .unwrap();
    assert_reported(
        &stdout,
        &[format!(
            "{}/shop/pages.toml:{line}:6: warning: no title alternative (en) fits 600 px on any of its 1 page(s); shortened, e.g. /about → \"About Example",
            rules.path().display()
        )],
    );
    // The product title's second alternative fits: no warning for it.
    assert_eq!(stdout.matches("warning").count(), 1, "{stdout}");
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
        .site(
            "d",
            "hosts = [\"d.test\"]\n[origin]\nurl = \"http://127.0.0.1:1\"\n[organization]\nname = \"D\"\nprefer = \"both\"\n",
        )
        .file(
            "server.toml",
            "[limits]\nidle_timeout = \"0s\"\n[fleet]\nredis = \"http://cache.internal:6379\"\ntimeout = \"10s\"\n",
        );
    let stdout = check_fails(rules.path());
    let root = rules.path().display().to_string();
    assert_reported(
        &stdout,
        &[
            format!("{root}/a/site.toml:2:1: unknown field `colour`"),
            format!("{root}/b/site.toml:1:20: `b.test:80` is not a host name"),
            format!("{root}/b/site.toml:3:7: origin url scheme must be http or https"),
            format!("{root}/b/site.toml:4:19: invalid duration `soon`"),
            format!("{root}/c/site.toml:1:"),
            format!("{root}/d/site.toml:6:10: prefer must be \"origin\" or \"rules\""),
            format!("{root}/server.toml:2:16: duration must be greater than zero"),
            format!(
                "{root}/server.toml:4:9: redis must be a redis://host[:port][/db] or redis+unix:///path URL"
            ),
        ],
    );
}

#[test]
fn check_rejects_a_bad_fleet_with_its_position() {
    let rules = RulesDir::new()
        .site(
            "a",
            "hosts = [\"a.test\"]\n[origin]\nurl = \"http://127.0.0.1:1\"\n",
        )
        .file(
            "server.toml",
            "[fleet]\nredis = \"redis://127.0.0.1:6379/0\"\nkey_prefix = \"two words\"\n",
        );
    let root = rules.path().display().to_string();
    assert_reported(
        &check_fails(rules.path()),
        &[format!(
            "{root}/server.toml:3:14: key_prefix must be 1 to 64 visible ASCII characters"
        )],
    );
    let rules = RulesDir::new()
        .site(
            "a",
            "hosts = [\"a.test\"]\n[origin]\nurl = \"http://127.0.0.1:1\"\n",
        )
        .file(
            "server.toml",
            "[fleet]\nredis = \"redis://127.0.0.1:6379\"\ntimeout = \"10s\"\n",
        );
    assert_reported(
        &check_fails(rules.path()),
        &[format!(
            "{root}/server.toml:3:11: timeout must be between 1ms and 5s",
            root = rules.path().display()
        )],
    );
}

/// `edgeseo [args] demo` on an ephemeral loopback port: the process, its proxy's address, and
/// its stderr (collected on a thread until the process exits) when `stderr` is set.
fn spawn_demo(
    args: &[&str],
    stderr: bool,
) -> (
    std::process::Child,
    std::net::SocketAddr,
    Option<std::thread::JoinHandle<Vec<String>>>,
) {
    let mut child = edgeseo()
        .args(args)
        .args(["demo", "--listen", "127.0.0.1:0", "--rules"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/rules"))
        .stdout(Stdio::piped())
        .stderr(if stderr {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap();
    let log = child.stderr.take().map(|err| {
        std::thread::spawn(move || BufReader::new(err).lines().map_while(Result::ok).collect())
    });
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
    let addr = home
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    (child, addr, log)
}

/// Sends SIGTERM and waits for a clean exit.
fn stop(mut child: std::process::Child) {
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
fn demo_serves_the_sample_site_and_stops_on_sigterm() {
    let (child, addr, _) = spawn_demo(&[], false);
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
    stop(child);
}

#[test]
fn access_log_writes_one_json_line_per_request_once_it_is_sent() {
    let (child, addr, log) = spawn_demo(&["--log-format", "json", "--access-log"], true);
    let host = format!("127.0.0.1:{}", addr.port());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sizes = runtime.block_on(async {
        let client = http1_client();
        let mut sizes = Vec::new();
        for path in ["/id/products", "/id/products", "/"] {
            let (status, _, body) = fetch(&client, get(addr, &host, path)).await;
            assert_eq!(status, StatusCode::OK);
            sizes.push(body.len());
        }
        let mut crawler = get(addr, &host, "/vi/");
        crawler.headers_mut().insert(
            "user-agent",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
                .parse()
                .unwrap(),
        );
        fetch(&client, crawler).await;
        let chat = http::Request::post(format!("http://{addr}/api/chat"))
            .header("host", &host)
            .header("content-type", "application/json")
            .body(full_body(r#"{"message":"brp harga air fryer 4.5L kak?"}"#))
            .unwrap();
        let (status, _, _) = fetch(&client, chat).await;
        assert_eq!(status, StatusCode::OK);
        sizes
    });
    stop(child);

    let lines = log.unwrap().join().unwrap();
    let access: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("every log line is JSON"))
        .filter(|v| v["target"] == "edgeseo::access")
        .collect();
    assert_eq!(access.len(), 5, "one line per request: {lines:#?}");
    for line in &access {
        assert_eq!(line["site"], "demo-supplier", "{line}");
        assert_eq!(line["client_ip"], "127.0.0.1", "{line}");
        assert_eq!(line["complete"], true, "{line}");
        assert!(
            line["timestamp"].is_string() && line["duration_ms"].is_number(),
            "{line}"
        );
    }
    let (first, again, home, crawler, chat) =
        (&access[0], &access[1], &access[2], &access[3], &access[4]);
    assert_eq!(first["path"], "/id/products");
    assert_eq!(first["locale"], "id");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["status"], 200);
    assert_eq!(first["cache"], "MISS");
    assert_eq!(again["cache"], "HIT");
    for (line, size) in [first, again, home].into_iter().zip(&sizes) {
        assert_eq!(
            line["bytes"], *size as u64,
            "bytes as the client got them: {line}"
        );
    }
    assert_eq!(home["locale"], "en");
    assert_eq!(home["agent"], "human");
    assert_eq!(
        crawler["agent"], "crawler",
        "a claim, not verified: {crawler}"
    );
    assert_eq!(crawler["locale"], "vi");
    assert_eq!(chat["path"], "/api/chat");
    assert_eq!(chat["method"], "POST");
    assert_eq!(chat["chat_intent"], "price_quote", "{chat}");
    assert_eq!(chat["chat_language"], "id", "{chat}");
    assert!(
        chat.get("locale").is_none(),
        "the chat has no page locale: {chat}"
    );
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

/// `site.toml`'s errors in `stdout`, each given as (the start of its line in `site_toml`,
/// column, the start of its message).
fn assert_site_errors(
    stdout: &str,
    root: &Path,
    site_toml: &str,
    expected: &[(&str, usize, &str)],
) {
    assert_file_errors(stdout, root, "site.toml", site_toml, expected);
}

/// The errors of the fixture shop's file `name` (whose text is `text`) in `stdout`, as
/// `assert_site_errors` gives them.
fn assert_file_errors(
    stdout: &str,
    root: &Path,
    name: &str,
    text: &str,
    expected: &[(&str, usize, &str)],
) {
    let line = |key: &str| 1 + text.lines().position(|l| l.starts_with(key)).unwrap();
    let expected: Vec<String> = expected
        .iter()
        .map(|(key, col, message)| {
            format!(
                "{}/shop/{name}:{}:{col}: {message}",
                root.display(),
                line(key)
            )
        })
        .collect();
    assert_reported(stdout, &expected);
}

/// `check` of the fixture shop with its site.toml edited fails with exactly these positions (see
/// `assert_site_errors`).
fn check_site_toml(edit: impl FnOnce(String) -> String, expected: &[(&str, usize, &str)]) {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/shop");
    let mut site_toml = String::new();
    let rules = copy_site(&shop, "shop", |site| {
        site_toml = edit(site);
        site_toml.clone()
    });
    let stdout = check_fails(rules.path());
    assert_site_errors(&stdout, rules.path(), &site_toml, expected);
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
    assert_site_errors(
        &stdout,
        rules.path(),
        &site_toml,
        &[
            (
                "min_coverage",
                16,
                "min_coverage is a share between 0 and 1",
            ),
            ("exclude", 24, "invalid CSS selector"),
            ("glossary", 23, "a glossary term cannot be empty"),
        ],
    );
}

#[test]
fn check_rejects_a_bad_switcher_selector_and_messenger_ids_with_their_position() {
    check_site_toml(
        |site| {
            site.replace(
                "suggest = \"banner\"",
                "suggest = \"banner\"\nswitcher_at = \"ul[\"",
            )
            .replace(
                "[organization]",
                "[organization]\nzalo = \"call me\"\nline = \"@not a line id\"",
            )
        },
        &[
            ("switcher_at", 15, "invalid CSS selector"),
            ("zalo", 8, "zalo is the account's phone number"),
            ("line ", 8, "line is a LINE ID"),
        ],
    );
}

#[test]
fn check_rejects_bad_review_rules_with_their_position() {
    check_site_toml(
        |site| {
            format!(
                "{site}\n[reviews]\nitem = \"li.review, div.rv\"\nauthor = \"p[\"\nrating = \".stars\"\n\
                 date = \"time[\"\nbest = 1\nmax = 0\n"
            )
        },
        &[
            ("item", 8, "one selector here, not a list"),
            ("author", 10, "invalid CSS selector"),
            ("date", 8, "invalid CSS selector"),
            (
                "best",
                8,
                "best is the top of the rating scale, from 2 to 100",
            ),
            ("max", 7, "max is a number of reviews from 1 to 100"),
        ],
    );
}

#[test]
fn check_rejects_bad_title_alternatives_with_their_position() {
    let (rules, pages) = shop_with_pages(|pages| {
        pages
            .replace(
                "en = \"{product.name} | {org.name}\"",
                "en = [\"{product.name} – {product.price} | {org.name}\", \"{product.nme} | {org.name}\"]",
            )
            .replace("en = \"About {org.name}\"", "en = []")
    });
    let stdout = check_fails(rules.path());
    assert_file_errors(
        &stdout,
        rules.path(),
        "pages.toml",
        &pages,
        &[
            (
                "en = [\"{product.name}",
                6,
                "alternative 2: unknown placeholder `{product.nme}`",
            ),
            ("en = []", 6, "title lists no alternative"),
        ],
    );
}

#[test]
fn check_rejects_bad_leads_with_their_position() {
    let (rules, pages) = shop_with_pages(|pages| {
        pages
            .replace(
                "kind = \"product\"\n",
                "kind = \"product\"\nlead_after = \"h2\"\n",
            )
            .replace(
                "category = \"general\"\n[page.name]",
                "category = \"general\"\nlead_after = \"h1[\"\n[page.lead]\n\
                 en = \"MOQ {product.moq}\"\nid = \"Grosir {kw1}\"\nth = \"ขายส่ง {kw1}\"\n[page.name]",
            )
    });
    let stdout = check_fails(rules.path());
    assert_file_errors(
        &stdout,
        rules.path(),
        "pages.toml",
        &pages,
        &[
            (
                "lead_after = \"h2",
                14,
                "lead_after goes with a [page.lead]",
            ),
            ("lead_after = \"h1[", 14, "invalid CSS selector"),
            (
                "en = \"MOQ",
                6,
                "`{product.moq}` needs `kind = \"product\"` on this page rule",
            ),
            (
                "[page.lead]",
                1,
                "lead has no `vi` text, and locale vi is enabled",
            ),
        ],
    );
}

#[test]
fn check_rejects_bad_merchant_terms_with_their_position() {
    check_site_toml(
        |site| {
            format!(
                "{site}\n[merchant]\nreturns = \"sometimes\"\nreturn_days = 30\nreturn_fees = \"half\"\n\
                 [merchant.shipping.ID]\ntransit_days = \"7 to 10\"\n\
                 [merchant.shipping.MY]\ntransit_days = \"3-5\"\n"
            )
        },
        &[
            ("returns", 11, "returns must be"),
            (
                "return_days",
                15,
                "return_days goes with returns = \"finite\"",
            ),
            ("return_fees", 15, "return_fees must be"),
            ("transit_days = \"7", 16, "transit_days is a range of days"),
            (
                "[merchant.shipping.MY]",
                1,
                "[merchant.shipping.MY]: markets are ID, VN and TH",
            ),
        ],
    );
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

    msgfmt_accepts(&[&po, &rules.path().join("shop/translations/vi.po")]);
}

/// gettext's own checker accepts every file (skipped with a message where gettext is missing,
/// except in CI).
fn msgfmt_accepts(files: &[&Path]) {
    match Command::new("msgfmt").arg("--version").output() {
        Ok(_) => {
            for file in files {
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

/// A machine-translation service on loopback: LibreTranslate's `/translate` and an
/// OpenAI-compatible `/v1/chat/completions`, both answering "[<target>] <text>", except that
/// text containing "lose-markup" comes back without its placeholders. Keeps every request body
/// and Authorization header.
struct FakeTranslator {
    seen: Seen,
}

/// Each request's Authorization header and JSON body.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(Option<String>, serde_json::Value)>>>;

impl edgeseo::server::Handler for FakeTranslator {
    async fn handle(
        &self,
        req: http::Request<hyper::body::Incoming>,
        _conn: &edgeseo::server::ConnInfo,
    ) -> http::Response<edgeseo::body::Body> {
        use http_body_util::BodyExt;
        let path = req.uri().path().to_owned();
        let auth = req
            .headers()
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        self.seen.lock().unwrap().push((auth, json.clone()));
        let fake = |text: &str, target: &str| {
            if text.contains("lose-markup") {
                format!("[{target}] {}", text.replace("<1>", "").replace("</1>", ""))
            } else {
                format!("[{target}] {text}")
            }
        };
        let reply = match path.as_str() {
            "/translate" => serde_json::json!({
                "translatedText": fake(json["q"].as_str().unwrap(), json["target"].as_str().unwrap())
            }),
            "/v1/chat/completions" => {
                let user = json["messages"][1]["content"].as_str().unwrap();
                serde_json::json!({"choices": [{"message": {"role": "assistant", "content": fake(user, "llm")}}]})
            }
            _ => {
                return http::Response::builder()
                    .status(404)
                    .body(edgeseo::body::full(""))
                    .unwrap();
            }
        };
        http::Response::new(edgeseo::body::full(reply.to_string()))
    }
}

/// `translate fill` asks the service for every untranslated entry, writes what keeps the
/// placeholders and glossary terms marked fuzzy (not served until reviewed), leaves the rest and
/// every translation already there alone, keeps obsolete entries, and writes a file gettext accepts.
#[tokio::test(flavor = "multi_thread")]
async fn translate_fill_prefills_from_a_machine_translation_service() {
    use edgeseo::server::{Listener, Shutdown, serve};
    let seen = Seen::default();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let (stop, shutdown) = Shutdown::new();
    tokio::spawn(serve(
        Listener { tcp, tls: None },
        std::sync::Arc::new(FakeTranslator { seen: seen.clone() }),
        edgeseo::config::ServerSettings::default(),
        shutdown,
    ));

    let header = "msgid \"\"\nmsgstr \"\"\n\"Content-Type: text/plain; charset=UTF-8\\n\"\n\n";
    let po = format!(
        "{header}#: /\nmsgid \"Capacity\"\nmsgstr \"Kapasitas\"\n\n\
         #: /\nmsgid \"Welcome buyers\"\nmsgstr \"\"\n\n\
         #: /\nmsgid \"Our <1>LIANHE</1> kettles boil fast\"\nmsgstr \"\"\n\n\
         #: /\nmsgid \"Please lose-markup <1>here</1>\"\nmsgstr \"\"\n\n\
         #~ msgid \"Old text\"\n#~ msgstr \"Teks lama\"\n"
    );
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/shop");
    let rules = copy_site(&shop, "shop", |site| {
        site.replace(
            "min_coverage = 0",
            "min_coverage = 0\nglossary = [\"LIANHE\"]",
        )
    })
    .file("shop/translations/id.po", &po)
    .file(
        "shop/translations/vi.po",
        &format!("{header}#: /\nmsgid \"Welcome buyers\"\nmsgstr \"\"\n"),
    );
    let fill = |locale: &str, url: String| {
        let out = edgeseo()
            .args(["translate", "fill", "--site", "shop", "--locale", locale])
            .arg("--rules")
            .arg(rules.path())
            .args(["--backend", &url, "--api-key-env", "EDGESEO_TEST_MT_KEY"])
            .env("EDGESEO_TEST_MT_KEY", "sekret")
            .output()
            .unwrap();
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    };

    let stdout = fill("id", format!("http://{addr}/translate"));
    assert!(
        stdout.contains("3 entries without a translation sent, 2 filled (marked fuzzy), 1 left"),
        "{stdout}"
    );
    assert!(
        stdout.contains("not filled (placeholders changed): Please lose-markup <1>here</1>"),
        "{stdout}"
    );
    let id_po = rules.path().join("shop/translations/id.po");
    let after = std::fs::read_to_string(&id_po).unwrap();
    for entry in [
        "#: /\nmsgid \"Capacity\"\nmsgstr \"Kapasitas\"",
        "#: /\n#, fuzzy\nmsgid \"Welcome buyers\"\nmsgstr \"[id] Welcome buyers\"",
        "#, fuzzy\nmsgid \"Our <1>LIANHE</1> kettles boil fast\"\nmsgstr \"[id] Our <1>LIANHE</1> kettles boil fast\"",
        "msgid \"Please lose-markup <1>here</1>\"\nmsgstr \"\"",
        "#~ msgid \"Old text\"\n#~ msgstr \"Teks lama\"",
    ] {
        assert!(after.contains(entry), "missing {entry:?} in:\n{after}");
    }
    // Machine pre-fills wait for a reviewer.
    let memory = edgeseo::translate::Memory::load(&id_po, false).unwrap();
    assert_eq!(memory.get(None, "Welcome buyers"), None);
    assert_eq!(memory.get(None, "Capacity"), Some("Kapasitas"));
    let reviewed = edgeseo::translate::Memory::load(&id_po, true).unwrap();
    assert_eq!(
        reviewed.get(None, "Welcome buyers"),
        Some("[id] Welcome buyers")
    );
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 3);
        assert!(
            seen.iter().all(|(_, b)| b["source"] == "en"
                && b["target"] == "id"
                && b["api_key"] == "sekret")
        );
    }

    let stdout = fill("vi", format!("http://{addr}/v1/chat/completions"));
    assert!(stdout.contains("1 filled"), "{stdout}");
    let vi_po = rules.path().join("shop/translations/vi.po");
    let vi = std::fs::read_to_string(&vi_po).unwrap();
    assert!(
        vi.contains("#, fuzzy\nmsgid \"Welcome buyers\"\nmsgstr \"[llm] Welcome buyers\""),
        "{vi}"
    );
    {
        let seen = seen.lock().unwrap();
        let (auth, body) = seen.last().unwrap();
        assert_eq!(auth.as_deref(), Some("Bearer sekret"));
        let prompt = body["messages"][0]["content"].as_str().unwrap();
        // The brief: language, glossary, and the locale's marketplace keywords.
        for part in ["Vietnamese", "LIANHE", "ấm siêu tốc", "<1>"] {
            assert!(prompt.contains(part), "{part} not in {prompt}");
        }
    }
    msgfmt_accepts(&[&id_po, &vi_po]);
    let _ = stop.send(true);
}

#[test]
fn check_rejects_bad_optional_product_columns_with_their_position() {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/shop");
    let feed = "sku,path,name_en,name_id,name_vi,name_th,price_usd,price_idr,price_vnd,price_thb,availability,image,brand,category,gtin,moq,moq_unit,price_valid_until,rating,review_count,lead_time\n\
                K-1,/products/kettle,Electric Kettle,Teko Listrik,Ấm siêu tốc,กาต้มน้ำไฟฟ้า,7.80,127900,202000,263.64,InStock,/img/kettle.png,Example,kettle,4006381333932,0,pcs,2027-02-29,5.5,,30-20\n\
                K-2,/products/kettle-red,Red Kettle,Teko Merah,Ấm đỏ,กาต้มน้ำสีแดง,7.80,127900,202000,263.64,InStock,/img/kettle.png,Example,kettle,,,,,4.5,,\n";
    let rules = copy_site(&shop, "shop", |site| site.to_string()).file("shop/products.csv", feed);
    let stdout = check_fails(rules.path());
    let root = rules.path().display();
    // Columns count characters, and point at the cell even when its text ("0") occurs earlier
    // in the line ("7.80").
    assert_reported(
        &stdout,
        &[
            format!("{root}/shop/products.csv:2:142: gtin `4006381333932` is not a GTIN"),
            format!("{root}/shop/products.csv:2:156: moq `0` must be a whole number"),
            format!("{root}/shop/products.csv:2:158: moq_unit `pcs` is not a UN/CEFACT unit"),
            format!(
                "{root}/shop/products.csv:2:162: price_valid_until `2027-02-29` must be a date"
            ),
            format!("{root}/shop/products.csv:2:173: rating `5.5` must be an average rating"),
            format!(
                "{root}/shop/products.csv:2:{}: lead_time `30-20` must be days like 15 or 15-25",
                "K-1,/products/kettle,Electric Kettle,Teko Listrik,Ấm siêu tốc,กาต้มน้ำไฟฟ้า,7.80,127900,202000,263.64,InStock,/img/kettle.png,Example,kettle,4006381333932,0,pcs,2027-02-29,5.5,,".chars().count() + 1
            ),
            format!(
                "{root}/shop/products.csv:3:{}: rating and review_count go together: review_count is missing",
                "K-2,/products/kettle-red,Red Kettle,Teko Merah,Ấm đỏ,กาต้มน้ำสีแดง,7.80,127900,202000,263.64,InStock,/img/kettle.png,Example,kettle,,,,,4.5,".chars().count() + 1
            ),
        ],
    );
}

#[test]
fn check_rejects_bad_product_facts_with_their_position() {
    let shop = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/shop");
    let facts = "[\"K-1\"]\nspecs.en = \"1.7 L, 2200 W\"\nspecs.id = \"  \"\n\n[\"K-404\"]\nspecs.en = \"gone\"\n";
    let rules = copy_site(&shop, "shop", |site| site.to_string()).file("shop/facts.toml", facts);
    let stdout = check_fails(rules.path());
    let root = rules.path().display();
    assert_reported(
        &stdout,
        &[
            format!("{root}/shop/facts.toml:3:12: empty text: leave the language out instead"),
            format!("{root}/shop/facts.toml:5:2: no product with SKU `K-404` in products.csv"),
        ],
    );
    let rules = copy_site(&shop, "shop", |site| site.to_string())
        .file("shop/facts.toml", "[\"K-1\"]\nweight.en = \"1 kg\"\n");
    assert_reported(
        &check_fails(rules.path()),
        &[format!(
            "{}/shop/facts.toml:2:1: unknown field `weight`, expected `specs` or `samples`",
            rules.path().display()
        )],
    );
}
