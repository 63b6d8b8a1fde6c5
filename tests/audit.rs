//! `edgeseo audit` against a test site on loopback with one seeded defect of each kind: each is
//! found, named on its page, and fails its criterion; the rest of the site passes.

mod common;

use std::process::Command;

use common::*;

/// A page of the test site: head, hreflang set and body as given.
fn page(lang: &str, path: &str, head: &str, alternates: &[(&str, &str)], body: &str) -> CannedPage {
    let links: String = alternates
        .iter()
        .map(|(l, p)| {
            format!(r#"<link rel="alternate" hreflang="{l}" href="http://shop.test{p}">"#)
        })
        .collect();
    CannedPage::html(format!(
        r#"<!doctype html><html lang="{lang}"><head><link rel="canonical" href="http://shop.test{path}">{head}{links}</head><body>{body}</body></html>"#
    ))
}

const GOOD_HEAD: &str =
    r#"<title>Kettles</title><meta name="description" content="Kettles for wholesale buyers.">"#;

fn product_jsonld(price: Option<&str>) -> String {
    let offer = match price {
        Some(p) => format!(
            r#""price":"{p}","priceCurrency":"USD","availability":"https://schema.org/InStock""#
        ),
        None => r#""priceCurrency":"USD","availability":"https://schema.org/InStock""#.to_owned(),
    };
    format!(
        r#"<script type="application/ld+json">{{"@context":"https://schema.org","@graph":[{{"@type":"Product","name":"Kettle","image":"http://shop.test/k.png","offers":{{"@type":"Offer",{offer}}}}}]}}</script>"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn finds_each_seeded_defect() {
    let origin = Origin::start().await;
    let english = "<h1>Electric kettles for your shop</h1><p>We supply stainless steel kettles to importers across the region every month.</p>";
    let indonesian = "<h1>Teko listrik untuk toko Anda</h1><p>Kami memasok teko listrik dan peralatan dapur untuk importir di seluruh Indonesia setiap bulan.</p>";
    fn pair<'a>(en: &'a str, id: &'a str) -> [(&'a str, &'a str); 3] {
        [("en", en), ("id-ID", id), ("x-default", en)]
    }
    let links = "<a href=\"/no-desc\">a</a><a href=\"/recip\">b</a><a href=\"/no-price\">c</a><a href=\"/mismatch\">d</a><a href=\"/english\">e</a><a href=\"/not-schema\">f</a><a href=\"https://elsewhere.example/x\">out</a>";
    origin.serve(
        "/",
        page(
            "en",
            "/",
            GOOD_HEAD,
            &pair("/", "/id/"),
            &format!("{english}{links}"),
        ),
    );
    origin.serve(
        "/id/",
        page("id-ID", "/id/", GOOD_HEAD, &pair("/", "/id/"), indonesian),
    );
    // 1. No meta description.
    origin.serve(
        "/no-desc",
        page("en", "/no-desc", "<title>Kettles</title>", &[], english),
    );
    // 2. /recip names /id/recip, which does not name it back.
    origin.serve(
        "/recip",
        page(
            "en",
            "/recip",
            GOOD_HEAD,
            &pair("/recip", "/id/recip"),
            english,
        ),
    );
    origin.serve(
        "/id/recip",
        page(
            "id-ID",
            "/id/recip",
            GOOD_HEAD,
            &[("id-ID", "/id/recip"), ("x-default", "/")],
            indonesian,
        ),
    );
    // 3. A product without a price.
    origin.serve(
        "/no-price",
        page(
            "en",
            "/no-price",
            &format!("{GOOD_HEAD}{}", product_jsonld(None)),
            &[],
            english,
        ),
    );
    // 3b. JSON-LD with terms schema.org does not have.
    let not_schema = r#"<script type="application/ld+json">{"@context":"https://schema.org","@type":"Organization","name":"Lianhe","url":"http://shop.test/","colour":"red","address":{"@type":"PostalAdress","addressCountry":"CN"}}</script>"#;
    origin.serve(
        "/not-schema",
        page(
            "en",
            "/not-schema",
            &format!("{GOOD_HEAD}{not_schema}"),
            &[],
            english,
        ),
    );
    // 4. The price shown is not the JSON-LD price.
    origin.serve(
        "/mismatch",
        page(
            "en",
            "/mismatch",
            &format!("{GOOD_HEAD}{}", product_jsonld(Some("24.90"))),
            &[],
            &format!(
                r#"{english}<p>Only <span data-sku="K-1" data-currency="USD">$19.90</span></p>"#
            ),
        ),
    );
    // 5. An English body under /id/.
    origin.serve(
        "/english",
        page(
            "en",
            "/english",
            GOOD_HEAD,
            &pair("/english", "/id/english"),
            english,
        ),
    );
    origin.serve(
        "/id/english",
        page(
            "id-ID",
            "/id/english",
            GOOD_HEAD,
            &pair("/english", "/id/english"),
            english,
        ),
    );
    // 6. The Thai market's keywords appear nowhere (the site has no Thai pages).

    let rules = fixture_site(origin.addr, |site| site);
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgeseo"))
        .args([
            "audit",
            "--base",
            &format!("http://{}", origin.addr),
            "--site",
            "shop",
            "--rate",
            "500",
        ])
        .arg("--rules")
        .arg(rules.path())
        .arg("--out")
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "  /no-desc: no meta description",
        "  /recip: hreflang id-ID → /id/recip, which does not link back",
        "  /no-price: Product without offers.price",
        "  /mismatch: price shown \"$19.90\" is not the JSON-LD price 24.90",
        "  /id/english: visible text: 0 of 2 blocks read as id",
        "FAIL  localized head: 1 of 10 pages fail: /no-desc",
        "FAIL  hreflang and canonical: 1 of 10 pages fail: /recip",
        "FAIL  visible text in the page's language: 1 of 10 pages fail: /id/english",
        "FAIL  structured data: 3 of 10 pages fail:",
        "  /not-schema: JSON-LD: type PostalAdress is not in schema.org; JSON-LD: colour is not a schema.org property",
        "pass  pages answer",
        "pass  compression and weight",
        "pass  loading speed",
        "FAIL  marketplace keywords:",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(expected)),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    // The Indonesian pages carry "teko listrik" and "peralatan dapur" (1,900 of 2,700); Thai none.
    assert!(stdout.contains("keywords id: 70.4 %"), "{stdout}");
    assert!(
        stdout.contains("keywords th: 0.0 %") && stdout.contains("กาต้มน้ำไฟฟ้า"),
        "{stdout}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["audit"]["passed"], false);
    let page = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for part in [
        "Localized SEO scan",
        "Pages to fix (6)",
        "<code>/no-desc</code>",
        "no meta description",
        "กาต้มน้ำไฟฟ้า",
    ] {
        assert!(page.contains(part), "{part} not in report.html");
    }
    assert_eq!(report["audit"]["pages"].as_array().unwrap().len(), 10);
    assert!(
        report["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["role"] == "rules"
                && i["path"].as_str().unwrap().ends_with("keywords/th.csv"))
    );
    pdf_reads_back(&dir.path().join("report.pdf"), &report);
    origin.stop();
}

/// The PDF report is listed with its hash and `pdftotext` reads its Thai and Vietnamese back
/// (skipped with a message where Chromium or pdftotext is missing, except in CI).
fn pdf_reads_back(pdf: &std::path::Path, report: &serde_json::Value) {
    let required = std::env::var_os("EDGESEO_REQUIRE_PDF").is_some();
    if !pdf.exists() {
        assert!(!required, "no report.pdf: .ci/run installs chromium");
        eprintln!("no headless Chromium: report.pdf not written, not checked");
        return;
    }
    let listed = report["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["path"] == "report.pdf")
        .expect("report.pdf in outputs");
    assert_eq!(
        listed["sha256"],
        edgeseo::report::sha256_hex(&std::fs::read(pdf).unwrap())
    );
    let text = match Command::new("pdftotext").arg(pdf).arg("-").output() {
        Ok(out) => String::from_utf8(out.stdout).unwrap(),
        Err(e) => {
            assert!(!required, "pdftotext is needed in CI (poppler-utils): {e}");
            eprintln!("pdftotext not installed: report.pdf not read back");
            return;
        }
    };
    for part in [
        "Certification report",
        "no meta description",
        "กาต้มน้ำไฟฟ้า",
        "ấm siêu tốc",
    ] {
        assert!(
            text.contains(part),
            "{part} not read back from report.pdf:\n{text}"
        );
    }
}

/// Runs `edgeseo audit` on `base` (no rules) with extra arguments: exit code, stdout, report.json.
fn audit(base: &str, extra: &[&str]) -> (Option<i32>, String, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_edgeseo"))
        .args(["audit", "--base", base, "--rate", "200", "--max-pages", "5"])
        .args(extra)
        .arg("--out")
        .arg(dir.path())
        .env("EDGESEO_CHROMIUM", "/nonexistent")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = std::fs::read_to_string(dir.path().join("report.json")).unwrap_or_else(|_| {
        panic!(
            "no report: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code(),
        stdout,
        serde_json::from_str(&report).unwrap(),
    )
}

fn line_starts(stdout: &str, expected: &str) -> bool {
    stdout.lines().any(|l| l.starts_with(expected))
}

/// A page sent uncompressed fails the compression criterion; the same page through edgeseo
/// passes it; and `--via` fetches every page through an HTTP proxy (tinyproxy, skipped with a
/// message where it is missing, except in CI).
#[tokio::test(flavor = "multi_thread")]
async fn judges_compression_and_measures_through_a_proxy() {
    let origin = Origin::start().await;
    let text =
        "<p>We supply stainless steel kettles to importers across the region every month.</p>"
            .repeat(60);
    origin.serve(
        "/",
        page(
            "en",
            "/",
            GOOD_HEAD,
            &[("en", "/"), ("x-default", "/")],
            &format!("<h1>Electric kettles</h1>{text}"),
        ),
    );
    let (code, stdout, _) = audit(&format!("http://{}", origin.addr), &[]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(
        line_starts(
            &stdout,
            "FAIL  compression and weight: 1 of 1 pages fail: /"
        ),
        "{stdout}"
    );
    assert!(
        line_starts(&stdout, "  /: sent uncompressed (5 KB)"),
        "{stdout}"
    );

    let rules = RulesDir::new().site("plain", &site_for(origin.addr, ""));
    let app = start_proxy(&rules).await;
    let base = format!("http://{}", app.http_addr);
    let (code, stdout, report) = audit(&base, &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(
        line_starts(&stdout, "pass  compression and weight"),
        "{stdout}"
    );
    let home = &report["audit"]["pages"][0];
    assert_eq!(home["content_encoding"], "br");
    assert!(home["wire_bytes"].as_u64().unwrap() * 5 < home["bytes"].as_u64().unwrap());
    assert_eq!(report["audit"]["via"], serde_json::Value::Null);

    // A proxy that is not there: nothing is fetched around it.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (code, stdout, _) = audit(&base, &["--via", &format!("http://127.0.0.1:{closed}")]);
    assert_eq!(code, Some(2), "{stdout}");
    assert!(line_starts(&stdout, "FAIL  pages answer"), "{stdout}");

    let Some(proxy) = Tinyproxy::start() else {
        assert!(
            std::env::var_os("EDGESEO_REQUIRE_PROXY").is_none(),
            "tinyproxy is missing: .ci/run installs tinyproxy-bin"
        );
        eprintln!("tinyproxy not installed: --via not checked against a real proxy");
        return;
    };
    let via = format!("http://127.0.0.1:{}", proxy.port);
    let (code, stdout, report) = audit(&base, &["--via", &via]);
    assert_eq!(code, Some(0), "{stdout}");
    assert_eq!(report["audit"]["via"], via.as_str());
    assert!(line_starts(&stdout, "pass  loading speed"), "{stdout}");
    let log = std::fs::read_to_string(&proxy.log).unwrap();
    assert!(
        log.contains(&format!("CONNECT {}", app.http_addr)),
        "the proxy carried the audit:\n{log}"
    );
}

/// tinyproxy on a free loopback port, allowing CONNECT to any port, logging to a file.
struct Tinyproxy {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Tinyproxy {
    fn start() -> Option<Tinyproxy> {
        let dir = tempfile::tempdir().unwrap();
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let log = dir.path().join("tinyproxy.log");
        let conf = dir.path().join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 20\nAllow 127.0.0.1\nLogLevel Info\nLogFile \"{}\"\n",
                log.display()
            ),
        )
        .unwrap();
        let child = Command::new("tinyproxy")
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let proxy = Tinyproxy {
            child,
            port,
            log,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + PATIENCE;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "tinyproxy did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Some(proxy)
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
