//! The demo's pages in Indonesian, Vietnamese and Thai as a search engine reads them: their
//! visible text blocks, parsed back from what edgeseo serves, are identified as the page's
//! language by a language identifier this project did not write (py3langid).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use edgeseo::locale::Locale;
use http::StatusCode;
use scraper::{Html, Selector};

/// Elements whose text is one block a reader sees.
const BLOCKS: &str = "h1, h2, h3, h4, h5, h6, p, li, td, th, dt, dd, button, label, figcaption, \
                      summary, option, blockquote, caption, legend";

/// The share of blocks identified as the page's language, per locale, must reach this.
const FLOOR: f64 = 0.95;

/// The text of every block without a block inside it, long enough to tell a language by: three
/// words of four letters or more, or twelve Thai letters (a model code, a price or a name alone
/// says nothing about a language).
fn text_blocks(html: &str) -> Vec<String> {
    let telling = |t: &str| {
        let thai = t
            .chars()
            .filter(|c| ('\u{0E01}'..='\u{0E5B}').contains(c))
            .count();
        let words = t
            .split(|c: char| !c.is_alphabetic())
            .filter(|w| w.chars().count() >= 4)
            .count();
        thai >= 12 || words >= 3
    };
    let doc = Html::parse_document(html);
    let blocks = Selector::parse(BLOCKS).unwrap();
    doc.select(&blocks)
        .filter(|el| el.select(&blocks).nth(1).is_none())
        .map(|el| el.text().collect::<Vec<_>>().join(" "))
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| telling(t))
        .collect()
}

/// py3langid's language for each text, among the site's four (its model alone tells Indonesian
/// from Malay or Javanese poorly on a short block); `None` when Python or py3langid is missing.
fn identify(texts: &[String]) -> Option<Vec<String>> {
    let script = "import json, sys, py3langid\n\
                  py3langid.set_languages(['en', 'id', 'vi', 'th'])\n\
                  for line in sys.stdin:\n    print(py3langid.classify(json.loads(line))[0])\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    let mut stdin = child.stdin.take().unwrap();
    let input: String = texts
        .iter()
        .map(|t| serde_json::to_string(t).unwrap() + "\n")
        .collect();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    // A detector that failed to start closes its input early: judged by its exit status below.
    let written = writer.join().unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if std::env::var_os("EDGESEO_REQUIRE_LANGID").is_some() {
            panic!("py3langid failed (.ci/run installs it): {err}");
        }
        eprintln!("py3langid not available, language of the demo's pages not checked: {err}");
        return None;
    }
    written.unwrap();
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect(),
    )
}

#[tokio::test]
async fn the_demos_localized_pages_read_as_their_language() {
    let app = start_demo().await;
    let client = http1_client();
    let (status, _, sitemap) =
        fetch(&client, get(app.http_addr, "127.0.0.1", "/sitemap.xml")).await;
    assert_eq!(status, StatusCode::OK);
    let sitemap = String::from_utf8_lossy(&sitemap).into_owned();
    let english: Vec<String> = sitemap
        .split("<loc>")
        .skip(1)
        .filter_map(|s| s.split("</loc>").next())
        .filter_map(|url| url.split_once("://").map(|(_, rest)| rest))
        .filter_map(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
        .filter(|path| !["/id/", "/vi/", "/th/"].iter().any(|p| path.starts_with(p)))
        .collect();
    assert!(english.len() >= 10, "{sitemap}");

    let mut report = Vec::new();
    for locale in [Locale::Id, Locale::Vi, Locale::Th] {
        let mut texts = Vec::new();
        for path in &english {
            let localized = locale.localize_path(path);
            let (status, _, body) =
                fetch(&client, get(app.http_addr, "127.0.0.1", &localized)).await;
            assert_eq!(status, StatusCode::OK, "{localized}");
            texts.extend(text_blocks(&String::from_utf8_lossy(&body)));
        }
        let Some(found) = identify(&texts) else {
            return;
        };
        let right = found.iter().filter(|l| l.as_str() == locale.code()).count();
        let share = right as f64 / texts.len() as f64;
        let misses: Vec<String> = texts
            .iter()
            .zip(&found)
            .filter(|(_, l)| l.as_str() != locale.code())
            .take(40)
            .map(|(t, l)| format!("  {l}: {t}"))
            .collect();
        report.push(format!(
            "{}: {right}/{} blocks ({:.1} %) identified as {}",
            locale.code(),
            texts.len(),
            100.0 * share,
            locale.code()
        ));
        assert!(
            share >= FLOOR,
            "{}\nfirst misses:\n{}",
            report.join("\n"),
            misses.join("\n")
        );
    }
    println!("{}", report.join("\n"));
}

/// The links of `html` with `rel=alternate hreflang`: (hreflang, href).
fn hreflangs(html: &str) -> Vec<(String, String)> {
    let doc = Html::parse_document(html);
    let links = Selector::parse("link[rel=alternate][hreflang]").unwrap();
    doc.select(&links)
        .map(|l| {
            let a = |n| l.value().attr(n).unwrap_or_default().to_owned();
            (a("hreflang"), a("href"))
        })
        .collect()
}

fn robots_noindex(html: &str) -> bool {
    let doc = Html::parse_document(html);
    let meta = Selector::parse(r#"meta[name=robots]"#).unwrap();
    doc.select(&meta).any(|m| {
        m.value()
            .attr("content")
            .is_some_and(|c| c.contains("noindex"))
    })
}

#[tokio::test]
async fn a_half_translated_page_is_not_advertised_at_its_locale() {
    let origin = Origin::start().await;
    let page = |body: &str| {
        CannedPage::html(format!(
            "<!doctype html><html><head><title>Shop</title></head><body>{body}</body></html>"
        ))
    };
    origin.serve(
        "/about",
        page(
            "<h1>About our factory</h1><p>We make kettles in Foshan.</p>\
             <div class=\"reviews\"><p>We make kettles in Foshan.</p></div><h2>Care instructions</h2>",
        ),
    );
    origin.serve(
        "/half",
        page("<h1>Care instructions</h1><p>Descale the kettle every month with white vinegar.</p>"),
    );
    // /about fully translated; /half: 2 of 10 words; "/" named by no entry.
    let po = "msgid \"\"\nmsgstr \"\"\n\"Content-Type: text/plain; charset=UTF-8\\n\"\n\n\
              #: /about\nmsgid \"About our factory\"\nmsgstr \"Tentang pabrik kami\"\n\n\
              #: /about\nmsgid \"We make kettles in Foshan.\"\nmsgstr \"Kami membuat ketel di Foshan.\"\n\n\
              #: /half\nmsgid \"Care instructions\"\nmsgstr \"Petunjuk perawatan\"\n\n\
              #: /half\nmsgid \"Descale the kettle every month with white vinegar.\"\nmsgstr \"\"\n\n\
              msgctxt \"/about\"\nmsgid \"Care instructions\"\nmsgstr \"Cara kami merawat pelanggan\"\n";
    let rules = fixture_site(origin.addr, |site| {
        site.replace(
            "min_coverage = 0",
            "min_coverage = 0.8\nexclude = [\".reviews\"]",
        )
    })
    .file("shop/translations/id.po", po);
    let app = start_proxy(&rules).await;
    let client = http1_client();
    let html = |path: &'static str| {
        let client = client.clone();
        async move {
            let (status, _, body) = fetch(&client, get(app.http_addr, "shop.test", path)).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            String::from_utf8(body.to_vec()).unwrap()
        }
    };

    let half_id = html("/id/half").await;
    assert!(robots_noindex(&half_id), "{half_id}");
    assert!(hreflangs(&half_id).is_empty(), "{half_id}");
    assert!(
        half_id.contains("Petunjuk perawatan"),
        "what is translated is still served"
    );
    let half_en = html("/half").await;
    assert!(!robots_noindex(&half_en));
    let langs: Vec<String> = hreflangs(&half_en).into_iter().map(|(l, _)| l).collect();
    assert_eq!(langs, ["en", "x-default"], "{half_en}");

    let about_id = html("/id/about").await;
    assert!(!robots_noindex(&about_id), "{about_id}");
    assert!(about_id.contains("Tentang pabrik kami"));
    // Excluded elements keep the origin's words even where the memory has them, and say so to
    // browsers' own translators.
    assert!(
        about_id.contains(
            r#"<div class="reviews" translate="no"><p>We make kettles in Foshan.</p></div>"#
        ),
        "{about_id}"
    );
    assert!(about_id.contains("<p>Kami membuat ketel di Foshan.</p>"));
    // A context naming the page gives the same words another sense there, and only there.
    assert!(
        about_id.contains("<h2>Cara kami merawat pelanggan</h2>"),
        "{about_id}"
    );
    assert!(half_id.contains("<h1>Petunjuk perawatan</h1>"), "{half_id}");
    assert_eq!(
        hreflangs(&about_id),
        [
            ("en".into(), "https://shop.example/about".into()),
            ("id-ID".into(), "https://shop.example/id/about".into()),
            ("x-default".into(), "https://shop.example/about".into()),
        ]
    );
    // Vietnamese has no memory at all: every page stays English-only there.
    assert!(robots_noindex(&html("/vi/about").await));

    let sitemap = html("/sitemap.xml").await;
    let locs: Vec<&str> = sitemap
        .split("<loc>")
        .skip(1)
        .filter_map(|s| s.split("</loc>").next())
        .collect();
    assert!(locs.contains(&"https://shop.example/id/about"), "{sitemap}");
    assert!(locs.contains(&"https://shop.example/about"), "{sitemap}");
    assert!(locs.contains(&"https://shop.example/"), "{sitemap}");
    for hidden in ["https://shop.example/id/", "https://shop.example/vi/about"] {
        assert!(!locs.contains(&hidden), "{hidden} in {sitemap}");
        assert!(
            !sitemap.contains(&format!("href=\"{hidden}\"")),
            "{sitemap}"
        );
    }
    origin.stop();
}

/// The first JSON-LD node of schema.org type `ty` on the page.
fn jsonld_node(html: &str, ty: &str) -> Option<serde_json::Value> {
    let doc = Html::parse_document(html);
    let scripts = Selector::parse(r#"script[type="application/ld+json"]"#).unwrap();
    doc.select(&scripts)
        .filter_map(|s| {
            serde_json::from_str::<serde_json::Value>(&s.text().collect::<String>()).ok()
        })
        .filter_map(|block| block["@graph"].as_array().cloned())
        .flatten()
        .find(|node| node["@type"] == ty)
}

#[tokio::test]
async fn product_names_and_descriptions_in_jsonld_come_from_the_memory() {
    let origin = Origin::start().await;
    origin.serve(
        "/products/kettle",
        CannedPage::html(
            "<html><head><title>Kettle</title></head><body><h1>Electric Kettle</h1></body></html>",
        ),
    );
    // No Indonesian name in the feed: the memory has it, and the description.
    let products = "sku,path,name_en,name_vi,name_th,description_en,price_usd,price_idr,price_vnd,price_thb,availability,image,brand,category\n\
                    K-1,/products/kettle,Electric Kettle,Ấm siêu tốc,กาต้มน้ำไฟฟ้า,A 1.7 litre kettle with a steel body.,7.80,127900,202000,263.64,InStock,/img/kettle.png,Example,kettle\n";
    let po = "msgid \"\"\nmsgstr \"\"\n\"Content-Type: text/plain; charset=UTF-8\\n\"\n\n\
              #: /products/kettle\nmsgid \"Electric Kettle\"\nmsgstr \"Ketel Listrik\"\n\n\
              msgid \"A 1.7 litre kettle with a steel body.\"\nmsgstr \"Ketel 1,7 liter berbadan baja.\"\n";
    let rules = fixture_site(origin.addr, |site| site)
        .file("shop/products.csv", products)
        .file("shop/translations/id.po", po);
    let app = start_proxy(&rules).await;
    let client = http1_client();
    let product = |path: &'static str| {
        let client = client.clone();
        async move {
            let (status, _, body) = fetch(&client, get(app.http_addr, "shop.test", path)).await;
            assert_eq!(status, StatusCode::OK);
            let html = String::from_utf8(body.to_vec()).unwrap();
            jsonld_node(&html, "Product").unwrap_or_else(|| panic!("no Product in {html}"))
        }
    };
    let id = product("/id/products/kettle").await;
    assert_eq!(id["name"], "Ketel Listrik");
    assert_eq!(id["description"], "Ketel 1,7 liter berbadan baja.");
    let vi = product("/vi/products/kettle").await;
    assert_eq!(vi["name"], "Ấm siêu tốc");
    let en = product("/products/kettle").await;
    assert_eq!(en["description"], "A 1.7 litre kettle with a steel body.");

    // A name neither the feed nor the memory has is an error at its place in the feed.
    let broken = fixture_site(origin.addr, |site| site)
        .file(
            "shop/products.csv",
            &products.replace("Electric Kettle", "Cordless Kettle"),
        )
        .file("shop/translations/id.po", po);
    let err = edgeseo::config::Rules::load(broken.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("products.csv:2:")
            && err.contains("translations/id.po does not translate `Cordless Kettle`"),
        "{err}"
    );
    origin.stop();
}

/// Translated text reaches the buyer whatever the origin's charset and content coding: a page
/// in windows-1252 cannot carry Thai letters, so they arrive as character references that read
/// back as Thai; a windows-874 page carries them as its own bytes.
#[tokio::test]
async fn translation_survives_every_charset_and_content_coding() {
    use std::io::{Read, Write};
    let origin = Origin::start().await;
    let html = "<html><head><title>Guide</title></head><body><h1>Kettle buying guide</h1>\
                <p>Our <strong>1.7 L</strong> kettle boils in <em>4 minutes</em>.</p></body></html>";
    type Encode = fn(&[u8]) -> Vec<u8>;
    let codings: [(&str, Encode); 4] = [
        ("identity", |b| b.to_vec()),
        ("gzip", |b| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(b).unwrap();
            e.finish().unwrap()
        }),
        ("deflate", |b| {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(b).unwrap();
            e.finish().unwrap()
        }),
        ("br", |b| {
            let mut e = brotli::CompressorWriter::new(Vec::new(), 4096, 5, 22);
            e.write_all(b).unwrap();
            e.into_inner()
        }),
    ];
    let charsets = ["utf-8", "windows-1252", "windows-874"];
    for charset in charsets {
        for (coding, encode) in &codings {
            let mut page = CannedPage::new(
                &format!("text/html; charset={charset}"),
                encode(html.as_bytes()),
            )
            .header("cache-control", "public, max-age=60");
            if *coding != "identity" {
                page = page.header("content-encoding", coding);
            }
            origin.serve(&format!("/guide-{charset}-{coding}"), page);
        }
    }
    let mut po =
        String::from("msgid \"\"\nmsgstr \"\"\n\"Content-Type: text/plain; charset=UTF-8\\n\"\n\n");
    po.push_str("msgid \"Kettle buying guide\"\nmsgstr \"คู่มือเลือกซื้อกาต้มน้ำ\"\n\n");
    po.push_str("msgid \"Our <1>1.7 L</1> kettle boils in <2>4 minutes</2>.\"\nmsgstr \"กาต้มน้ำ <1>1.7 ลิตร</1> ของเราเดือดใน <2>4 นาที</2>\"\n");
    let rules = fixture_site(origin.addr, |site| format!("{site}\n[cache]\n"))
        .file("shop/translations/th.po", &po);
    let app = start_proxy(&rules).await;
    let client = http1_client();
    for charset in charsets {
        for (coding, _) in &codings {
            let path = format!("/th/guide-{charset}-{coding}");
            let req = http::Request::get(format!("http://{}{path}", app.http_addr))
                .header("host", "shop.test")
                .header("accept-encoding", "gzip, deflate, br")
                .body(edgeseo::body::empty())
                .unwrap();
            let (status, headers, body) = fetch(&client, req).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            let mut bytes = Vec::new();
            match headers.get("content-encoding").map(|v| v.to_str().unwrap()) {
                None => bytes = body.to_vec(),
                Some("gzip") => {
                    drop(flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut bytes))
                }
                Some("deflate") => {
                    drop(flate2::read::ZlibDecoder::new(&body[..]).read_to_end(&mut bytes))
                }
                Some("br") => {
                    drop(brotli::Decompressor::new(&body[..], 4096).read_to_end(&mut bytes))
                }
                Some(other) => panic!("{path}: coding {other}"),
            }
            let encoding = encoding_rs::Encoding::for_label(charset.as_bytes()).unwrap();
            let (text, _, malformed) = encoding.decode(&bytes);
            assert!(!malformed, "{path}: not valid {charset}");
            let doc = Html::parse_document(&text);
            let text_of = |css: &str| {
                let sel = Selector::parse(css).unwrap();
                doc.select(&sel)
                    .map(|e| e.text().collect::<String>())
                    .collect::<Vec<_>>()
            };
            assert_eq!(text_of("h1"), ["คู่มือเลือกซื้อกาต้มน้ำ"], "{path}: {text}");
            assert_eq!(
                text_of("p"),
                ["กาต้มน้ำ 1.7 ลิตร ของเราเดือดใน 4 นาที"],
                "{path}"
            );
            assert_eq!(text_of("p strong"), ["1.7 ลิตร"], "{path}");
        }
    }
    // Translated pages are cached per locale like localized ones: the second request for the
    // Thai page comes from the cache, translated; the Indonesian URL of the same page is its own
    // entry, translated from the fixture's Indonesian memory.
    let cached = |path: &'static str| {
        let client = client.clone();
        async move {
            let (_, headers, body) = fetch(&client, get(app.http_addr, "shop.test", path)).await;
            let status = headers["x-edgeseo-cache"].to_str().unwrap().to_owned();
            let (text, _, _) = encoding_rs::WINDOWS_874.decode(&body);
            (status, text.into_owned())
        }
    };
    let (first, _) = cached("/th/guide-windows-874-identity").await;
    let (second, thai) = cached("/th/guide-windows-874-identity").await;
    assert_eq!((first.as_str(), second.as_str()), ("MISS", "HIT"));
    assert!(thai.contains("<h1>คู่มือเลือกซื้อกาต้มน้ำ</h1>"), "{thai}");
    let (status, indonesian) = cached("/id/guide-windows-874-identity").await;
    assert_eq!(status, "MISS");
    assert!(
        indonesian.contains("<h1>Panduan membeli ketel</h1>"),
        "{indonesian}"
    );
    origin.stop();
}
