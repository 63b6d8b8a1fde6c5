//! The cost of localizing a page: edgeseo's whole rewrite of the ~60 KB demo product page (plan
//! built from the rules, every handler, templates, JSON-LD, links, prices) against a bare lol_html
//! rewriter with the same selectors doing trivial edits, measured in the same run.
//!
//!     cargo bench --bench rewrite
//!
//! The ratio edgeseo/bare is the figure to watch (target <= 1.3x); with the page text translated
//! from the demo's translation memory, translated/localized (target <= 1.5x). After criterion's
//! report, the three are also run interleaved for 20 rounds and the best round of each is
//! compared: on a shared, noisy machine those ratios are the steadier ones. The `floor` cases
//! show what lol_html handlers on every body element would cost, which is why translation is a
//! scan of its own after the rewrite (`translate::replace`).

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use edgeseo::codec::Coding;
use edgeseo::config::Rules;
use edgeseo::locale::Locale;
use edgeseo::rewrite::{RewriteOptions, rewrite_bytes};
use edgeseo::seo::{HeadPlan, PageRequest};
use lol_html::html_content::ContentType;
use lol_html::send::{ElementContentHandlers, HtmlRewriter, Settings};
use lol_html::{MemorySettings, Selector};

const CHUNK: usize = 16 * 1024;

fn page() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/demo/site/products/air-fryer-4-5l.html"
    ))
    .unwrap()
}

const SELECTORS: [&str; 11] = [
    "html",
    "title",
    "meta",
    "link[rel]",
    r#"script[type="application/ld+json" i]"#,
    "head",
    "html > *, head > *",
    "body",
    "a[href]",
    "form[action]",
    "span[data-sku][data-currency]",
];

/// A rewriter with edgeseo's selectors and edits of the same kind, but fixed strings and no
/// per-page logic: the floor any HTML rewrite of this page pays. `skip` leaves one selector out,
/// to show what it costs.
fn bare_rewrite(input: &[u8], head: &str, selectors: &[Selector], skip: Option<usize>) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + head.len());
    let mut settings = Settings::new_send()
        .with_memory_settings(MemorySettings::new().with_max_allowed_memory_usage(4 << 20));
    for (i, selector) in selectors.iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        let head = head.to_string();
        settings = settings.append_element_content_handler((
            Cow::Borrowed(selector),
            ElementContentHandlers::default().element(
                move |el: &mut lol_html::send::Element<'_, '_>| {
                    match i {
                        0 => el.set_attribute("lang", "id-ID")?,
                        1 => el.set_inner_content("Air Fryer 4.5 Liter", ContentType::Text),
                        5 => {
                            let head = head.clone();
                            el.on_end_tag(Box::new(move |end| {
                                end.before(&head, ContentType::Html);
                                Ok(())
                            }))?;
                        }
                        8 | 9 => {
                            let attr = if i == 8 { "href" } else { "action" };
                            if let Some(v) = el.get_attribute(attr)
                                && v.starts_with('/')
                            {
                                el.set_attribute(attr, &format!("/id{v}"))?;
                            }
                        }
                        10 => el.set_inner_content("Rp 408.400", ContentType::Text),
                        _ => {}
                    }
                    Ok(())
                },
            ),
        ));
    }
    let mut rewriter = HtmlRewriter::new(settings, |c: &[u8]| out.extend_from_slice(c));
    for piece in input.chunks(CHUNK) {
        rewriter.write(piece).unwrap();
    }
    rewriter.end().unwrap();
    out
}

fn bench(c: &mut Criterion) {
    let Setup {
        input,
        seo,
        head,
        selectors,
    } = setup();

    let mut group = c.benchmark_group("rewrite 60 KB product page");
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.measurement_time(Duration::from_secs(6));
    group.bench_function("bare lol_html, same selectors, trivial edits", |b| {
        b.iter(|| bare_rewrite(&input, &head, &selectors, None))
    });
    group.bench_function("bare lol_html without `html > *, head > *`", |b| {
        b.iter(|| bare_rewrite(&input, &head, &selectors, Some(6)))
    });
    group.bench_function("edgeseo (plan + all handlers)", |b| {
        b.iter(|| edgeseo_rewrite(&input, &seo, false))
    });
    group.bench_function("edgeseo, page text translated (translations/id.po)", |b| {
        b.iter(|| edgeseo_rewrite(&input, &seo, true))
    });
    let localized = edgeseo_rewrite(&input, &seo, false);
    let memory = seo.translations.get(&REQUEST.locale).cloned().unwrap();
    group.bench_function("translating pass alone, over the localized page", |b| {
        b.iter(|| translate_pass(&localized, &memory))
    });
    group.bench_function("floor: visit every body element and text chunk", |b| {
        b.iter(|| visit_all(&input, false))
    });
    group.bench_function(
        "floor: visit every body element (with end tag) and text chunk",
        |b| b.iter(|| visit_all(&input, true)),
    );
    group.bench_function("tokenize only (no selectors)", |b| {
        b.iter(|| {
            let mut n = 0usize;
            let mut rewriter = HtmlRewriter::new(Settings::new_send(), |c: &[u8]| n += c.len());
            for piece in input.chunks(CHUNK) {
                rewriter.write(piece).unwrap();
            }
            rewriter.end().unwrap();
            n
        })
    });
    group.finish();
}

/// The second pass of a translated rewrite on its own: the localized page's text replaced from
/// the memory, in the chunks the rewriter would hand it.
fn translate_pass(localized: &[u8], memory: &Arc<edgeseo::translate::Memory>) -> Vec<u8> {
    use edgeseo::translate::replace::{PageMemory, Replacer, charset};
    let lookup = Arc::new(PageMemory::new(memory.clone(), REQUEST.origin_path));
    let mut replacer = Replacer::new(lookup, charset(encoding_rs::UTF_8));
    let mut out = Vec::with_capacity(localized.len() + localized.len() / 4);
    for piece in localized.chunks(CHUNK) {
        replacer.push(piece, &mut out);
    }
    replacer.finish(&mut out);
    out
}

fn visit_all(input: &[u8], end_tags: bool) -> usize {
    use lol_html::send::DocumentContentHandlers;
    let mut n = 0usize;
    let body: Selector = "body, body *".parse().unwrap();
    let settings = Settings::new_send()
        .append_element_content_handler((
            Cow::Owned(body),
            ElementContentHandlers::default().element(
                move |el: &mut lol_html::send::Element<'_, '_>| {
                    if end_tags && el.can_have_content() {
                        el.on_end_tag(Box::new(|_| Ok(())))?;
                    }
                    Ok(())
                },
            ),
        ))
        .append_document_content_handler(DocumentContentHandlers::default().text(
            |t: &mut lol_html::html_content::TextChunk<'_>| {
                std::hint::black_box(t.as_str());
                Ok(())
            },
        ));
    let mut rewriter = HtmlRewriter::new(settings, |c: &[u8]| n += c.len());
    for piece in input.chunks(CHUNK) {
        rewriter.write(piece).unwrap();
    }
    rewriter.end().unwrap();
    n
}

struct Setup {
    input: Vec<u8>,
    seo: Arc<edgeseo::config::SiteSeo>,
    head: String,
    selectors: Vec<Selector>,
}

const REQUEST: PageRequest<'static> = PageRequest {
    locale: Locale::Id,
    origin_path: "/products/air-fryer-4-5l",
    base: "https://www.lianhe-appliance.example",
};

fn setup() -> Setup {
    let rules = Rules::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap();
    let seo = rules.sites[0].seo.clone().unwrap();
    let head = HeadPlan::build(&seo, REQUEST).head_html(None, None, Default::default(), false);
    Setup {
        input: page(),
        seo,
        head,
        selectors: SELECTORS.iter().map(|s| s.parse().unwrap()).collect(),
    }
}

/// What serving one localized page costs edgeseo: the plan from the rules, then the rewrite;
/// with `translated`, the page text is replaced from the demo's translation memory too.
fn edgeseo_rewrite(input: &[u8], seo: &Arc<edgeseo::config::SiteSeo>, translated: bool) -> Vec<u8> {
    let plan = HeadPlan::build(seo, REQUEST);
    let opts = RewriteOptions {
        plan: Arc::new(plan),
        charset: Some(encoding_rs::UTF_8),
        coding: Coding::Identity,
        output: Coding::Identity,
        max_memory: seo.rewrite.max_memory,
        own_host: Arc::new(|h: &str| h == "www.lianhe-appliance.example"),
        body_end: Some(edgeseo::edge::LOCALE_SCRIPT_TAG.to_string()),
        translations: translated
            .then(|| seo.translations.get(&REQUEST.locale).cloned())
            .flatten(),
    };
    rewrite_bytes(input, CHUNK, opts).unwrap()
}

fn interleaved_ratio() {
    let Setup {
        input,
        seo,
        head,
        selectors,
    } = setup();
    let (mut bare, mut ours, mut translated) = (Duration::MAX, Duration::MAX, Duration::MAX);
    let time = |f: &mut dyn FnMut()| {
        let start = Instant::now();
        for _ in 0..50 {
            f();
        }
        start.elapsed() / 50
    };
    for _ in 0..20 {
        bare = bare.min(time(&mut || {
            drop(bare_rewrite(&input, &head, &selectors, None))
        }));
        ours = ours.min(time(&mut || drop(edgeseo_rewrite(&input, &seo, false))));
        translated = translated.min(time(&mut || drop(edgeseo_rewrite(&input, &seo, true))));
    }
    println!(
        "interleaved best of 20 rounds x 50: bare lol_html {bare:?}, edgeseo {ours:?}, ratio edgeseo/bare {:.2}x",
        ours.as_secs_f64() / bare.as_secs_f64()
    );
    println!(
        "translated {translated:?}, ratio translated/localized {:.2}x",
        translated.as_secs_f64() / ours.as_secs_f64()
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // Under a profiler (`--profile-time`) only the chosen case should run.
    if !std::env::args().any(|a| a == "--profile-time") {
        interleaved_ratio();
    }
}
