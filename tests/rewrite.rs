//! The streaming rewriter on its own: fixture pairs (source → expected) fed in random pieces,
//! legacy charsets, and the memory limit's bail-out.

mod common;

use std::path::Path;

use common::*;
use edgeseo::locale::Locale;
use serde::Deserialize;

#[derive(Deserialize)]
struct Cases {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    locale: String,
    path: String,
}

fn fixtures() -> (std::path::PathBuf, Vec<Case>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rewrite");
    let cases: Cases =
        toml::from_str(&std::fs::read_to_string(dir.join("cases.toml")).unwrap()).unwrap();
    (dir, cases.case)
}

#[tokio::test]
async fn fixture_pairs_match_whatever_the_chunking() {
    let (dir, cases) = fixtures();
    let bless = std::env::var_os("EDGESEO_BLESS").is_some();
    let (mut rng, seed) = Rng::from_env(0x5eed_0001);
    for case in cases {
        let locale = Locale::from_code(&case.locale).unwrap();
        let src = std::fs::read(dir.join(format!("{}.src.html", case.name))).unwrap();
        let expected_path = dir.join(format!("{}.expected.html", case.name));
        let whole = rewrite_whole(&src, fixture_options(locale, &case.path, None)).await;
        if bless {
            std::fs::write(&expected_path, &whole).unwrap();
        }
        let expected = std::fs::read(&expected_path).unwrap_or_else(|_| {
            panic!(
                "{} missing: run with EDGESEO_BLESS=1 and review",
                expected_path.display()
            )
        });
        assert_eq!(
            String::from_utf8_lossy(&whole),
            String::from_utf8_lossy(&expected),
            "case {} in one piece",
            case.name
        );
        for round in 0..40 {
            let max = [1, 2, 7, 64, 1024][round % 5];
            let pieces = rng.split(src.len(), max);
            let out =
                rewrite_in_pieces(&src, &pieces, fixture_options(locale, &case.path, None)).await;
            assert!(
                out == expected,
                "case {} differs with pieces of up to {max} bytes (replay with EDGESEO_SEED={seed}):\n{}",
                case.name,
                String::from_utf8_lossy(&out)
            );
        }
    }
}

#[tokio::test]
async fn thai_windows_874_page_stays_in_its_encoding() {
    let enc = encoding_rs::WINDOWS_874;
    let html = "<!DOCTYPE html><html><head><meta charset=\"windows-874\"><title>กาต้มน้ำ</title></head>\
                <body><p>ร้านค้าขายส่งกาต้มน้ำไฟฟ้า</p></body></html>";
    let (bytes, _, lossy) = enc.encode(html);
    assert!(!lossy);
    let (mut rng, seed) = Rng::from_env(0x5eed_0874);
    for _ in 0..10 {
        let pieces = rng.split(bytes.len(), 5);
        let out = rewrite_in_pieces(
            &bytes,
            &pieces,
            fixture_options(Locale::Th, "/products/kettle", Some(enc)),
        )
        .await;
        let (text, _, had_errors) = enc.decode(&out);
        assert!(!had_errors, "output is valid windows-874 (seed {seed})");
        let doc = scraper::Html::parse_document(&text);
        let title = select_text(&doc, "title");
        assert_eq!(title, ["กาต้มน้ำไฟฟ้า – กาต้มน้ำไฟฟ้า | Example"]);
        assert!(
            text.contains("<p>ร้านค้าขายส่งกาต้มน้ำไฟฟ้า</p>"),
            "page text intact"
        );
        let ld = jsonld_blocks(&doc);
        assert_eq!(ld.len(), 1);
        let offer = product_offer(&ld[0]).expect("product offer");
        assert_eq!(offer["priceCurrency"], "THB");
        assert_eq!(offer["price"], "263.64");
    }
}

#[tokio::test]
async fn gbk_page_keeps_its_bytes_and_gets_escaped_vietnamese() {
    let enc = encoding_rs::GBK;
    let html = "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=gbk\">\
                <title>电水壶</title></head><body><p>广东佛山厨房电器</p></body></html>";
    let (bytes, _, _) = enc.encode(html);
    let out = rewrite_whole(
        &bytes,
        fixture_options(Locale::Vi, "/products/kettle", Some(enc)),
    )
    .await;
    let (text, _, had_errors) = enc.decode(&out);
    assert!(!had_errors);
    let doc = scraper::Html::parse_document(&text);
    // Vietnamese letters GBK lacks arrive as character references and parse back exactly.
    assert_eq!(
        select_text(&doc, "title"),
        ["Ấm siêu tốc – ấm siêu tốc | Example"]
    );
    assert!(text.contains("<p>广东佛山厨房电器</p>"));
    let ld = jsonld_blocks(&doc);
    assert_eq!(ld[0]["@graph"][2]["name"], "Ấm siêu tốc");
}

#[tokio::test]
async fn charset_from_meta_tag_when_the_header_has_none() {
    let enc = encoding_rs::WINDOWS_874;
    let (bytes, _, _) = enc.encode(
        "<html><head><meta charset=\"tis-620\"><title>x</title></head><body>ไทย</body></html>",
    );
    let out = rewrite_whole(&bytes, fixture_options(Locale::Th, "/about", None)).await;
    let (text, _, had_errors) = enc.decode(&out);
    assert!(!had_errors);
    assert!(
        text.contains("<title>เกี่ยวกับ Example Appliance Co. – เครื่องครัว</title>"),
        "{text}"
    );
    // The switcher names each language in itself; the letters windows-874 lacks come as
    // character references.
    assert!(
        text.contains(r#"lang="vi-VN">Ti&#7871;ng Vi&#7879;t</a>"#) && text.contains("</nav>ไทย"),
        "{text}"
    );
}

#[tokio::test]
async fn memory_limit_bails_out_and_passes_the_rest_through() {
    // A JSON-LD block is held back until complete; one far larger than the limit forces a bail-out.
    let big = format!(
        "<html><head><title>t</title><script type=\"application/ld+json\">{{\"@type\":\"Dataset\",\"x\":\"{}\"}}</script></head><body><p>tail</p></body></html>",
        "z".repeat(600_000)
    );
    let mut opts = fixture_options(Locale::Id, "/about", None);
    opts.max_memory = 64 * 1024;
    let (mut rng, _) = Rng::from_env(7);
    let pieces = rng.split(big.len(), 8192);
    let out = String::from_utf8(rewrite_in_pieces(big.as_bytes(), &pieces, opts).await).unwrap();
    assert!(
        out.ends_with("<p>tail</p></body></html>"),
        "the rest passes through"
    );
    assert!(out.contains(&"z".repeat(600_000)));
}

#[tokio::test]
async fn html5lib_inputs_neither_crash_nor_hang() {
    let Some(dir) = shared_data("html/html5lib-tests/tree-construction") else {
        return;
    };
    let mut inputs = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        for block in text.split("\n#data\n").chain(text.strip_prefix("#data\n")) {
            if let Some(data) = block.split("\n#errors").next() {
                inputs.push(data.to_string());
            }
        }
    }
    let Some(tok_dir) = shared_data("html/html5lib-tests/tokenizer") else {
        return;
    };
    for entry in std::fs::read_dir(tok_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
        if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
            for test in json["tests"].as_array().into_iter().flatten() {
                if let Some(input) = test["input"].as_str() {
                    inputs.push(input.to_string());
                }
            }
        }
    }
    assert!(inputs.len() > 2000, "{} inputs", inputs.len());
    let (mut rng, seed) = Rng::from_env(0x0005_eed5);
    for (i, input) in inputs.iter().enumerate() {
        let pieces = rng.split(input.len(), 16);
        // Indonesian pages go through the translation memory too (tests/fixtures/rules/shop).
        let locale = [Locale::Vi, Locale::Id][i % 2];
        let out = rewrite_in_pieces(
            input.as_bytes(),
            &pieces,
            fixture_options(locale, "/about", None),
        )
        .await;
        // Extraction holds every run, the replacer's other path.
        let _ = edgeseo::translate::extract::page_segments(input.as_bytes(), &[]);
        assert!(
            !out.is_empty() || input.is_empty(),
            "seed {seed}: {input:?}"
        );
    }
}

pub fn select_text(doc: &scraper::Html, selector: &str) -> Vec<String> {
    let sel = scraper::Selector::parse(selector).unwrap();
    doc.select(&sel)
        .map(|e| e.text().collect::<String>())
        .collect()
}

pub fn jsonld_blocks(doc: &scraper::Html) -> Vec<serde_json::Value> {
    let sel = scraper::Selector::parse(r#"script[type="application/ld+json"]"#).unwrap();
    doc.select(&sel)
        .map(|e| serde_json::from_str(&e.text().collect::<String>()).expect("JSON-LD parses"))
        .collect()
}

pub fn product_offer(ld: &serde_json::Value) -> Option<serde_json::Value> {
    ld["@graph"]
        .as_array()?
        .iter()
        .find(|n| n["@type"] == "Product")
        .map(|p| p["offers"].clone())
}

/// A run longer than the rewriter holds passes as it came, the rest of its block too, and the
/// page goes on being translated after it.
#[tokio::test]
async fn an_overlong_run_passes_untranslated_and_translation_resumes() {
    let long = "Capacity and more words. ".repeat(1000);
    let src = format!(
        "<html><body><p>Capacity</p><p>{long}<b>Capacity</b> tail</p><h1>Kettle buying guide</h1></body></html>"
    );
    let (mut rng, seed) = Rng::from_env(0x5eed_0002);
    for round in 0..6 {
        let pieces = rng.split(src.len(), [7, 300, 5000][round % 3]);
        let out = rewrite_in_pieces(
            src.as_bytes(),
            &pieces,
            fixture_options(Locale::Id, "/guide", None),
        )
        .await;
        let out = String::from_utf8(out).unwrap();
        let body = &out[out.find("</nav>").unwrap() + "</nav>".len()..];
        assert_eq!(
            body,
            format!(
                "<p>Kapasitas</p><p>{long}<b>Capacity</b> tail</p><h1>Panduan membeli ketel</h1></body></html>"
            ),
            "replay with EDGESEO_SEED={seed}"
        );
    }
}
