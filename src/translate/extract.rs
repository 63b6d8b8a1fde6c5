//! `edgeseo translate extract`: the segments of a site's pages, collected from its origin and
//! merged into its PO translation memories.
//!
//! Owns: crawling the origin (the home page, `/sitemap.xml` and the sitemaps robots.txt names,
//! then same-site links, breadth first, bounded, robots.txt obeyed), cutting each page into
//! segments exactly as the streaming replacer does, and merging them into
//! `translations/<locale>.po`: translations kept, new segments added empty, segments no page has
//! any more kept as obsolete (`#~`), every entry referencing its pages (`#:`).
//! Must never: leave the origin's host, fetch more than the page limit, or lose a translation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{Selector, element};
use polib::catalog::Catalog;
use polib::message::{Message, MessageFlags};
use polib::metadata::CatalogMetadata;

use super::memory::{PoError, read_catalog};
use super::replace::{self, Lookup, Replacer};
use super::segment::words_of;
use crate::locale::Locale;
use crate::upstream::Upstream;

/// Largest page read.
const MAX_PAGE: usize = 8 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    #[error("origin: {0}")]
    Origin(String),
    #[error(transparent)]
    Po(#[from] PoError),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One crawled page and its segments, in page order, each once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSegments {
    pub path: String,
    pub sources: Vec<String>,
}

/// Collects every segment instead of translating.
#[derive(Default)]
struct Collector(Mutex<Vec<String>>);

impl Lookup for Collector {
    fn has_prefix(&self, _partial: &str) -> bool {
        true
    }
    fn translation(&self, _source: &str) -> Option<&str> {
        None
    }
    fn seen(&self, source: &str) {
        if words_of(source) == 0 {
            return;
        }
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(source.to_owned());
    }
}

/// The segments of one HTML page, and the paths it links to on the same site. Text inside
/// `untranslated` elements (the site's `[translate] exclude`, prices) is left out, as when serving.
pub fn page_segments(html: &[u8], untranslated: &[Selector]) -> (Vec<String>, Vec<String>) {
    let collector = Arc::new(Collector::default());
    let links = Arc::new(Mutex::new(Vec::new()));
    let charset = replace::charset(encoding_rs::UTF_8);
    let settings = {
        let (links, charset) = (links.clone(), charset.clone());
        Settings::new_send()
            .with_adjust_charset_on_meta_tag(true)
            .append_element_content_handler(element!("a[href]", move |el| {
                if let Some(href) = el.get_attribute("href") {
                    links.lock().unwrap_or_else(|e| e.into_inner()).push(href);
                }
                Ok(())
            }))
            .append_element_content_handler(element!("meta", move |el| {
                if let Some(enc) = crate::rewrite::charset_of_meta(el) {
                    // A <meta> naming UTF-16 means UTF-8, as in a browser.
                    *charset.lock().unwrap_or_else(|e| e.into_inner()) = enc.output_encoding();
                }
                Ok(())
            }))
    };
    let settings = replace::mark_untranslated(settings, untranslated.to_vec());
    let marked = Arc::new(Mutex::new(Vec::with_capacity(html.len() + 1024)));
    let mut rewriter = {
        let marked = marked.clone();
        HtmlRewriter::new(settings, move |c: &[u8]| {
            marked
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(c)
        })
    };
    // A page lol_html cannot parse to its end still gives what was read before.
    let _ = rewriter.write(html).and_then(|()| rewriter.end());
    let marked = std::mem::take(&mut *marked.lock().unwrap_or_else(|e| e.into_inner()));
    let mut replacer = Replacer::new(collector.clone(), charset);
    let mut out = Vec::with_capacity(marked.len());
    replacer.push(&marked, &mut out);
    replacer.finish(&mut out);
    let mut seen = HashSet::new();
    let sources = std::mem::take(&mut *collector.0.lock().unwrap_or_else(|e| e.into_inner()))
        .into_iter()
        .filter(|s| seen.insert(s.clone()))
        .collect();
    let links = std::mem::take(&mut *links.lock().unwrap_or_else(|e| e.into_inner()))
        .into_iter()
        .filter_map(|href| same_site_path(&href))
        .collect();
    (sources, links)
}

/// `/path?query` of a link to the same site: relative to the root, without fragment. Absolute
/// URLs are left out: the origin's public host is not known here.
fn same_site_path(href: &str) -> Option<String> {
    let href = href.trim();
    let path = href.split('#').next()?;
    (path.starts_with('/') && !path.starts_with("//")).then(|| path.to_owned())
}

/// Crawls the origin breadth first from `/` and its sitemaps, up to `max_pages` HTML pages.
/// `progress` is told each page fetched.
pub async fn crawl(
    upstream: &Upstream,
    max_pages: usize,
    untranslated: &[Selector],
    mut progress: impl FnMut(usize, &str),
) -> Result<Vec<PageSegments>, ExtractError> {
    let robots = match fetch(upstream, "/robots.txt").await? {
        (StatusCode::OK, _, body) => texting_robots::Robot::new("edgeseo", &body).ok(),
        _ => None,
    };
    let mut queue: VecDeque<String> = VecDeque::from(["/".to_owned()]);
    let mut sitemaps = vec!["/sitemap.xml".to_owned()];
    if let Some(r) = &robots {
        sitemaps.extend(r.sitemaps.iter().filter_map(|s| url_path(s)));
    }
    for sitemap in sitemaps {
        if let (StatusCode::OK, _, body) = fetch(upstream, &sitemap).await? {
            queue.extend(sitemap_locs(&String::from_utf8_lossy(&body)));
        }
    }
    let mut visited = HashSet::new();
    let mut pages = Vec::new();
    while let Some(path) = queue.pop_front() {
        if pages.len() >= max_pages {
            break;
        }
        if !visited.insert(path.clone()) || robots.as_ref().is_some_and(|r| !r.allowed(&path)) {
            continue;
        }
        let (status, html, body) = fetch(upstream, &path).await?;
        if status != StatusCode::OK || !html {
            continue;
        }
        progress(pages.len() + 1, &path);
        let (sources, links) = page_segments(&body, untranslated);
        queue.extend(links.into_iter().filter(|l| !visited.contains(l)));
        // Named as the coverage guard looks pages up (`/products/` is `/products`).
        let path = crate::seo::normalize_path(&path);
        pages.push(PageSegments { path, sources });
    }
    Ok(pages)
}

/// Status, whether the body is HTML, and the body (empty unless 200).
async fn fetch(upstream: &Upstream, path: &str) -> Result<(StatusCode, bool, Bytes), ExtractError> {
    let req = Request::get(path)
        .header(header::USER_AGENT, "edgeseo-extract")
        .body(crate::body::empty())
        .map_err(|e| ExtractError::Origin(format!("{path}: {e}")))?;
    let resp = upstream
        .send(req)
        .await
        .map_err(|e| ExtractError::Origin(format!("{path}: {e}")))?;
    let status = resp.status();
    let html = crate::headers::media_type(resp.headers()).is_some_and(|m| m == "text/html");
    if status != StatusCode::OK {
        return Ok((status, html, Bytes::new()));
    }
    let body = Limited::new(resp.into_body(), MAX_PAGE)
        .collect()
        .await
        .map_err(|e| ExtractError::Origin(format!("{path}: {e}")))?
        .to_bytes();
    Ok((status, html, body))
}

/// The paths of a sitemap's `<loc>` URLs.
fn sitemap_locs(xml: &str) -> Vec<String> {
    sitemap_urls(xml).filter_map(|url| url_path(&url)).collect()
}

/// The `<loc>` URLs of a sitemap, entities decoded.
pub(crate) fn sitemap_urls(xml: &str) -> impl Iterator<Item = String> + '_ {
    xml.split("<loc>")
        .skip(1)
        .filter_map(|rest| rest.split("</loc>").next())
        .map(|url| html_escape::decode_html_entities(url.trim()).into_owned())
}

fn url_path(url: &str) -> Option<String> {
    match url.parse::<http::Uri>() {
        Ok(uri) if uri.path().starts_with('/') => Some(
            uri.path_and_query()
                .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
        ),
        _ => None,
    }
}

/// What a merge did to one PO file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeReport {
    pub entries: usize,
    pub translated: usize,
    pub added: usize,
    pub obsolete: usize,
    /// Per page: (words translated, words in all).
    pub pages: Vec<(String, usize, usize)>,
}

/// Merges the crawled segments into the PO file at `path` (created if missing).
pub fn merge(
    path: &Path,
    locale: Locale,
    pages: &[PageSegments],
) -> Result<MergeReport, ExtractError> {
    // Entries already obsolete stay so (the PO reader does not keep them).
    let mut obsolete = Vec::new();
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => {
            obsolete = obsolete_entries(&text);
            Some(read_catalog(path, &text)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(ExtractError::Write {
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut old: HashMap<String, (String, MessageFlags)> = HashMap::new();
    let mut kept_with_context = Vec::new();
    let metadata = match existing {
        Some(catalog) => {
            for m in catalog.messages() {
                let Ok(msgstr) = m.msgstr() else { continue };
                if let Some(context) = m.msgctxt() {
                    // Entries an operator gave a context are the operator's: kept as they are.
                    kept_with_context.push(
                        Message::build_singular()
                            .with_translator_comments(m.translator_comments().to_owned())
                            .with_source(m.source().to_owned())
                            .with_flags(m.flags().clone())
                            .with_msgctxt(context.to_owned())
                            .with_msgid(m.msgid().to_owned())
                            .with_msgstr(msgstr.to_owned())
                            .done(),
                    );
                } else {
                    old.insert(m.msgid().to_owned(), (msgstr.to_owned(), m.flags().clone()));
                }
            }
            catalog.metadata
        }
        None => new_metadata(locale),
    };

    // Sources in the order pages were crawled, each with the pages it appears on.
    let mut order: Vec<&str> = Vec::new();
    let mut refs: HashMap<&str, Vec<&str>> = HashMap::new();
    for page in pages {
        for source in &page.sources {
            let r = refs.entry(source).or_default();
            if r.is_empty() {
                order.push(source);
            }
            r.push(&page.path);
        }
    }

    let mut report = MergeReport::default();
    let mut catalog = Catalog::new(metadata);
    for source in &order {
        let (msgstr, flags) = old.remove(*source).unwrap_or_default();
        if msgstr.is_empty() {
            report.added += usize::from(!flags.is_fuzzy());
        } else if !flags.is_fuzzy() {
            report.translated += 1;
        }
        catalog.append_or_update(
            Message::build_singular()
                .with_source(refs[source].join(" "))
                .with_flags(flags)
                .with_msgid((*source).to_owned())
                .with_msgstr(msgstr)
                .done(),
        );
    }
    for m in kept_with_context {
        catalog.append_or_update(m);
    }
    report.entries = catalog.count();
    let translated: HashSet<&str> = catalog
        .messages()
        .filter(|m| !m.is_fuzzy() && m.msgstr().is_ok_and(|s| !s.is_empty()))
        .map(|m| m.msgid())
        .collect();
    for page in pages {
        let mut done = 0;
        let mut all = 0;
        for source in &page.sources {
            let words = super::segment::words_of(source);
            all += words;
            if translated.contains(source.as_str()) {
                done += words;
            }
        }
        report.pages.push((page.path.clone(), done, all));
    }

    // Entries no page has any more stay, obsolete, so that a page that comes back finds its
    // translation (the PO reader used here does not keep `#~` entries; they are written here).
    let mut vanished: Vec<(String, String)> = old
        .into_iter()
        .filter(|(_, (s, _))| !s.is_empty())
        .map(|(id, (s, _))| (id, s))
        .collect();
    vanished.sort();
    report.obsolete = vanished.len();
    // An obsolete entry whose text is on a page again is a live entry now, once.
    let live: HashSet<String> = order
        .iter()
        .map(|s| format!("#~ msgid {}\n", quote(s)))
        .collect();
    obsolete.retain(|entry| !live.contains(entry.split_inclusive('\n').next().unwrap_or("")));
    for (msgid, msgstr) in vanished {
        obsolete.push(format!(
            "#~ msgid {}\n#~ msgstr {}\n\n",
            quote(&msgid),
            quote(&msgstr)
        ));
    }
    write_po(path, &catalog, &obsolete.concat())?;
    Ok(report)
}

/// Writes `catalog` to `path` (directories created), followed by the `#~` lines of obsolete
/// entries, which the PO writer does not know of.
pub(crate) fn write_po(path: &Path, catalog: &Catalog, obsolete: &str) -> Result<(), ExtractError> {
    let mut text = Vec::new();
    polib::po_file::write(catalog, &mut std::io::BufWriter::new(&mut text)).map_err(|source| {
        ExtractError::Write {
            path: path.to_owned(),
            source,
        }
    })?;
    let mut text = String::from_utf8_lossy(&text).into_owned();
    text.push_str(obsolete);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ExtractError::Write {
            path: dir.to_owned(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| ExtractError::Write {
        path: path.to_owned(),
        source,
    })
}

/// The obsolete entries (runs of `#~` lines) of PO text, each ending with a blank line.
pub(crate) fn obsolete_entries(text: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let mut entry = String::new();
    for line in text.lines().chain(std::iter::once("")) {
        if line.starts_with("#~") {
            entry.push_str(line);
            entry.push('\n');
        } else if !entry.is_empty() {
            entry.push('\n');
            entries.push(std::mem::take(&mut entry));
        }
    }
    entries
}

fn new_metadata(locale: Locale) -> CatalogMetadata {
    let mut m = CatalogMetadata::new();
    m.project_id_version = "edgeseo page text".into();
    // Fields gettext expects in every header; the translation tool fills them in.
    m.po_revision_date = "YEAR-MO-DA HO:MI+ZONE".into();
    m.last_translator = "FULL NAME <EMAIL@ADDRESS>".into();
    m.language_team = "none".into();
    m.mime_version = "1.0".into();
    m.content_type = "text/plain; charset=UTF-8".into();
    m.content_transfer_encoding = "8bit".into();
    m.language = locale.code().into();
    m.plural_rules.nplurals = 1;
    m.plural_rules.expr = "0".into();
    m
}

/// A PO string literal on one line.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_and_links_of_a_page() {
        let reviews: Selector = ".reviews".parse().unwrap();
        let (sources, links) = page_segments(
            b"<html><body><p>Welcome buyers</p><div class=\"reviews\"><p>Great kettle</p></div><img src=\"/k.jpg\" alt=\"Kettle on a table\"><a href=\"/b#top\">Next <i>page</i></a><a href=\"//cdn.example/x\">x</a></body></html>",
            &[reviews],
        );
        // Inline siblings directly in <body> make one run, as in a paragraph.
        assert_eq!(
            sources,
            [
                "Welcome buyers",
                "Kettle on a table",
                "<1/><2>Next <3>page</3></2><4>x</4>"
            ]
        );
        assert_eq!(links, ["/b", "//cdn.example/x"][..1]);
    }
}
