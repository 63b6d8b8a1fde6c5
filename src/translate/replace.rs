//! Streaming replacement of a page's visible text from the translation memory.
//!
//! Owns: the lol_html handlers that cut the body into runs of inline content (a run ends at every
//! block element's start and end tag), hold each run until it ends, and write either its
//! translation or, when the memory has none, the run exactly as it came. Also the translated
//! attributes (`alt`, `title`, `placeholder`, `aria-label`, the `value` of input buttons).
//! Output keeps flowing: a run is held only while the memory has a source it could still become,
//! and one longer than `MAX_HELD` is written as it is and the rest of its block passes untouched.
//! Must never: touch text inside `script`, `style`, `pre`, `code`, `textarea`, `svg`, an element
//! marked `translate="no"` or `.notranslate`, or one of the caller's opaque selectors (prices);
//! or drop or duplicate markup of the origin's page.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, Mutex};

use lol_html::Selector;
use lol_html::html_content::{Comment, ContentType, EndTag, TextChunk};
use lol_html::send::{DocumentContentHandlers, Element, ElementContentHandlers, Settings};

use super::memory::Memory;
use super::segment::{Segment, SegmentBuilder};

/// Longest run held back while waiting for its block to end.
pub const MAX_HELD: usize = 16 << 10;

/// Elements whose content is never translated; each ends the run before it.
const SKIP: &[&str] = &[
    "script", "style", "pre", "code", "kbd", "samp", "var", "textarea", "template", "svg", "math",
    "noscript", "iframe", "object", "canvas", "video", "audio",
];

/// Elements that live inside a sentence: they become placeholders of the run.
const INLINE: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "cite", "data", "del", "dfn", "em", "font", "i", "ins", "mark",
    "q", "s", "small", "span", "strong", "sub", "sup", "time", "u",
];

/// Inline elements without content: one placeholder each.
const VOID_INLINE: &[&str] = &["br", "wbr", "img", "input"];

/// Attributes whose text a visitor reads or hears.
const TEXT_ATTRIBUTES: &[&str] = &["alt", "title", "placeholder", "aria-label"];

/// What the replacer asks about a page's text: the memory when serving, a collector when
/// extracting the segments of a site.
pub trait Lookup: Send + Sync + 'static {
    /// Whether some source begins with `partial` (a run is held only while this holds).
    fn has_prefix(&self, partial: &str) -> bool;
    /// The translation of `source`.
    fn translation(&self, source: &str) -> Option<&str>;
    /// Every translatable segment and attribute text, as it is met.
    fn seen(&self, _source: &str) {}
}

/// A memory as one page reads it: an entry whose `msgctxt` is the page's origin path wins over
/// the entry without a context, so that the same words can read differently on one page.
pub struct PageMemory {
    pub memory: Arc<Memory>,
    /// Origin path of the page (`/about`), as in the PO references.
    pub page: String,
}

impl Lookup for PageMemory {
    fn has_prefix(&self, partial: &str) -> bool {
        self.memory.has_prefix(partial)
    }
    fn translation(&self, source: &str) -> Option<&str> {
        self.memory
            .get(Some(&self.page), source)
            .or_else(|| self.memory.get(None, source))
    }
}

/// Words counted while a page streams: what share of its visible text was served translated.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Coverage {
    /// Words of translatable runs and attributes.
    pub words: usize,
    /// Of those, the words served translated.
    pub translated: usize,
    /// Runs longer than `MAX_HELD`, passed untranslated.
    pub overflowed: usize,
}

#[derive(Default)]
struct State {
    in_body: bool,
    /// Open elements whose content is left alone.
    skip: usize,
    /// Set by an opaque selector's handler for the element handled next.
    marked: bool,
    run: SegmentBuilder,
    /// The current run was given up (too long, or the memory has no source it could become):
    /// the rest of its block passes as it is.
    passthrough: bool,
    next_key: u64,
    /// Size the run must reach before the memory is asked again whether it could become one of
    /// its sources (doubling: a run is checked a few times, not at every chunk).
    next_check: usize,
    coverage: Coverage,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

static BODY: LazyLock<Selector> = LazyLock::new(|| "body, body *".parse().expect("selector"));

/// Adds the translation handlers to `settings`. Register them after every handler that changes
/// attributes of inline elements (links, prices): a run keeps the start tags as they are when
/// its handler sees them. `opaque` elements are left alone like `code`.
pub fn append_handlers(
    mut settings: Settings<'static, 'static>,
    memory: Arc<dyn Lookup>,
    opaque: Vec<Cow<'static, Selector>>,
) -> Settings<'static, 'static> {
    let state: Shared = Arc::default();

    for selector in opaque {
        let state = state.clone();
        settings = settings.append_element_content_handler((
            selector,
            ElementContentHandlers::default().element(move |_: &mut Element<'_, '_>| {
                lock(&state).marked = true;
                Ok(())
            }),
        ));
    }

    {
        let (state, memory) = (state.clone(), memory.clone());
        settings = settings.append_element_content_handler((
            Cow::Borrowed(&*BODY),
            ElementContentHandlers::default()
                .element(move |el: &mut Element<'_, '_>| on_element(el, &state, &memory)),
        ));
    }

    {
        let (state, memory) = (state.clone(), memory.clone());
        settings = settings.append_document_content_handler(
            DocumentContentHandlers::default().text(move |chunk: &mut TextChunk<'_>| {
                on_text(chunk, &state, &*memory);
                Ok(())
            }),
        );
    }
    {
        // A comment inside a run stays where it was when the run is not translated.
        let state = state.clone();
        settings = settings.append_document_content_handler(
            DocumentContentHandlers::default().comments(move |c: &mut Comment<'_>| {
                let mut st = lock(&state);
                if st.in_body && st.skip == 0 && !st.passthrough && !st.run.is_empty() {
                    st.run.other(&format!("<!--{}-->", c.text()));
                    c.remove();
                }
                Ok(())
            }),
        );
    }

    settings.append_document_content_handler(DocumentContentHandlers::default().end(
        move |end: &mut lol_html::html_content::DocumentEnd<'_>| {
            let mut st = lock(&state);
            if let Some(html) = flush(&mut st, &*memory) {
                end.append(&html, ContentType::Html);
            }
            let c = st.coverage;
            tracing::debug!(
                words = c.words,
                translated = c.translated,
                overflowed = c.overflowed,
                "page translated"
            );
            Ok(())
        },
    ))
}

fn on_element(
    el: &mut Element<'_, '_>,
    state: &Shared,
    memory: &Arc<dyn Lookup>,
) -> lol_html::HandlerResult {
    let name = el.tag_name();
    let mut st = lock(state);
    let marked = std::mem::take(&mut st.marked);
    if name == "body" {
        st.in_body = true;
        drop(st);
        end_flushes(el, state, memory, true)?;
        return Ok(());
    }
    if st.skip > 0 || !st.in_body {
        return Ok(());
    }
    let excluded = marked
        || SKIP.contains(&name.as_str())
        || el
            .get_attribute("translate")
            .is_some_and(|v| v.eq_ignore_ascii_case("no"))
        || el
            .get_attribute("class")
            .is_some_and(|c| c.split_ascii_whitespace().any(|c| c == "notranslate"));
    if excluded {
        if let Some(html) = flush(&mut st, &**memory) {
            el.before(&html, ContentType::Html);
        }
        if el.can_have_content() {
            st.skip += 1;
            drop(st);
            let state = state.clone();
            el.on_end_tag(Box::new(move |_: &mut EndTag<'_>| {
                let mut st = lock(&state);
                st.skip = st.skip.saturating_sub(1);
                Ok(())
            }))?;
        }
        return Ok(());
    }
    translate_attributes(el, &mut st, &**memory)?;

    if VOID_INLINE.contains(&name.as_str()) {
        if !st.passthrough {
            let tag = start_tag_html(el);
            st.run.void(&tag);
            if hold_on(
                &mut st,
                &**memory,
                |held| el.before(held, ContentType::Html),
                tag.len(),
            ) {
                el.remove();
            }
        }
        return Ok(());
    }
    if INLINE.contains(&name.as_str()) {
        if !el.can_have_content() {
            return Ok(());
        }
        st.next_key += 1;
        let key = st.next_key;
        let held = !st.passthrough && {
            let tag = start_tag_html(el);
            st.run.open(&tag, key);
            hold_on(
                &mut st,
                &**memory,
                |held| el.before(held, ContentType::Html),
                tag.len(),
            )
        };
        drop(st);
        if held {
            // The start and end tags leave the output here and come back with the run.
            el.remove_and_keep_content();
        }
        let (state, memory) = (state.clone(), memory.clone());
        el.on_end_tag(Box::new(move |end: &mut EndTag<'_>| {
            let end_tag = format!("</{name}>");
            let mut st = lock(&state);
            if held && st.run.close(&end_tag, key) {
                return Ok(());
            }
            // The element is not part of the run held now (its start tag went out earlier, or
            // a block came in between): that run ends here, before the end tag, which was
            // taken out of the output if the start tag was.
            let mut html = flush(&mut st, &*memory).unwrap_or_default();
            if held {
                html.push_str(&end_tag);
            }
            end.before(&html, ContentType::Html);
            Ok(())
        }))?;
        return Ok(());
    }

    // A block: the run before it ends here, and so does the run inside it.
    if let Some(html) = flush(&mut st, &**memory) {
        el.before(&html, ContentType::Html);
    }
    st.passthrough = false;
    drop(st);
    end_flushes(el, state, memory, false)
}

/// Ends the element's last run just before its end tag; after `</body>` nothing is translated.
fn end_flushes(
    el: &mut Element<'_, '_>,
    state: &Shared,
    memory: &Arc<dyn Lookup>,
    leaves_body: bool,
) -> lol_html::HandlerResult {
    if !el.can_have_content() {
        return Ok(());
    }
    let (state, memory) = (state.clone(), memory.clone());
    el.on_end_tag(Box::new(move |end: &mut EndTag<'_>| {
        let mut st = lock(&state);
        if let Some(html) = flush(&mut st, &*memory) {
            end.before(&html, ContentType::Html);
        }
        st.passthrough = false;
        if leaves_body {
            st.in_body = false;
        }
        Ok(())
    }))?;
    Ok(())
}

fn on_text(chunk: &mut TextChunk<'_>, state: &Shared, memory: &dyn Lookup) {
    let mut st = lock(state);
    if !st.in_body || st.skip > 0 || st.passthrough {
        return;
    }
    let text = chunk.as_str();
    let blank = text.trim().is_empty();
    if blank && st.run.is_empty() {
        // Whitespace between blocks: nothing to hold, and most text chunks of a page are this.
        return;
    }
    if st.run.held() + text.len() > MAX_HELD {
        // Too long to hold: what was held goes out as it came, and so does the rest of the block.
        let raw = st.run.take_raw();
        chunk.before(&raw, ContentType::Html);
        st.next_check = 0;
        st.passthrough = true;
        st.coverage.overflowed += 1;
        return;
    }
    st.run.text(text);
    let len = text.len();
    // Whitespace does not change what the run could become (sources are normalised).
    if blank {
        chunk.remove();
        return;
    }
    if hold_on(
        &mut st,
        memory,
        |held| chunk.before(held, ContentType::Html),
        len,
    ) {
        chunk.remove();
    }
}

/// Decides, after the run has grown, whether it is still worth holding: only while the memory
/// has a source it could become. Otherwise the run goes out now as it came (through `emit`,
/// without its last `last_len` bytes, which the caller leaves in place) and the rest of the
/// block passes. Holding nothing the memory cannot translate keeps untranslated text streaming
/// and keeps stray markup (an end tag without its element) in its place.
fn hold_on(st: &mut State, memory: &dyn Lookup, emit: impl FnOnce(&str), last_len: usize) -> bool {
    if st.run.held() < st.next_check {
        return true;
    }
    st.next_check = st.run.held() * 2;
    let keep = match st.run.partials() {
        // The form without wrapping elements is the one most sources have: tried first.
        Some(forms) => forms.iter().rev().any(|f| memory.has_prefix(f)),
        None => true,
    };
    if !keep {
        st.next_check = 0;
        let mut raw = st.run.take_raw();
        raw.truncate(raw.len() - last_len);
        st.passthrough = true;
        emit(&raw);
    }
    keep
}

/// Ends the current run: its translation, or the run as it came. `None` when nothing was held.
fn flush(st: &mut State, memory: &dyn Lookup) -> Option<String> {
    st.next_check = 0;
    if st.run.is_empty() {
        return None;
    }
    let segment = std::mem::take(&mut st.run).finish();
    Some(render(&segment, memory, &mut st.coverage))
}

fn render(segment: &Segment, memory: &dyn Lookup, coverage: &mut Coverage) -> String {
    let words = segment.words();
    if words == 0 {
        return segment.raw.clone();
    }
    coverage.words += words;
    memory.seen(&segment.source);
    match memory
        .translation(&segment.source)
        .and_then(|t| segment.render(t))
    {
        Some(html) => {
            coverage.translated += words;
            html
        }
        None => segment.raw.clone(),
    }
}

fn translate_attributes(
    el: &mut Element<'_, '_>,
    st: &mut State,
    memory: &dyn Lookup,
) -> lol_html::HandlerResult {
    let button = el.tag_name() == "input"
        && el.get_attribute("type").is_some_and(|t| {
            matches!(
                t.to_ascii_lowercase().as_str(),
                "submit" | "button" | "reset"
            )
        });
    let names = TEXT_ATTRIBUTES.iter().chain(button.then_some(&"value"));
    for &name in names {
        let Some(value) = el.get_attribute(name) else {
            continue;
        };
        let mut builder = SegmentBuilder::new();
        builder.text(&value);
        let segment = builder.finish();
        let words = segment.words();
        if words == 0 {
            continue;
        }
        st.coverage.words += words;
        memory.seen(&segment.source);
        if let Some(t) = memory.translation(&segment.source) {
            el.set_attribute(name, &html_escape::encode_double_quoted_attribute(t))?;
            st.coverage.translated += words;
        }
    }
    Ok(())
}

/// The element's start tag as it stands now (after other handlers' changes). Values are written
/// as lol_html holds them, entities included.
fn start_tag_html(el: &Element<'_, '_>) -> String {
    let mut html = format!("<{}", el.tag_name());
    for attr in el.attributes() {
        let value = attr.value();
        let quote = if value.contains('"') { '\'' } else { '"' };
        html.push(' ');
        html.push_str(&attr.name_preserve_case());
        html.push('=');
        html.push(quote);
        html.push_str(&value);
        html.push(quote);
    }
    html.push_str(if el.is_self_closing() { "/>" } else { ">" });
    html
}
