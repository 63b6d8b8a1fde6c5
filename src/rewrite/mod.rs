//! Streaming HTML rewrite: the origin's page passes through lol_html chunk by chunk and comes out
//! with the localized head of a [`HeadPlan`], localized links and prices. Output starts with the
//! first chunk; memory per response is bounded (beyond the limit the rest passes through
//! unmodified); compressed bodies are decoded and encoded again; legacy charsets are honoured.
//!
//! What is changed, and nothing else:
//! - `<html lang>`; the first `<title>`'s text (later ones removed);
//! - origin `meta description`, `og:title|description|url|locale*`, canonical and hreflang links
//!   are removed, and the plan's versions are added once, just before `</head>`;
//! - origin JSON-LD blocks describing only types the plan describes are removed;
//! - `a[href]`, `form[action]` to this site gain the locale prefix;
//! - the text of price elements becomes the locale's price;
//! - with a translation memory, the body's visible text and text attributes, by a second pass
//!   over the rewriter's output (`translate::replace`).

pub mod links;
mod reviews;

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, Mutex};

use encoding_rs::Encoding;
use lol_html::html_content::{ContentType, EndTag, TextChunk};
use lol_html::send::{Element, ElementContentHandlers, HtmlRewriter, Settings};
use lol_html::{AsciiCompatibleEncoding, MemorySettings, OutputSink, Selector};

use crate::body::{Body, BoxError, Transform};
use crate::codec::{Coding, Decoder, Encoder};
use crate::config::Switcher;
use crate::locale::Locale;
use crate::seo::{HeadPlan, Needs};
use crate::translate::Memory;
use crate::translate::replace::{self, Charset, PageMemory, Replacer};

/// What the rewriter needs besides the plan.
pub struct RewriteOptions {
    pub plan: Arc<HeadPlan>,
    /// Charset named by the response's Content-Type, if any.
    pub charset: Option<&'static Encoding>,
    /// The coding the origin's body arrived in.
    pub coding: Coding,
    /// The coding the client gets.
    pub output: Coding,
    pub max_memory: usize,
    /// Whether a host names this site (for absolute links).
    pub own_host: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    /// Extra HTML to insert before `</body>` (the chat widget's script tag).
    pub body_end: Option<String>,
    /// The site's translation memory for the page's locale: its visible text is replaced.
    pub translations: Option<Arc<Memory>>,
}

/// The charset a `Content-Type` value names, when lol_html can rewrite in it.
pub fn charset_of(content_type: &str) -> Option<&'static Encoding> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| Encoding::for_label(value.trim().trim_matches('"').as_bytes()))
            .flatten()
    })
}

/// Whether a page in this encoding can be rewritten at all (UTF-16 and ISO-2022-JP cannot).
pub fn can_rewrite(encoding: Option<&'static Encoding>) -> bool {
    encoding.is_none_or(|e| AsciiCompatibleEncoding::new(e).is_some())
}

/// Wraps `body` so it is rewritten as it streams.
pub fn rewrite(body: Body, opts: RewriteOptions) -> Body {
    crate::body::transform(body, Machine::new(opts))
}

/// Rewrites a page held in memory, fed in `chunk`-byte pieces as a network would deliver it.
/// The same machinery as [`rewrite`], without the async body around it (benchmarks, tools).
pub fn rewrite_bytes(
    input: &[u8],
    chunk: usize,
    opts: RewriteOptions,
) -> Result<Vec<u8>, BoxError> {
    let mut machine = Machine::new(opts);
    let mut out = Vec::with_capacity(input.len() + 4096);
    for piece in input.chunks(chunk.max(1)) {
        out.extend(machine.push(piece)?);
    }
    out.extend(machine.finish()?);
    Ok(out)
}

/// Collects what lol_html writes; drained after every input chunk.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        self.0.lock().expect("sink lock").extend_from_slice(chunk);
    }
}

impl Sink {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("sink lock"))
    }
}

/// decode → rewrite → translate → encode, one chunk at a time.
struct Machine {
    decoder: Decoder,
    rewriter: HtmlRewriter<'static, Sink>,
    sink: Sink,
    replacer: Option<Replacer>,
    encoder: Encoder,
}

impl Machine {
    fn new(mut opts: RewriteOptions) -> Machine {
        let sink = Sink::default();
        let (coding, output) = (opts.coding, opts.output);
        // lol_html starts in UTF-8 when neither the header nor a <meta> names a charset.
        let charset = replace::charset(opts.charset.unwrap_or(encoding_rs::UTF_8));
        let memory: Option<Arc<dyn replace::Lookup>> = opts
            .translations
            .take()
            .map(|memory| Arc::new(PageMemory::new(memory, opts.plan.origin_path())) as _);
        let replacer = memory
            .clone()
            .map(|memory| Replacer::new(memory, charset.clone()));
        let meta_charset = opts.charset.is_none().then_some(charset);
        let rewriter = HtmlRewriter::new(settings(opts, meta_charset, memory), sink.clone());
        Machine {
            decoder: Decoder::new(coding),
            rewriter,
            sink,
            replacer,
            encoder: Encoder::new(output),
        }
    }
}

/// The rewriter's output so far, translated when there is a memory.
fn translated(sink: &Sink, replacer: Option<&mut Replacer>) -> Vec<u8> {
    let html = sink.take();
    match replacer {
        Some(replacer) => {
            let mut out = Vec::with_capacity(html.len() + html.len() / 4);
            replacer.push(&html, &mut out);
            out
        }
        None => html,
    }
}

impl Transform for Machine {
    fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, BoxError> {
        let decoded = self.decoder.push(data)?;
        self.rewriter.write(&decoded)?;
        let html = translated(&self.sink, self.replacer.as_mut());
        Ok(self.encoder.push(&html)?)
    }

    fn finish(self) -> Result<Vec<u8>, BoxError> {
        let Machine {
            decoder,
            mut rewriter,
            sink,
            mut replacer,
            mut encoder,
        } = self;
        let tail = decoder.finish()?;
        rewriter.write(&tail)?;
        rewriter.end()?;
        let mut html = translated(&sink, replacer.as_mut());
        if let Some(replacer) = replacer {
            replacer.finish(&mut html);
        }
        let mut out = encoder.push(&html)?;
        out.extend(encoder.finish()?);
        Ok(out)
    }
}

/// What the handlers learn while the page streams by.
#[derive(Default)]
struct PageState {
    titles: usize,
    descriptions: usize,
    /// Past the head: an element that belongs in <body> has been seen.
    in_body: bool,
    body_end_done: bool,
    /// The language switcher has been placed.
    switcher_done: bool,
    /// The page rule's lead has been placed.
    lead_done: bool,
    origin_canonical: Option<String>,
    injected: bool,
    /// The page's encoding cannot carry every character: injected JSON is escaped to ASCII.
    ascii_only: bool,
    /// The start tag of the JSON-LD block being read, and its text so far.
    ld_open: String,
    ld_text: String,
    /// The organization node of the origin's head JSON-LD, merged into the injected graph.
    origin_org: Option<serde_json::Value>,
    /// Told the charset a `<meta>` names, when the header named none (the translating pass
    /// reads the page in it).
    meta_charset: Option<Charset>,
}

type State = Arc<Mutex<PageState>>;

/// Elements a document may have before its body; anything else starts the body.
const HEAD_ELEMENTS: &[&str] = &[
    "html", "head", "title", "meta", "link", "script", "style", "base", "noscript", "template",
];

fn lock<T>(state: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking handler poisons nothing we cannot still read.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

struct Fixed {
    html: Selector,
    title: Selector,
    meta: Selector,
    link: Selector,
    script: Selector,
    head: Selector,
    body: Selector,
    top: Selector,
    anchor: Selector,
    form: Selector,
}

static SELECTORS: LazyLock<Fixed> = LazyLock::new(|| {
    let parse = |s: &str| s.parse::<Selector>().expect("static selector");
    Fixed {
        html: parse("html"),
        title: parse("title"),
        meta: parse("meta"),
        link: parse("link[rel]"),
        // Only JSON-LD: a text handler re-encodes the text it sees, which must never touch
        // other scripts (a page whose bytes disagree with its declared charset would change).
        script: parse(r#"script[type="application/ld+json" i]"#),
        head: parse("head"),
        body: parse("body"),
        // Children of <html> and <head> only: matching every element would double the cost of a
        // rewrite, and these are where a parser decides the head has ended.
        top: parse("html > *, head > *"),
        anchor: parse("a[href]"),
        form: parse("form[action]"),
    }
});

type Handlers = (Cow<'static, Selector>, ElementContentHandlers<'static>);

fn on_element(
    selector: &'static Selector,
    handler: impl FnMut(&mut Element<'_, '_>) -> lol_html::HandlerResult + Send + 'static,
) -> Handlers {
    (
        Cow::Borrowed(selector),
        ElementContentHandlers::default().element(handler),
    )
}

/// The rewriter's handlers; `memory` is the page's translation memory when its text is
/// translated (by a second pass, whose no-go elements these handlers mark).
fn settings(
    opts: RewriteOptions,
    meta_charset: Option<Charset>,
    memory: Option<Arc<dyn replace::Lookup>>,
) -> Settings<'static, 'static> {
    let s = &*SELECTORS;
    let plan = opts.plan;
    let state: State = Arc::new(Mutex::new(PageState {
        ascii_only: opts.charset.is_some_and(|e| e != encoding_rs::UTF_8),
        meta_charset,
        ..PageState::default()
    }));
    let locale = plan.locale;

    let mut settings = Settings::new_send()
        .with_memory_settings(
            MemorySettings::new()
                .with_max_allowed_memory_usage(opts.max_memory)
                .with_graceful_bail_out_on_memory_limit_exceeded(true),
        )
        .with_strict(false)
        .with_graceful_bail_out_on_content_handler_error(true)
        .append_bail_out_handler(|err: &lol_html::errors::RewritingError, _: &mut lol_html::html_content::BailOut<'_>| {
            tracing::warn!(error = %err, "HTML rewrite stopped; the rest of the page passes through unmodified");
        });
    settings = match opts.charset.and_then(AsciiCompatibleEncoding::new) {
        Some(encoding) => settings.with_encoding(encoding),
        // No charset in the header: a <meta charset> decides, as in a browser.
        None => settings.with_adjust_charset_on_meta_tag(true),
    };

    settings = settings.append_element_content_handler(on_element(&s.html, move |el| {
        el.set_attribute("lang", locale.tag())?;
        Ok(())
    }));

    {
        let (plan, state) = (plan.clone(), state.clone());
        settings = settings.append_element_content_handler(on_element(&s.title, move |el| {
            // A <title> in the body is an SVG caption, not the document's (the namespace alone
            // is not reliable in a streaming tokenizer).
            let mut st = lock(&state);
            if st.in_body || el.namespace_uri() != "http://www.w3.org/1999/xhtml" {
                return Ok(());
            }
            st.titles += 1;
            match (&plan.title, st.titles) {
                (Some(title), 1) => el.set_inner_content(title, ContentType::Text),
                (Some(_), _) => el.remove(),
                // The origin's own title stays; a second one still goes.
                (None, 1) => {}
                (None, _) => el.remove(),
            }
            Ok(())
        }));
    }

    {
        let (plan, state) = (plan.clone(), state.clone());
        settings = settings.append_element_content_handler(on_element(&s.meta, move |el| {
            if !(el.has_attribute("name") || el.has_attribute("property")) {
                if let Some(encoding) = charset_of_meta(el) {
                    note_charset(&state, encoding);
                }
                return Ok(());
            }
            let name = el
                .get_attribute("name")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let property = el
                .get_attribute("property")
                .unwrap_or_default()
                .to_ascii_lowercase();
            // Without a localized description the origin's first one stays, and only that one.
            let repeated = name == "description" && plan.description.is_none() && {
                let mut st = lock(&state);
                st.descriptions += 1;
                st.descriptions > 1
            };
            let replaced = (name == "description" && plan.description.is_some())
                || repeated
                || (property == "og:description" && plan.description.is_some())
                || (property == "og:title" && plan.title.is_some())
                || matches!(
                    property.as_str(),
                    "og:url" | "og:locale" | "og:locale:alternate"
                );
            if replaced {
                el.remove();
            }
            Ok(())
        }));
    }

    {
        let state = state.clone();
        settings = settings.append_element_content_handler(on_element(&s.link, move |el| {
            let rel = el
                .get_attribute("rel")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let mut tokens = rel.split_ascii_whitespace();
            if tokens.clone().any(|t| t == "canonical") {
                let mut st = lock(&state);
                if st.origin_canonical.is_none() && !st.in_body {
                    st.origin_canonical = el.get_attribute("href");
                }
                el.remove();
            } else if tokens.any(|t| t == "alternate") && el.has_attribute("hreflang") {
                el.remove();
            }
            Ok(())
        }));
    }

    settings = jsonld_handlers(settings, &plan, &state);

    {
        let (plan, state) = (plan.clone(), state.clone());
        settings = settings.append_element_content_handler(on_element(&s.head, move |el| {
            let (plan, state) = (plan.clone(), state.clone());
            // No end tag (implicit </head>): the body handler or the document end injects instead.
            let _ = el.on_end_tag(Box::new(move |end: &mut EndTag<'_>| {
                if let Some(html) = take_head_html(&plan, &state) {
                    end.before(&html, ContentType::Html);
                }
                Ok(())
            }));
            Ok(())
        }));
    }
    {
        let (plan, state) = (plan.clone(), state.clone());
        settings = settings.append_element_content_handler(on_element(&s.top, move |el| {
            let mut st = lock(&state);
            if st.in_body {
                return Ok(());
            }
            if HEAD_ELEMENTS.contains(&el.tag_name().as_str()) {
                return Ok(());
            }
            // The first element that can only live in <body> (or <body> itself) ends the head for
            // a parser, even inside an unclosed <head>: tags placed before it land in <head>, tags
            // after it do not count as head tags (Google ignores a canonical there). A fragment
            // without <html> gets the tags at the document end instead.
            st.in_body = true;
            drop(st);
            if let Some(html) = take_head_html(&plan, &state) {
                el.before(&html, ContentType::Html);
            }
            Ok(())
        }));
    }
    if let Some(nav) = plan.switcher_html() {
        settings = place_switcher(settings, plan.switcher(), nav, &state);
    }
    if let Some(extra) = opts.body_end.clone() {
        let state = state.clone();
        settings = settings.append_element_content_handler(on_element(&s.body, move |el| {
            let (extra, state) = (extra.clone(), state.clone());
            let _ = el.on_end_tag(Box::new(move |end: &mut EndTag<'_>| {
                lock(&state).body_end_done = true;
                end.before(&extra, ContentType::Html);
                Ok(())
            }));
            Ok(())
        }));
    }
    {
        let (plan, state) = (plan.clone(), state.clone());
        let body_end = opts.body_end.clone();
        settings = settings.append_document_content_handler(
            lol_html::send::DocumentContentHandlers::default().end(
                move |end: &mut lol_html::html_content::DocumentEnd<'_>| {
                    if let Some(html) = take_head_html(&plan, &state) {
                        end.append(&html, ContentType::Html);
                    }
                    if let Some(extra) = body_end
                        && !lock(&state).body_end_done
                    {
                        end.append(&extra, ContentType::Html);
                    }
                    Ok(())
                },
            ),
        );
    }

    if locale != Locale::En {
        for (selector, attr) in [(&s.anchor, "href"), (&s.form, "action")] {
            let own_host = opts.own_host.clone();
            settings = settings.append_element_content_handler(on_element(selector, move |el| {
                if let Some(value) = el.get_attribute(attr)
                    && let Some(localized) = links::localize(&value, locale, &*own_host)
                {
                    el.set_attribute(attr, &localized)?;
                }
                Ok(())
            }));
        }
    }

    {
        let plan = plan.clone();
        settings = settings.append_element_content_handler((
            Cow::Owned(plan.price_selector().clone()),
            ElementContentHandlers::default().element(move |el: &mut Element<'_, '_>| {
                if let Some(formatted) = el
                    .get_attribute("data-sku")
                    .and_then(|sku| plan.price(&sku))
                {
                    el.set_inner_content(&formatted, ContentType::Text);
                    if el.has_attribute("data-currency") {
                        el.set_attribute("data-currency", plan.locale.currency())?;
                    }
                }
                Ok(())
            }),
        ));
    }
    if let Some((html, after)) = plan.lead_html() {
        let state = state.clone();
        settings = settings.append_element_content_handler((
            Cow::Owned(after.clone()),
            ElementContentHandlers::default().element(move |el: &mut Element<'_, '_>| {
                let mut st = lock(&state);
                if st.in_body && !std::mem::replace(&mut st.lead_done, true) {
                    el.after(&html, ContentType::Html);
                }
                Ok(())
            }),
        ));
    }
    if let Some((rules, product_id)) = plan.reviews() {
        let collected = reviews::Reviews::new(rules, memory.clone());
        settings = review_handlers(settings, rules, product_id, collected, &state);
    }
    if memory.is_some() {
        settings = replace::mark_untranslated(settings, plan.untranslated_selectors());
    }
    settings
}

/// Reads the reviews the page shows (`[reviews]`) and states them at the end of its body, or
/// at the document's end when it has no `</body>`.
fn review_handlers(
    mut settings: Settings<'static, 'static>,
    rules: &crate::config::ReviewRules,
    product_id: &str,
    collected: reviews::Shared,
    state: &State,
) -> Settings<'static, 'static> {
    use reviews::Part;
    {
        let collected = collected.clone();
        settings = settings.append_element_content_handler((
            Cow::Owned(rules.item.clone()),
            ElementContentHandlers::default().element(move |el: &mut Element<'_, '_>| {
                lock(&collected).start_item();
                let collected = collected.clone();
                let _ = el.on_end_tag(Box::new(move |_| {
                    lock(&collected).end_item();
                    Ok(())
                }));
                Ok(())
            }),
        ));
    }
    let parts = [
        (Some(&rules.author), Part::Author, &[][..]),
        (
            Some(&rules.rating),
            Part::Rating,
            &["aria-label", "content"][..],
        ),
        (rules.body.as_ref(), Part::Body, &[][..]),
        (rules.date.as_ref(), Part::Date, &["datetime"][..]),
    ];
    for (selector, part, attributes) in parts {
        let Some(selector) = selector else { continue };
        let (element, text) = (collected.clone(), collected.clone());
        settings = settings.append_element_content_handler((
            Cow::Owned(selector.clone()),
            ElementContentHandlers::default()
                .element(move |el: &mut Element<'_, '_>| {
                    let value = attributes.iter().find_map(|a| el.get_attribute(a));
                    if lock(&element).start_part(part, value) && el.can_have_content() {
                        let element = element.clone();
                        let _ = el.on_end_tag(Box::new(move |_| {
                            lock(&element).end_part(part);
                            Ok(())
                        }));
                    }
                    Ok(())
                })
                .text(move |chunk: &mut TextChunk<'_>| {
                    lock(&text).text(part, chunk.as_str());
                    Ok(())
                }),
        ));
    }
    let product_id: Arc<str> = product_id.into();
    let script = Arc::new(move |state: &State| {
        let ascii_only = lock(state).ascii_only;
        lock(&collected).take_script(&product_id, ascii_only)
    });
    {
        let (script, state) = (script.clone(), state.clone());
        settings =
            settings.append_element_content_handler(on_element(&SELECTORS.body, move |el| {
                let (script, state) = (script.clone(), state.clone());
                let _ = el.on_end_tag(Box::new(move |end: &mut EndTag<'_>| {
                    if let Some(html) = script(&state) {
                        end.before(&html, ContentType::Html);
                    }
                    Ok(())
                }));
                Ok(())
            }));
    }
    let state = state.clone();
    settings.append_document_content_handler(
        lol_html::send::DocumentContentHandlers::default().end(
            move |end: &mut lol_html::html_content::DocumentEnd<'_>| {
                if let Some(html) = script(&state) {
                    end.append(&html, ContentType::Html);
                }
                Ok(())
            },
        ),
    )
}

/// The charset a `<meta charset>` or `<meta http-equiv="content-type">` names.
pub fn charset_of_meta(el: &Element<'_, '_>) -> Option<&'static Encoding> {
    if let Some(label) = el.get_attribute("charset") {
        return Encoding::for_label(label.trim().as_bytes());
    }
    let content = el.get_attribute("content")?;
    el.get_attribute("http-equiv")
        .is_some_and(|h| h.eq_ignore_ascii_case("content-type"))
        .then(|| charset_of(&content))
        .flatten()
}

fn note_charset(state: &State, encoding: &'static Encoding) {
    let mut st = lock(state);
    st.ascii_only = encoding != encoding_rs::UTF_8;
    if let Some(charset) = &st.meta_charset {
        // A <meta> naming UTF-16 means UTF-8, as in a browser.
        *charset.lock().unwrap_or_else(|e| e.into_inner()) = encoding.output_encoding();
    }
}

/// The head tags, the first time this is asked for; `None` afterwards.
/// The language switcher at the top of `<body>`, or inside the first element the site's
/// selector matches (before `</body>` when the page has no such element).
fn place_switcher(
    mut settings: Settings<'static, 'static>,
    at: &Switcher,
    nav: String,
    state: &State,
) -> Settings<'static, 'static> {
    let nav: Arc<str> = nav.into();
    if let Switcher::Inside(selector) = at {
        let (nav, state) = (nav.clone(), state.clone());
        settings = settings.append_element_content_handler((
            Cow::Owned(selector.clone()),
            ElementContentHandlers::default().element(move |el: &mut Element<'_, '_>| {
                let mut st = lock(&state);
                if st.in_body && !st.switcher_done && el.can_have_content() {
                    st.switcher_done = true;
                    el.append(&nav, ContentType::Html);
                }
                Ok(())
            }),
        ));
    }
    {
        // A page without a `<body>` tag, or without an end tag for it, still gets its links.
        let (nav, state) = (nav.clone(), state.clone());
        settings = settings.append_document_content_handler(
            lol_html::send::DocumentContentHandlers::default().end(
                move |end: &mut lol_html::html_content::DocumentEnd<'_>| {
                    let mut st = lock(&state);
                    if st.in_body && !std::mem::replace(&mut st.switcher_done, true) {
                        end.append(&nav, ContentType::Html);
                    }
                    Ok(())
                },
            ),
        );
    }
    let bar = matches!(at, Switcher::Bar);
    let state = state.clone();
    settings.append_element_content_handler(on_element(&SELECTORS.body, move |el| {
        if bar {
            lock(&state).switcher_done = true;
            el.prepend(&nav, ContentType::Html);
            return Ok(());
        }
        let (nav, state) = (nav.clone(), state.clone());
        let _ = el.on_end_tag(Box::new(move |end: &mut EndTag<'_>| {
            if !std::mem::replace(&mut lock(&state).switcher_done, true) {
                end.before(&nav, ContentType::Html);
            }
            Ok(())
        }));
        Ok(())
    }))
}

fn take_head_html(plan: &HeadPlan, state: &State) -> Option<String> {
    let mut st = lock(state);
    if st.injected {
        return None;
    }
    st.injected = true;
    let needs = Needs {
        title: st.titles == 0,
        description: true,
    };
    Some(plan.head_html(
        st.origin_canonical.as_deref(),
        st.origin_org.as_ref(),
        needs,
        st.ascii_only,
    ))
}

/// Origin JSON-LD blocks are held back until their text is complete, then re-emitted unchanged,
/// without the nodes the plan describes, or not at all (see `HeadPlan::adopt_origin_jsonld`).
fn jsonld_handlers(
    settings: Settings<'static, 'static>,
    plan: &Arc<HeadPlan>,
    state: &State,
) -> Settings<'static, 'static> {
    let s = &*SELECTORS;
    let element_state = state.clone();
    let text_state = state.clone();
    let plan = plan.clone();
    settings.append_element_content_handler((
        Cow::Borrowed(&s.script),
        ElementContentHandlers::default()
            .element(move |el: &mut Element<'_, '_>| {
                let is_ld = el
                    .get_attribute("type")
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/ld+json"));
                if is_ld {
                    let mut open = String::from("<script");
                    for attr in el.attributes() {
                        open.push_str(&format!(
                            " {}=\"{}\"",
                            attr.name(),
                            crate::seo::escape_attr(&attr.value())
                        ));
                    }
                    open.push('>');
                    let mut st = lock(&element_state);
                    st.ld_open = open;
                    st.ld_text.clear();
                    el.remove_and_keep_content();
                }
                Ok(())
            })
            .text(move |chunk: &mut TextChunk<'_>| {
                let mut st = lock(&text_state);
                if st.ld_open.is_empty() {
                    return Ok(());
                }
                st.ld_text.push_str(chunk.as_str());
                chunk.remove();
                if chunk.last_in_text_node() {
                    let open = std::mem::take(&mut st.ld_open);
                    let text = std::mem::take(&mut st.ld_text);
                    let (written, ascii_only) = (st.injected, st.ascii_only);
                    let adopted =
                        plan.adopt_origin_jsonld(&text, written, &mut st.origin_org, ascii_only);
                    match adopted {
                        None => chunk.replace(&format!("{open}{text}</script>"), ContentType::Html),
                        Some(json) if !json.is_empty() => {
                            chunk.replace(&format!("{open}{json}</script>"), ContentType::Html)
                        }
                        Some(_) => {}
                    }
                }
                Ok(())
            }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charsets_from_content_type() {
        assert_eq!(
            charset_of("text/html; charset=windows-874"),
            Some(encoding_rs::WINDOWS_874)
        );
        assert_eq!(
            charset_of("text/html;charset=\"GBK\""),
            Some(encoding_rs::GBK)
        );
        assert_eq!(charset_of("text/html"), None);
        assert!(!can_rewrite(charset_of("text/html; charset=utf-16le")));
        assert!(can_rewrite(None));
    }
}
