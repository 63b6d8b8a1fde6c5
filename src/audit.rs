//! `edgeseo audit`: the localized SEO health scan of a site, edgeseo's or not.
//!
//! Owns: crawling a site from its public URL (home, sitemap, same-site links; robots.txt obeyed;
//! bounded in pages and request rate) together with every localized URL its pages name in their
//! hreflang links, reading each page's head, JSON-LD and visible text as it streams by, and
//! judging the certification's SEO criteria per page and locale, with the pages to fix.
//! Must never: fetch outside the audited site, or pass a criterion nothing was measured for.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use lol_html::html_content::{EndTag, TextChunk};
use lol_html::{HtmlRewriter, Settings, doc_text, element, text};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::time::Instant;

use crate::chat::langid::LanguageId;
use crate::codec::{Coding, Decoder};
use crate::config::SiteSeo;
use crate::locale::Locale;
use crate::report::Criterion;
use crate::seo::vocabulary::Vocabulary;
use crate::translate::extract::sitemap_urls;
use crate::upstream::{ClientSettings, Upstream, UpstreamError};

/// Largest page read.
const MAX_PAGE: usize = 8 << 20;
/// Redirects followed before a chain counts as broken.
const MAX_REDIRECTS: usize = 5;
/// Blocks of visible text read as the page's language must reach this share.
pub const MIN_LANGUAGE_SHARE: f64 = 0.8;
/// Volume-weighted share of a market's keywords the site's pages must carry.
pub const MIN_KEYWORD_SHARE: f64 = 0.5;
/// Time to first byte and full load a buyer should not wait longer than.
pub const MAX_TTFB_MS: f64 = 800.0;
pub const MAX_LOAD_MS: f64 = 3000.0;
/// An HTML document heavier than this on the wire (compressed) slows a buyer on a mobile network.
pub const MAX_WIRE_KB: u64 = 100;
/// Documents smaller than this gain nothing from compression.
const MIN_COMPRESSIBLE: usize = 1024;
/// What a current browser offers, so compression is judged as buyers get it.
const BROWSER_ACCEPT_ENCODING: &str = "gzip, deflate, br, zstd";

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Client(#[from] UpstreamError),
}

/// What to audit and how gently.
pub struct AuditPlan<'a> {
    /// `https://www.example.com`: the site as buyers reach it.
    pub base: String,
    pub max_pages: usize,
    /// Requests per second at most.
    pub rate: f64,
    /// The site's rules, for its keyword database and price elements; `None` audits without.
    pub seo: Option<&'a SiteSeo>,
    /// `http://host:port` of an HTTP proxy to measure through (one in the buyer's country).
    pub via: Option<String>,
}

/// One fetched page, as the report stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PageAudit {
    pub path: String,
    pub locale: String,
    pub status: u16,
    /// URLs redirected through before the final one.
    pub redirects: Vec<String>,
    pub ttfb_ms: f64,
    pub load_ms: f64,
    /// The document's size, decoded.
    pub bytes: u64,
    /// Its size as sent (compressed when the site compresses).
    #[serde(default)]
    pub wire_bytes: u64,
    pub content_encoding: Option<String>,
    pub cache: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub h1: Option<String>,
    pub lang: Option<String>,
    pub canonical: Option<String>,
    pub noindex: bool,
    /// hreflang → href.
    pub alternates: BTreeMap<String, String>,
    /// schema.org types of the JSON-LD.
    pub jsonld_types: Vec<String>,
    /// Text blocks long enough to tell a language, and how many read as the page's language.
    pub text_blocks: usize,
    pub blocks_in_language: usize,
    /// What is wrong with the page, one line each.
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeywordCoverage {
    pub locale: String,
    /// Volume-weighted share of the locale's keywords found on its pages.
    pub share: f64,
    pub keywords: usize,
    pub found: usize,
    /// The most searched keywords found nowhere, highest volume first.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditResult {
    pub base: String,
    /// The proxy the pages were fetched through; `None` for this machine.
    #[serde(default)]
    pub via: Option<String>,
    pub pages: Vec<PageAudit>,
    pub keywords: Vec<KeywordCoverage>,
    pub criteria: Vec<Criterion>,
    pub passed: bool,
}

/// What a page says about itself, read as it streams.
#[derive(Default)]
struct Facts {
    title: String,
    description: Option<String>,
    robots: Option<String>,
    h1: Option<String>,
    lang: Option<String>,
    canonical: Option<String>,
    alternates: BTreeMap<String, String>,
    jsonld: Vec<String>,
    /// Visible text per block element, innermost block only.
    blocks: Vec<String>,
    /// Text of the price elements, in page order.
    prices: Vec<String>,
    links: Vec<String>,
    // Open while streaming: the JSON-LD script, the blocks, the price element, the first h1.
    script: String,
    open_blocks: Vec<String>,
    price: Option<String>,
    in_h1: bool,
}

/// Block elements whose text is one unit a reader sees.
const BLOCKS: &str = "p, li, h1, h2, h3, h4, h5, h6, td, th, dd, dt, figcaption, label, button, \
                      summary, blockquote, caption, legend";

/// An end-tag handler for the non-`Send` rewriter used here.
fn end_handler(
    f: impl FnOnce(&mut EndTag<'_>) -> lol_html::HandlerResult + 'static,
) -> lol_html::EndTagHandler<'static> {
    Box::new(f)
}

/// Reads `html` for its head, JSON-LD, visible text blocks, prices and links.
fn scan(html: &[u8], price_selector: &str) -> Facts {
    use std::cell::RefCell;
    use std::rc::Rc;
    let st = Rc::new(RefCell::new(Facts::default()));
    let on = || st.clone();
    let (s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11) = (
        on(),
        on(),
        on(),
        on(),
        on(),
        on(),
        on(),
        on(),
        on(),
        on(),
        on(),
    );
    let handlers = vec![
        element!("html", move |el| {
            s1.borrow_mut().lang = el.get_attribute("lang");
            Ok(())
        }),
        text!("title", move |t| {
            s2.borrow_mut().title.push_str(t.as_str());
            Ok(())
        }),
        element!("meta[name][content]", move |el| {
            let name = el.get_attribute("name").unwrap_or_default();
            let content = el.get_attribute("content");
            let mut f = s3.borrow_mut();
            match name.to_ascii_lowercase().as_str() {
                "description" => f.description = content,
                "robots" => f.robots = content,
                _ => {}
            }
            Ok(())
        }),
        element!("link[rel][href]", move |el| {
            let rel = el.get_attribute("rel").unwrap_or_default();
            let href = el.get_attribute("href").unwrap_or_default();
            let mut f = s4.borrow_mut();
            match rel.to_ascii_lowercase().as_str() {
                "canonical" => f.canonical = Some(href),
                "alternate" => {
                    if let Some(lang) = el.get_attribute("hreflang") {
                        f.alternates.insert(lang, href);
                    }
                }
                _ => {}
            }
            Ok(())
        }),
        element!("h1", move |el| {
            if s5.borrow().h1.is_none() {
                let mut f = s5.borrow_mut();
                f.h1 = Some(String::new());
                f.in_h1 = true;
                drop(f);
                let st = s5.clone();
                el.on_end_tag(end_handler(move |_: &mut EndTag<'_>| {
                    st.borrow_mut().in_h1 = false;
                    Ok(())
                }))?;
            }
            Ok(())
        }),
        text!(r#"script[type="application/ld+json" i]"#, move |t| {
            let mut f = s6.borrow_mut();
            f.script.push_str(t.as_str());
            if t.last_in_text_node() {
                let script = std::mem::take(&mut f.script);
                f.jsonld.push(script);
            }
            Ok(())
        }),
        element!(BLOCKS, move |el| {
            s7.borrow_mut().open_blocks.push(String::new());
            let st = s7.clone();
            el.on_end_tag(end_handler(move |_: &mut EndTag<'_>| {
                let mut f = st.borrow_mut();
                let text = f.open_blocks.pop().unwrap_or_default();
                let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                if !text.is_empty() {
                    f.blocks.push(text);
                }
                Ok(())
            }))?;
            Ok(())
        }),
        element!("script, style, noscript, template", move |el| {
            // Not visible text: a block around a script does not read it.
            s9.borrow_mut().open_blocks.push(String::new());
            let st = s9.clone();
            el.on_end_tag(end_handler(move |_: &mut EndTag<'_>| {
                st.borrow_mut().open_blocks.pop();
                Ok(())
            }))?;
            Ok(())
        }),
        element!(price_selector, move |el| {
            s10.borrow_mut().price = Some(String::new());
            let st = s10.clone();
            el.on_end_tag(end_handler(move |_: &mut EndTag<'_>| {
                let mut f = st.borrow_mut();
                if let Some(price) = f.price.take() {
                    f.prices.push(price.trim().to_owned());
                }
                Ok(())
            }))?;
            Ok(())
        }),
        element!("a[href]", move |el| {
            if let Some(href) = el.get_attribute("href") {
                s11.borrow_mut().links.push(href);
            }
            Ok(())
        }),
    ];
    let mut settings =
        Settings::new().append_document_content_handler(doc_text!(move |t: &mut TextChunk<'_>| {
            let decoded = html_escape::decode_html_entities(t.as_str());
            let mut f = s8.borrow_mut();
            if let Some(block) = f.open_blocks.last_mut() {
                block.push_str(&decoded);
            }
            if let Some(price) = f.price.as_mut() {
                price.push_str(&decoded);
            }
            if f.in_h1
                && let Some(h1) = f.h1.as_mut()
            {
                h1.push_str(&decoded);
            }
            Ok(())
        }));
    for handler in handlers {
        settings = settings.append_element_content_handler(handler);
    }

    let mut rewriter = HtmlRewriter::new(settings, |_: &[u8]| {});
    // A page lol_html cannot read to its end is judged on what was read.
    match rewriter.write(html) {
        Ok(()) => drop(rewriter.end()),
        Err(_) => drop(rewriter),
    }
    Rc::try_unwrap(st)
        .map(RefCell::into_inner)
        .unwrap_or_default()
}

/// A fetched page: final status, redirects, timings and body.
struct Fetched {
    status: StatusCode,
    redirects: Vec<String>,
    ttfb: Duration,
    load: Duration,
    html: bool,
    encoding: Option<String>,
    cache: Option<String>,
    /// Decoded.
    body: Bytes,
    wire_bytes: u64,
}

/// Paces requests to `rate` per second.
struct Pacer {
    interval: Duration,
    next: Instant,
}

impl Pacer {
    async fn wait(&mut self) {
        tokio::time::sleep_until(self.next).await;
        self.next = Instant::now().max(self.next) + self.interval;
    }
}

struct Client {
    upstream: Upstream,
    pacer: Pacer,
}

impl Client {
    /// GETs `path`, following same-site redirects.
    async fn get(&mut self, path: &str, hosts: &Hosts) -> Result<Fetched, String> {
        let mut path = path.to_owned();
        let mut redirects = Vec::new();
        let start = Instant::now();
        loop {
            self.pacer.wait().await;
            let req = Request::get(path.as_str())
                .header(header::ACCEPT, "text/html,application/xhtml+xml,*/*;q=0.8")
                .header(header::ACCEPT_ENCODING, BROWSER_ACCEPT_ENCODING)
                .header(header::USER_AGENT, "edgeseo-audit")
                .body(crate::body::empty())
                .map_err(|e| e.to_string())?;
            let resp = self.upstream.send(req).await.map_err(|e| e.to_string())?;
            let ttfb = start.elapsed();
            let status = resp.status();
            if status.is_redirection()
                && let Some(location) = resp.headers().get(header::LOCATION)
            {
                let location = location.to_str().unwrap_or_default();
                let next = hosts
                    .path_of(location)
                    .ok_or_else(|| format!("redirects off the site to {location}"))?;
                redirects.push(path.clone());
                if redirects.len() > MAX_REDIRECTS {
                    return Err(format!("more than {MAX_REDIRECTS} redirects"));
                }
                path = next;
                continue;
            }
            let headers = resp.headers().clone();
            let sent = Limited::new(resp.into_body(), MAX_PAGE)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            let text = |name: header::HeaderName| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let body = decode(headers.get(header::CONTENT_ENCODING), &sent)?;
            return Ok(Fetched {
                status,
                redirects,
                ttfb,
                load: start.elapsed(),
                html: text(header::CONTENT_TYPE).is_some_and(|t| t.contains("html")),
                encoding: text(header::CONTENT_ENCODING),
                cache: text(header::HeaderName::from_static("x-edgeseo-cache"))
                    .or_else(|| text(header::HeaderName::from_static("cf-cache-status")))
                    .or_else(|| text(header::HeaderName::from_static("x-cache"))),
                body,
                wire_bytes: sent.len() as u64,
            });
        }
    }
}

/// A body as sent, decoded by its `Content-Encoding`, at most `MAX_PAGE` bytes of it.
fn decode(coding: Option<&http::HeaderValue>, sent: &Bytes) -> Result<Bytes, String> {
    let coding = Coding::from_header(coding).ok_or("a content coding no browser accepts")?;
    if coding == Coding::Identity {
        return Ok(sent.clone());
    }
    let mut decoder = Decoder::new(coding);
    let mut out = Vec::new();
    for piece in sent.chunks(16 * 1024) {
        out.extend_from_slice(
            &decoder
                .push(piece)
                .map_err(|e| format!("{}: {e}", coding.name()))?,
        );
        if out.len() > MAX_PAGE {
            return Err(format!("larger than {MAX_PAGE} bytes decoded"));
        }
    }
    out.extend(
        decoder
            .finish()
            .map_err(|e| format!("{}: {e}", coding.name()))?,
    );
    Ok(Bytes::from(out))
}

/// The names the audited site answers to: the audited URL's, and the public one its home page
/// names in its canonical link (hreflang and canonical URLs are usually absolute to it).
struct Hosts(Vec<String>);

impl Hosts {
    fn add_of(&mut self, url: &str) {
        if let Some(host) = authority(url)
            && !self.0.contains(&host)
        {
            self.0.push(host);
        }
    }

    /// `/path?query` of a link to this site (relative to the root, or absolute to one of its
    /// names), without fragment; `None` for any other site.
    fn path_of(&self, href: &str) -> Option<String> {
        let href = href.trim().split('#').next()?;
        if href.starts_with('/') && !href.starts_with("//") {
            return Some(href.to_owned());
        }
        let host = authority(href)?;
        if !self.0.contains(&host) {
            return None;
        }
        let rest = href.split_once("://")?.1;
        Some(rest.find('/').map_or("/", |i| &rest[i..]).to_owned())
    }
}

/// The lowercased `host[:port]` of an absolute http(s) URL.
fn authority(url: &str) -> Option<String> {
    let rest = url
        .trim()
        .strip_prefix("https://")
        .or_else(|| url.trim().strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(rest[..end].to_ascii_lowercase())
}

/// The locale a `lang` value names exactly (its primary subtag is the locale's code).
fn locale_of_lang(tag: &str) -> Option<Locale> {
    Locale::from_code(&tag.split('-').next()?.to_ascii_lowercase())
}

/// Runs the audit; `progress` is told each page fetched.
pub async fn run(
    plan: &AuditPlan<'_>,
    mut progress: impl FnMut(usize, &str),
) -> Result<AuditResult, AuditError> {
    let (upstream, _) = Upstream::for_url(
        &plan.base,
        ClientSettings {
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            max_idle_connections: 4,
            via: plan.via.clone(),
        },
    )?;
    let mut client = Client {
        upstream,
        pacer: Pacer {
            interval: Duration::from_secs_f64(1.0 / plan.rate.max(0.1)),
            next: Instant::now(),
        },
    };
    let mut hosts = Hosts(Vec::new());
    hosts.add_of(&plan.base);
    let robots = match client.get("/robots.txt", &hosts).await {
        Ok(f) if f.status == StatusCode::OK => texting_robots::Robot::new("edgeseo", &f.body).ok(),
        _ => None,
    };
    let mut queue: VecDeque<String> = VecDeque::from(["/".to_owned()]);
    let mut sitemap_read = false;
    // The site's own price elements, or schema.org microdata's.
    let price_selector = plan.seo.map_or("[itemprop=price]", |seo| {
        seo.rewrite.price_selector_css.as_str()
    });
    let langid = LanguageId::new();
    let mut seen = BTreeSet::new();
    let mut pages = Vec::new();
    // Facts kept for the site-wide checks: alternates and JSON-LD per page, text per locale.
    let mut alternates: HashMap<String, BTreeMap<String, String>> = HashMap::new();
    let mut text_of: HashMap<Locale, String> = HashMap::new();
    while let Some(path) = queue.pop_front() {
        if pages.len() >= plan.max_pages {
            break;
        }
        if !seen.insert(path.clone()) || robots.as_ref().is_some_and(|r| !r.allowed(&path)) {
            continue;
        }
        let locale = Locale::split_path(&path).0;
        progress(pages.len() + 1, &path);
        let fetched = match client.get(&path, &hosts).await {
            Ok(f) => f,
            Err(e) => {
                pages.push(failed_page(&path, locale, e));
                continue;
            }
        };
        if !fetched.html {
            continue;
        }
        let facts = scan(&fetched.body, price_selector);
        if !sitemap_read {
            // The home page names the site's public host; the sitemap's URLs are absolute to it.
            sitemap_read = true;
            if let Some(canonical) = &facts.canonical {
                hosts.add_of(canonical);
            }
            if let Ok(f) = client.get("/sitemap.xml", &hosts).await
                && f.status == StatusCode::OK
            {
                let xml = String::from_utf8_lossy(&f.body);
                queue.extend(sitemap_urls(&xml).filter_map(|url| hosts.path_of(&url)));
            }
        }
        for link in facts.links.iter().chain(facts.alternates.values()) {
            if let Some(p) = hosts.path_of(link)
                && !seen.contains(&p)
            {
                queue.push_back(p);
            }
        }
        let page = judge_page(&path, locale, &fetched, &facts, &langid, &hosts);
        let text = text_of.entry(locale).or_default();
        for part in [&facts.title, facts.description.as_deref().unwrap_or("")]
            .into_iter()
            .chain(facts.h1.as_deref())
            .chain(facts.blocks.iter().map(String::as_str))
        {
            text.push_str(&part.to_lowercase());
            text.push('\n');
        }
        alternates.insert(path.clone(), facts.alternates.clone());
        pages.push(page);
    }
    reciprocity(&mut pages, &alternates, &hosts);
    let keywords = plan
        .seo
        .map(|seo| keyword_coverage(seo, &text_of))
        .unwrap_or_default();
    let criteria = criteria(&pages, &keywords, plan.seo.is_some(), plan.via.as_deref());
    let passed = criteria.iter().all(|c| c.passed);
    Ok(AuditResult {
        base: plan.base.clone(),
        via: plan.via.clone(),
        pages,
        keywords,
        criteria,
        passed,
    })
}

fn failed_page(path: &str, locale: Locale, error: String) -> PageAudit {
    PageAudit {
        path: path.to_owned(),
        locale: locale.code().to_owned(),
        status: 0,
        redirects: Vec::new(),
        ttfb_ms: 0.0,
        load_ms: 0.0,
        bytes: 0,
        wire_bytes: 0,
        content_encoding: None,
        cache: None,
        title: None,
        description: None,
        h1: None,
        lang: None,
        canonical: None,
        noindex: false,
        alternates: BTreeMap::new(),
        jsonld_types: Vec::new(),
        text_blocks: 0,
        blocks_in_language: 0,
        problems: vec![format!("not fetched: {error}")],
    }
}

/// The checks of one page on its own.
fn judge_page(
    path: &str,
    locale: Locale,
    fetched: &Fetched,
    facts: &Facts,
    langid: &LanguageId,
    hosts: &Hosts,
) -> PageAudit {
    let mut problems = Vec::new();
    let title = Some(facts.title.trim().to_owned()).filter(|t| !t.is_empty());
    let description = facts
        .description
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_owned);
    if fetched.status != StatusCode::OK {
        problems.push(format!("status {}", fetched.status.as_u16()));
    }
    if fetched.redirects.len() > 1 {
        problems.push(format!("redirect chain of {}", fetched.redirects.len()));
    }
    if title.is_none() {
        problems.push("no title".into());
    }
    if description.is_none() {
        problems.push("no meta description".into());
    }
    if facts.h1.as_deref().is_none_or(|h| h.trim().is_empty()) {
        problems.push("no h1".into());
    }
    if fetched.encoding.is_none() && fetched.body.len() >= MIN_COMPRESSIBLE {
        problems.push(format!(
            "sent uncompressed ({} KB) to a browser that accepts {BROWSER_ACCEPT_ENCODING}",
            fetched.wire_bytes / 1024
        ));
    }
    if fetched.wire_bytes > MAX_WIRE_KB * 1024 {
        problems.push(format!(
            "weighs {} KB on the wire (budget {MAX_WIRE_KB} KB)",
            fetched.wire_bytes / 1024
        ));
    }
    let lang_ok = facts
        .lang
        .as_deref()
        .and_then(locale_of_lang)
        .is_some_and(|l| l == locale);
    if !lang_ok {
        problems.push(format!("lang {:?} is not {}", facts.lang, locale.tag()));
    }
    let noindex = facts
        .robots
        .as_deref()
        .is_some_and(|r| r.to_ascii_lowercase().contains("noindex"));
    match facts.canonical.as_deref() {
        Some(href) => match hosts.path_of(href) {
            Some(c) if c == path => {}
            _ if noindex => {}
            _ => problems.push(format!("canonical points to {href}")),
        },
        None => problems.push("no canonical".into()),
    }
    if !noindex && !facts.alternates.is_empty() && !facts.alternates.contains_key("x-default") {
        problems.push("hreflang set without x-default".into());
    }

    // Visible text: blocks long enough to tell a language by.
    let telling: Vec<&String> = facts
        .blocks
        .iter()
        .filter(|t| {
            let thai = t
                .chars()
                .filter(|c| crate::chat::features::is_thai(*c))
                .count();
            let words = t
                .split(|c: char| !c.is_alphabetic())
                .filter(|w| w.chars().count() >= 4)
                .count();
            thai >= 12 || words >= 3
        })
        .collect();
    let in_language = telling
        .iter()
        .filter(|t| langid.detect(t, Locale::En).lang == locale)
        .count();
    if !telling.is_empty() && (in_language as f64) < MIN_LANGUAGE_SHARE * telling.len() as f64 {
        problems.push(format!(
            "visible text: {in_language} of {} blocks read as {}",
            telling.len(),
            locale.code()
        ));
    }

    // Structured data.
    let mut types = Vec::new();
    let mut product_prices = Vec::new();
    let mut all_nodes = Vec::new();
    for block in &facts.jsonld {
        let Ok(value) = serde_json::from_str::<Value>(block) else {
            problems.push("JSON-LD that does not parse".into());
            continue;
        };
        problems.extend(
            Vocabulary::schema_org()
                .problems(&value)
                .into_iter()
                .map(|p| format!("JSON-LD: {p}")),
        );
        all_nodes.extend(nodes(&value).into_iter().cloned());
    }
    for node in &crate::seo::join_by_id(all_nodes) {
        let Some(ty) = node["@type"].as_str() else {
            continue;
        };
        types.push(ty.to_owned());
        let missing: Vec<&str> = match ty {
            "Product" => {
                let offer = if node["offers"].is_array() {
                    &node["offers"][0]
                } else {
                    &node["offers"]
                };
                if let Some(p) = json_text(&offer["price"]) {
                    product_prices.push(p);
                }
                [("name", &node["name"]), ("image", &node["image"])]
                    .into_iter()
                    .chain([
                        ("offers.price", &offer["price"]),
                        ("offers.priceCurrency", &offer["priceCurrency"]),
                        ("offers.availability", &offer["availability"]),
                    ])
                    .filter(|(_, v)| json_text(v).is_none_or(|s| s.is_empty()))
                    .map(|(k, _)| k)
                    .collect()
            }
            "Organization" => [("name", &node["name"]), ("url", &node["url"])]
                .into_iter()
                .filter(|(_, v)| json_text(v).is_none())
                .map(|(k, _)| k)
                .collect(),
            "BreadcrumbList" => {
                if node["itemListElement"].as_array().is_none_or(Vec::is_empty) {
                    vec!["itemListElement"]
                } else {
                    Vec::new()
                }
            }
            _ => Vec::new(),
        };
        if !missing.is_empty() {
            problems.push(format!("{ty} without {}", missing.join(", ")));
        }
    }
    for (shown, listed) in facts.prices.iter().zip(&product_prices) {
        if digits(shown) != digits(listed) {
            problems.push(format!(
                "price shown {shown:?} is not the JSON-LD price {listed}"
            ));
        }
    }
    types.sort();
    types.dedup();
    PageAudit {
        path: path.to_owned(),
        locale: locale.code().to_owned(),
        status: fetched.status.as_u16(),
        redirects: fetched.redirects.clone(),
        ttfb_ms: fetched.ttfb.as_secs_f64() * 1e3,
        load_ms: fetched.load.as_secs_f64() * 1e3,
        bytes: fetched.body.len() as u64,
        wire_bytes: fetched.wire_bytes,
        content_encoding: fetched.encoding.clone(),
        cache: fetched.cache.clone(),
        title,
        description,
        h1: facts
            .h1
            .as_deref()
            .map(|h| h.split_whitespace().collect::<Vec<_>>().join(" ")),
        lang: facts.lang.clone(),
        canonical: facts.canonical.clone(),
        noindex,
        alternates: facts.alternates.clone(),
        jsonld_types: types,
        text_blocks: telling.len(),
        blocks_in_language: in_language,
        problems,
    }
}

/// The JSON-LD nodes of a block: itself, its `@graph`, or the items of an array.
fn nodes(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().flat_map(nodes).collect(),
        Value::Object(map) => match map.get("@graph") {
            Some(graph) => nodes(graph),
            None => vec![value],
        },
        _ => Vec::new(),
    }
}

fn json_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The digits of a price, without trailing decimal zeros: `Rp 408.400` and `408400`, `$24.90`
/// and `24.9` compare equal.
fn digits(price: &str) -> String {
    let all: String = price.chars().filter(char::is_ascii_digit).collect();
    all.trim_end_matches('0').to_owned()
}

/// Every hreflang link must be answered by a link back from the page it names.
fn reciprocity(
    pages: &mut [PageAudit],
    alternates: &HashMap<String, BTreeMap<String, String>>,
    hosts: &Hosts,
) {
    for page in pages.iter_mut() {
        let Some(links) = alternates.get(&page.path) else {
            continue;
        };
        for (lang, href) in links {
            let Some(target) = hosts.path_of(href) else {
                continue;
            };
            if target == page.path || lang == "x-default" {
                continue;
            }
            let Some(back) = alternates.get(&target) else {
                continue;
            };
            let answers = back
                .values()
                .filter_map(|h| hosts.path_of(h))
                .any(|p| p == page.path);
            if !answers {
                page.problems.push(format!(
                    "hreflang {lang} → {target}, which does not link back"
                ));
            }
        }
    }
}

/// Volume-weighted share of each locale's keywords found in its pages' text.
fn keyword_coverage(seo: &SiteSeo, text_of: &HashMap<Locale, String>) -> Vec<KeywordCoverage> {
    let mut out = Vec::new();
    for &locale in seo.locales.iter().filter(|&&l| l != Locale::En) {
        let keywords = seo.keywords.overall(locale, usize::MAX);
        if keywords.is_empty() {
            continue;
        }
        let text = text_of.get(&locale).map_or("", String::as_str);
        // Thai is written without spaces between words: a substring match is the match.
        let (mut all, mut found_volume, mut found) = (0u64, 0u64, 0usize);
        let mut missing = Vec::new();
        for k in &keywords {
            all += k.volume;
            if text.contains(&k.text.to_lowercase()) {
                found_volume += k.volume;
                found += 1;
            } else {
                missing.push(k.text.clone());
            }
        }
        missing.truncate(10);
        out.push(KeywordCoverage {
            locale: locale.code().to_owned(),
            share: if all == 0 {
                0.0
            } else {
                found_volume as f64 / all as f64
            },
            keywords: keywords.len(),
            found,
            missing,
        });
    }
    out
}

/// The certification's SEO criteria over all pages.
fn criteria(
    pages: &[PageAudit],
    keywords: &[KeywordCoverage],
    with_rules: bool,
    via: Option<&str>,
) -> Vec<Criterion> {
    let failing = |what: &dyn Fn(&str) -> bool| -> Vec<String> {
        pages
            .iter()
            .filter(|p| p.problems.iter().any(|x| what(x)))
            .map(|p| p.path.clone())
            .collect()
    };
    let criterion = |name: &str, required: &str, bad: Vec<String>, total: usize| Criterion {
        name: name.to_owned(),
        required: required.to_owned(),
        measured: if bad.is_empty() {
            format!("all {total} pages")
        } else {
            format!(
                "{} of {total} pages fail: {}",
                bad.len(),
                bad.iter().take(8).cloned().collect::<Vec<_>>().join(" ")
            )
        },
        passed: bad.is_empty() && total > 0,
    };
    let n = pages.len();
    let mut out = vec![
        criterion(
            "pages answer",
            "status 200, at most one redirect",
            failing(&|p| {
                p.starts_with("status") || p.starts_with("redirect") || p.starts_with("not fetched")
            }),
            n,
        ),
        criterion(
            "localized head",
            "title, meta description, h1, lang of the locale",
            failing(&|p| {
                p.starts_with("no title")
                    || p.starts_with("no meta description")
                    || p.starts_with("no h1")
                    || p.starts_with("lang ")
            }),
            n,
        ),
        criterion(
            "hreflang and canonical",
            "self canonical, x-default, every alternate links back",
            failing(&|p| p.contains("canonical") || p.contains("hreflang")),
            n,
        ),
        criterion(
            "visible text in the page's language",
            &format!("≥ {:.0} % of text blocks", MIN_LANGUAGE_SHARE * 100.0),
            failing(&|p| p.starts_with("visible text")),
            n,
        ),
        criterion(
            "structured data",
            "schema.org types and properties only; Product with name, image, price, currency, availability; Organization; BreadcrumbList; price shown = JSON-LD price",
            failing(&|p| {
                p.contains(" without ") || p.starts_with("price shown") || p.starts_with("JSON-LD")
            }),
            n,
        ),
    ];
    let slow: Vec<String> = pages
        .iter()
        .filter(|p| p.status != 0 && (p.ttfb_ms > MAX_TTFB_MS || p.load_ms > MAX_LOAD_MS))
        .map(|p| p.path.clone())
        .collect();
    out.push(criterion(
        "compression and weight",
        &format!("HTML sent compressed (gzip, br or zstd), ≤ {MAX_WIRE_KB} KB on the wire"),
        failing(&|p| p.starts_with("sent uncompressed") || p.starts_with("weighs ")),
        n,
    ));
    out.push(criterion(
        "loading speed",
        &format!(
            "first byte ≤ {MAX_TTFB_MS} ms, whole page ≤ {MAX_LOAD_MS} ms, measured {}",
            via.map_or("from this machine".to_owned(), |v| format!("through {v}"))
        ),
        slow,
        n,
    ));
    if with_rules {
        let short: Vec<String> = keywords
            .iter()
            .filter(|k| k.share < MIN_KEYWORD_SHARE)
            .map(|k| {
                format!(
                    "{} ({:.0} %, missing: {})",
                    k.locale,
                    k.share * 100.0,
                    k.missing.join(", ")
                )
            })
            .collect();
        out.push(Criterion {
            name: "marketplace keywords".into(),
            required: format!(
                "≥ {:.0} % of each market's search volume",
                MIN_KEYWORD_SHARE * 100.0
            ),
            measured: keywords
                .iter()
                .map(|k| format!("{} {:.0} %", k.locale, k.share * 100.0))
                .collect::<Vec<_>>()
                .join(", "),
            passed: short.is_empty() && !keywords.is_empty(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_to_the_site_by_any_of_its_names_and_no_other() {
        let mut hosts = Hosts(Vec::new());
        hosts.add_of("http://127.0.0.1:8080");
        hosts.add_of("https://WWW.Example.com/");
        assert_eq!(hosts.path_of("/a?b#c").as_deref(), Some("/a?b"));
        assert_eq!(
            hosts.path_of("https://www.example.com/id/x").as_deref(),
            Some("/id/x")
        );
        assert_eq!(hosts.path_of("http://127.0.0.1:8080").as_deref(), Some("/"));
        assert_eq!(hosts.path_of("https://elsewhere.example/x"), None);
        assert_eq!(hosts.path_of("//cdn.example/x.js"), None);
        assert_eq!(hosts.path_of("mailto:sales@example.com"), None);
    }

    #[test]
    fn nodes_with_one_id_are_read_as_one() {
        let head = serde_json::json!({"@graph": [
            {"@type": "Product", "@id": "u#product", "name": "Kettle"},
            {"@type": "Organization", "name": "O"},
        ]});
        let later = serde_json::json!({"@graph": [
            {"@type": "Product", "@id": "u#product", "name": "Other", "review": []},
        ]});
        let all: Vec<Value> = nodes(&head)
            .into_iter()
            .chain(nodes(&later))
            .cloned()
            .collect();
        let joined = crate::seo::join_by_id(all);
        assert_eq!(joined.len(), 2);
        assert_eq!(joined[0]["name"], "Kettle");
        assert!(joined[0]["review"].is_array());
    }

    #[test]
    fn prices_compare_by_their_digits() {
        assert_eq!(digits("Rp 408.400"), digits("408400"));
        assert_eq!(digits("$24.90"), digits("24.9"));
        assert_ne!(digits("$19.90"), digits("24.90"));
    }
}
