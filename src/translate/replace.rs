//! Streaming replacement of a page's visible text from the translation memory.
//!
//! Owns: a pass over the rewritten page that cuts the body into runs of inline content (a run
//! ends at every block element's start and end tag), holds each run until it ends, and writes
//! either its translation or, when the memory has none, the run's bytes exactly as they came.
//! Also the translated attributes (`alt`, `title`, `placeholder`, `aria-label`, the `value` of
//! input buttons). Output keeps flowing: a run is held only while the memory has a source it
//! could still become, and one longer than `MAX_HELD` is written as it is and the rest of its
//! block passes untouched.
//! Must never: touch text inside `script`, `style`, `pre`, `code`, `textarea`, `svg`, an element
//! marked `translate="no"` or `.notranslate` (the rewriter marks the caller's opaque selectors,
//! prices among them, with `translate="no"`); or drop, duplicate or re-encode markup or text of
//! the origin's page that it does not translate.
//!
//! Why a tag scanner of its own and not more lol_html handlers: a run needs every element of
//! the body, and lol_html handlers on every element (`body *`) cost twice a whole localized
//! rewrite (the `floor` cases of `benches/rewrite.rs`). The runs only need where tags start and
//! end, their names and a few attributes, which a scan between `<` and `>` gives in a fraction
//! of that; everything selector-shaped stays in lol_html, which runs first.

use std::sync::{Arc, Mutex};

use encoding_rs::Encoding;

use super::segment::{self, Segment, SegmentBuilder, words_of};

/// Longest run held back while waiting for its block to end.
pub const MAX_HELD: usize = 16 << 10;

/// Size a run reaches before the memory is first asked whether it could become one of its
/// sources: a shorter run is simply held to its end, which costs no visible delay.
const FIRST_CHECK: usize = 512;

/// Longest tag or comment held while waiting for its end; a longer one passes as text.
const MAX_MARKUP: usize = 64 << 10;

/// What an element is to a run. Looked up for every tag of the page, hence a `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Content never translated (code, scripts, media); ends the run before it.
    Skip,
    /// Lives inside a sentence: a placeholder pair of the run.
    Inline,
    /// Inline without content: one placeholder.
    VoidInline,
    /// Never has an end tag, and ends the run like a block.
    Void,
    Block,
}

fn role(name: &[u8]) -> Role {
    match name {
        b"script" | b"style" | b"pre" | b"code" | b"kbd" | b"samp" | b"var" | b"textarea"
        | b"template" | b"svg" | b"math" | b"noscript" | b"iframe" | b"object" | b"canvas"
        | b"video" | b"audio" => Role::Skip,
        b"a" | b"abbr" | b"b" | b"bdi" | b"bdo" | b"cite" | b"data" | b"del" | b"dfn" | b"em"
        | b"font" | b"i" | b"ins" | b"mark" | b"q" | b"s" | b"small" | b"span" | b"strong"
        | b"sub" | b"sup" | b"time" | b"u" => Role::Inline,
        b"br" | b"wbr" | b"img" | b"input" => Role::VoidInline,
        b"area" | b"base" | b"col" | b"embed" | b"hr" | b"link" | b"meta" | b"param"
        | b"source" | b"track" => Role::Void,
        _ => Role::Block,
    }
}

/// The element's name when the HTML tokenizer reads its content as text up to its end tag.
fn raw_text(name: &[u8]) -> Option<&'static str> {
    Some(match name {
        b"script" => "script",
        b"style" => "style",
        b"textarea" => "textarea",
        b"title" => "title",
        b"xmp" => "xmp",
        b"iframe" => "iframe",
        b"noembed" => "noembed",
        b"noframes" => "noframes",
        b"noscript" => "noscript",
        b"plaintext" => "plaintext",
        _ => return None,
    })
}

/// Attributes whose text a visitor reads or hears.
const TEXT_ATTRIBUTES: &[&str] = &["alt", "title", "placeholder", "aria-label"];

/// What the replacer asks about a page's text: the memory when serving, a collector when
/// extracting the segments of a site.
pub trait Lookup: Send + Sync + 'static {
    /// Whether some source begins with `partial` (a run is held only while this holds).
    fn has_prefix(&self, partial: &str) -> bool;
    /// The translation of `source`.
    fn translation(&self, source: &str) -> Option<&str>;
    /// The translation as HTML of a run of text alone whose trimmed HTML is `html`, when it is
    /// found without decoding (see `Memory::get_html`).
    fn html(&self, _html: &[u8]) -> Option<&str> {
        None
    }
    /// Every segment and attribute text, as it is met (prices and numbers included: see
    /// `segment::words_of`).
    fn seen(&self, _source: &str) {}
}

/// A memory as one page reads it: an entry whose `msgctxt` is the page's origin path wins over
/// the entry without a context, so that the same words can read differently on one page.
pub struct PageMemory {
    memory: Arc<super::Memory>,
    /// Origin path of the page (`/about`), as in the PO references, when some entry has it as
    /// its context: most pages have none, and are then looked up once per segment, not twice.
    page: Option<String>,
}

impl PageMemory {
    pub fn new(memory: Arc<super::Memory>, page: &str) -> Self {
        let page = memory.has_context(page).then(|| page.to_owned());
        Self { memory, page }
    }
}

impl Lookup for PageMemory {
    fn has_prefix(&self, partial: &str) -> bool {
        self.memory.has_prefix(partial)
    }
    fn translation(&self, source: &str) -> Option<&str> {
        self.page
            .as_deref()
            .and_then(|page| self.memory.get(Some(page), source))
            .or_else(|| self.memory.get(None, source))
    }
    fn html(&self, html: &[u8]) -> Option<&str> {
        // A page with entries of its own looks everything up by context first.
        match self.page {
            Some(_) => None,
            None => self.memory.get_html(html),
        }
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

/// The page's character encoding as the rewriter learns it (header, then `<meta charset>`),
/// read by the replacer when the body starts.
pub type Charset = Arc<Mutex<&'static Encoding>>;

pub fn charset(initial: &'static Encoding) -> Charset {
    Arc::new(Mutex::new(initial))
}

/// Adds `translate="no"` to the elements `selectors` match, which the replacer leaves alone.
pub fn mark_untranslated(
    mut settings: lol_html::send::Settings<'static, 'static>,
    selectors: Vec<lol_html::Selector>,
) -> lol_html::send::Settings<'static, 'static> {
    for selector in selectors {
        settings = settings.append_element_content_handler((
            std::borrow::Cow::Owned(selector),
            lol_html::send::ElementContentHandlers::default().element(
                |el: &mut lol_html::send::Element<'_, '_>| {
                    el.set_attribute("translate", "no")?;
                    Ok(())
                },
            ),
        ));
    }
    settings
}

/// Where the scan is between chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Markup,
    /// Inside an element read as text up to its end tag.
    RawText(&'static str),
    /// Inside a comment or CDATA section too long to hold, passing through up to its end.
    Comment(&'static str),
}

/// An inline element open in the body: its name, its key in the run, and whether its start tag
/// was held in the run.
struct Open {
    name: Packed,
    key: u64,
    held: bool,
}

/// An inline element's name as a number, kept and compared without allocating: the names of
/// `Role::Inline` fit in its 8 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed(u64);

impl Packed {
    fn new(name: &[u8]) -> Self {
        let mut bytes = [0u8; 8];
        for (b, c) in bytes.iter_mut().zip(name) {
            *b = *c;
        }
        Self(u64::from_le_bytes(bytes))
    }
}

/// The translating pass, fed the rewriter's output chunk by chunk.
pub struct Replacer {
    lookup: Arc<dyn Lookup>,
    charset: Charset,
    /// The page's encoding, fixed when the body starts.
    encoding: &'static Encoding,
    /// Input not yet scanned: an incomplete tag, comment or text.
    pending: Vec<u8>,
    mode: Mode,
    in_body: bool,
    /// The element whose content is left alone, and how deep elements of its name are nested.
    skip: Option<(Vec<u8>, usize)>,
    inline: Vec<Open>,
    /// The held run as a segment, once it has more than text (see `plain`).
    run: SegmentBuilder,
    /// The held run's bytes exactly as they came.
    raw: Vec<u8>,
    /// The held run is text alone, kept in `raw` only: most runs of a page are (a table cell, a
    /// list item), and they are looked up without building a segment.
    plain: bool,
    /// A plain run's source, normalised, and its translation as HTML (reused between runs).
    source: String,
    html: String,
    /// The current run was given up (too long, or the memory has no source it could become):
    /// the rest of its block passes as it is.
    passthrough: bool,
    next_key: u64,
    /// Size the run must reach before the memory is asked again whether it could become one of
    /// its sources (doubling: a run is checked a few times, not at every piece of text).
    next_check: usize,
    /// Words are counted only for the debug log: counting costs as much as translating.
    counting: bool,
    coverage: Coverage,
}

impl Replacer {
    pub fn new(lookup: Arc<dyn Lookup>, charset: Charset) -> Self {
        Self {
            lookup,
            encoding: encoding_rs::UTF_8,
            charset,
            pending: Vec::new(),
            mode: Mode::Markup,
            in_body: false,
            skip: None,
            inline: Vec::new(),
            run: SegmentBuilder::new(),
            raw: Vec::new(),
            plain: true,
            source: String::new(),
            html: String::new(),
            passthrough: false,
            next_key: 0,
            next_check: FIRST_CHECK,
            counting: tracing::enabled!(tracing::Level::DEBUG),
            coverage: Coverage::default(),
        }
    }

    /// Scans the next chunk; what can be sent so far is appended to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        if self.pending.is_empty() {
            let rest = self.scan(input, false, out);
            self.pending.extend_from_slice(&input[rest..]);
        } else {
            let mut buf = std::mem::take(&mut self.pending);
            buf.extend_from_slice(input);
            let rest = self.scan(&buf, false, out);
            buf.drain(..rest);
            self.pending = buf;
        }
    }

    /// Ends the page: everything held goes out.
    pub fn finish(mut self, out: &mut Vec<u8>) -> Coverage {
        let buf = std::mem::take(&mut self.pending);
        let rest = self.scan(&buf, true, out);
        out.extend_from_slice(&buf[rest..]);
        self.flush(out);
        let c = self.coverage;
        tracing::debug!(
            words = c.words,
            translated = c.translated,
            overflowed = c.overflowed,
            "page translated"
        );
        c
    }

    /// Scans `buf`; returns where the unscanned rest begins (kept for the next chunk).
    fn scan(&mut self, buf: &[u8], last: bool, out: &mut Vec<u8>) -> usize {
        let mut i = 0;
        while i < buf.len() {
            match self.mode {
                Mode::RawText(name) => match find_end_tag(&buf[i..], name) {
                    Some(at) => {
                        out.extend_from_slice(&buf[i..i + at]);
                        self.mode = Mode::Markup;
                        i += at;
                    }
                    None if last => {
                        out.extend_from_slice(&buf[i..]);
                        return buf.len();
                    }
                    None => {
                        // The end tag may be split over this chunk and the next.
                        let keep = (buf.len() - i).min(name.len() + 2);
                        out.extend_from_slice(&buf[i..buf.len() - keep]);
                        return buf.len() - keep;
                    }
                },
                Mode::Comment(end) => match memchr::memmem::find(&buf[i..], end.as_bytes()) {
                    Some(at) => {
                        out.extend_from_slice(&buf[i..i + at + end.len()]);
                        self.mode = Mode::Markup;
                        i += at + end.len();
                    }
                    None => {
                        let keep = if last {
                            0
                        } else {
                            (buf.len() - i).min(end.len() - 1)
                        };
                        out.extend_from_slice(&buf[i..buf.len() - keep]);
                        return buf.len() - keep;
                    }
                },
                Mode::Markup => {
                    let lt = memchr::memchr(b'<', &buf[i..]).map(|at| i + at);
                    let text_end = lt.unwrap_or(buf.len());
                    if text_end > i {
                        if lt.is_none() && !last && self.holding() {
                            // Text is taken whole, up to the next tag; until then it waits.
                            if buf.len() - i <= MAX_HELD {
                                return i;
                            }
                            self.overflow(out);
                        }
                        self.text(&buf[i..text_end], out);
                        i = text_end;
                        continue;
                    }
                    match self.markup(&buf[i..], last, out) {
                        Some(used) => i += used,
                        None => return i,
                    }
                }
            }
        }
        buf.len()
    }

    /// Whether text is held in a run at this point (rather than passed through).
    fn holding(&self) -> bool {
        self.in_body && self.skip.is_none() && !self.passthrough
    }

    /// Handles the markup `buf` starts with (`buf[0]` is `<`); returns the bytes used, or `None`
    /// when it is incomplete and must wait for more input.
    fn markup(&mut self, buf: &[u8], last: bool, out: &mut Vec<u8>) -> Option<usize> {
        let incomplete = |out: &mut Vec<u8>, this: &mut Self| {
            if last || buf.len() > MAX_MARKUP {
                // Never completed: what there is passes as text.
                this.flush(out);
                out.extend_from_slice(buf);
                Some(buf.len())
            } else {
                None
            }
        };
        let Some(&next) = buf.get(1) else {
            return incomplete(out, self);
        };
        let cut_short = |s: &[u8]| buf.len() < s.len() && s.starts_with(buf);
        if !last && (cut_short(b"<!--") || cut_short(b"<![CDATA[")) {
            return None;
        }
        let (start, end): (&str, &'static str) = if buf.starts_with(b"<!--") {
            ("<!--", "-->")
        } else if buf.starts_with(b"<![CDATA[") {
            ("<![CDATA[", "]]>")
        } else if next == b'!' || next == b'?' {
            ("<", ">")
        } else if next == b'/' || next.is_ascii_alphabetic() {
            return match read_tag(buf) {
                Some((len, wanted)) => {
                    self.tag(&buf[..len], wanted, out);
                    Some(len)
                }
                None => incomplete(out, self),
            };
        } else {
            // A `<` that opens nothing is text.
            self.text(&buf[..1], out);
            return Some(1);
        };
        match memchr::memmem::find(&buf[start.len()..], end.as_bytes()) {
            Some(at) => {
                let len = start.len() + at + end.len();
                self.comment(&buf[..len], out);
                Some(len)
            }
            None if last || buf.len() > MAX_MARKUP => {
                self.flush(out);
                out.extend_from_slice(buf);
                self.mode = Mode::Comment(end);
                Some(buf.len())
            }
            None => None,
        }
    }

    fn comment(&mut self, html: &[u8], out: &mut Vec<u8>) {
        // A comment inside a run stays where it was when the run is not translated.
        if self.holding() && !self.raw.is_empty() {
            match self.decode(html) {
                Some(text) if self.promote(out) => {
                    self.run.other(&text);
                    self.raw.extend_from_slice(html);
                    return;
                }
                // Not in the page's encoding: the run goes out as it came, the comment after it.
                None => self.give_up(out),
                // Given up by `promote`.
                Some(_) => {}
            }
        }
        out.extend_from_slice(html);
    }

    /// A complete tag; `wanted` when it has an attribute the replacer reads (`read_tag`).
    fn tag(&mut self, html: &[u8], wanted: bool, out: &mut Vec<u8>) {
        let end = html[1] == b'/';
        let name_start = if end { 2 } else { 1 };
        let name_len = html[name_start..]
            .iter()
            .position(|b| b.is_ascii_whitespace() || *b == b'/' || *b == b'>')
            .unwrap_or(html.len() - name_start);
        // Names that matter here are short and ASCII; lowercased on the stack.
        let mut buf = [0u8; 16];
        let raw_name = &html[name_start..name_start + name_len];
        let name: &[u8] = if raw_name.len() <= buf.len() {
            for (b, c) in buf.iter_mut().zip(raw_name) {
                *b = c.to_ascii_lowercase();
            }
            &buf[..raw_name.len()]
        } else {
            b"?"
        };
        if end {
            self.end_tag(name, html, out);
        } else {
            self.start_tag(name, html, wanted, out);
            if let Some(raw) = raw_text(name) {
                self.mode = Mode::RawText(raw);
            }
        }
    }

    fn start_tag(&mut self, name: &[u8], html: &[u8], wanted: bool, out: &mut Vec<u8>) {
        let role = role(name);
        let void = matches!(role, Role::Void | Role::VoidInline);
        if !self.in_body {
            if name == b"body" {
                self.in_body = true;
                self.encoding = *self.charset.lock().unwrap_or_else(|e| e.into_inner());
            }
            out.extend_from_slice(html);
            return;
        }
        if let Some((skipped, depth)) = &mut self.skip {
            if skipped == name && !void {
                *depth += 1;
            }
            out.extend_from_slice(html);
            return;
        }
        // An input's `type` decides whether its `value` is read.
        let may_matter = wanted || name == b"input";
        if role == Role::Block && !may_matter {
            // Most tags of a page: the run before it ends here, and so does the run inside it.
            self.block(out);
            out.extend_from_slice(html);
            return;
        }
        let Some(text) = self.decode(html) else {
            // Not in the page's encoding: the run ends and the tag passes as it is.
            self.flush(out);
            out.extend_from_slice(html);
            return;
        };
        let attrs = if may_matter {
            attributes(&text)
        } else {
            Vec::new()
        };
        let value = |key: &str| attrs.iter().find(|a| a.name == key).map(|a| a.value);
        let excluded = role == Role::Skip
            || value("translate").is_some_and(|v| v.trim().eq_ignore_ascii_case("no"))
            || value("class")
                .is_some_and(|c| c.split_ascii_whitespace().any(|c| c == "notranslate"));
        if excluded {
            self.flush(out);
            out.extend_from_slice(html);
            if !void {
                self.skip = Some((name.to_owned(), 1));
            }
            return;
        }
        let translated = self.translate_attributes(name, &text, &attrs);
        let encoded: Vec<u8>;
        let html = match &translated {
            Some(tag) => {
                encoded = self.encode(tag).into_owned();
                &encoded[..]
            }
            None => html,
        };
        let tag = translated.as_deref().unwrap_or(&text);

        if role == Role::VoidInline {
            if self.passthrough || !self.promote(out) {
                out.extend_from_slice(html);
            } else {
                self.run.void(tag);
                self.raw.extend_from_slice(html);
                self.hold_on(out);
            }
            return;
        }
        if role == Role::Inline {
            self.next_key += 1;
            let key = self.next_key;
            let held = if self.passthrough || !self.promote(out) {
                out.extend_from_slice(html);
                false
            } else {
                self.run.open(tag, key);
                self.raw.extend_from_slice(html);
                // Given up, the run went out with this tag in it.
                self.hold_on(out)
            };
            // Unclosed inline elements are forgotten at the next block; this bounds the rest.
            if self.inline.len() < 256 {
                self.inline.push(Open {
                    name: Packed::new(name),
                    key,
                    held,
                });
            }
            return;
        }
        // A block: the run before it ends here, and so does the run inside it.
        self.block(out);
        out.extend_from_slice(html);
    }

    fn end_tag(&mut self, name: &[u8], html: &[u8], out: &mut Vec<u8>) {
        if !self.in_body {
            out.extend_from_slice(html);
            return;
        }
        if let Some((skipped, depth)) = &mut self.skip {
            if skipped == name {
                *depth -= 1;
                if *depth == 0 {
                    self.skip = None;
                }
            }
            out.extend_from_slice(html);
            return;
        }
        if role(name) == Role::Inline
            && let Some(at) = self
                .inline
                .iter()
                .rposition(|o| o.name == Packed::new(name))
        {
            let open = self.inline.swap_remove(at);
            self.inline.truncate(at);
            if open.held
                && let Some(text) = self.decode(html)
                && self.run.close(&text, open.key)
            {
                self.raw.extend_from_slice(html);
                return;
            }
            // The element is not part of the run held now (its start tag went out earlier, or
            // a block came in between): that run ends here, before the end tag.
            self.flush(out);
            out.extend_from_slice(html);
            return;
        }
        self.block(out);
        out.extend_from_slice(html);
        if name == b"body" {
            // After `</body>` nothing is translated.
            self.in_body = false;
        }
    }

    /// A block boundary: the run ends, and the next one starts afresh.
    fn block(&mut self, out: &mut Vec<u8>) {
        self.flush(out);
        self.passthrough = false;
        self.inline.clear();
    }

    fn text(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if !self.holding() {
            out.extend_from_slice(bytes);
            return;
        }
        let blank = bytes.iter().all(u8::is_ascii_whitespace);
        if blank && self.raw.is_empty() {
            // Whitespace between blocks: nothing to hold, and most text of a page is this.
            out.extend_from_slice(bytes);
            return;
        }
        if self.raw.len() + bytes.len() > MAX_HELD {
            self.overflow(out);
            out.extend_from_slice(bytes);
            return;
        }
        // A plain run is decoded once, when it ends; bytes not in the page's encoding then
        // send it out as it came, as giving up here would.
        if !self.plain {
            let Some(text) = self.decode(bytes) else {
                self.give_up(out);
                out.extend_from_slice(bytes);
                return;
            };
            self.run.text(&text);
        }
        self.raw.extend_from_slice(bytes);
        // Whitespace does not change what the run could become (sources are normalised).
        if !blank {
            self.hold_on(out);
        }
    }

    /// Too long to hold: what was held goes out as it came, and so does the rest of the block.
    fn overflow(&mut self, out: &mut Vec<u8>) {
        self.give_up(out);
        self.coverage.overflowed += 1;
    }

    /// The run goes out as it came and the rest of its block passes untouched.
    fn give_up(&mut self, out: &mut Vec<u8>) {
        self.run.clear();
        self.plain = true;
        out.append(&mut self.raw);
        self.next_check = FIRST_CHECK;
        self.passthrough = true;
    }

    /// Decides, after the run has grown, whether it is still worth holding: only while the
    /// memory has a source it could become. Otherwise the run goes out now as it came and the
    /// rest of the block passes. Holding nothing the memory cannot translate keeps
    /// untranslated text streaming. Returns whether the run is still held.
    fn hold_on(&mut self, out: &mut Vec<u8>) -> bool {
        if self.raw.len() < self.next_check {
            return true;
        }
        self.next_check = self.raw.len() * 2;
        if !self.promote(out) {
            return false;
        }
        let keep = match self.run.partials() {
            // The form without wrapping elements is the one most sources have: tried first.
            Some(forms) => forms.iter().rev().any(|f| self.lookup.has_prefix(f)),
            None => true,
        };
        if !keep {
            self.give_up(out);
        }
        keep
    }

    /// A plain run becomes a segment, before something other than text joins it. Its text is
    /// decoded now; when that fails the run is given up (sent as it came) and false returned.
    fn promote(&mut self, out: &mut Vec<u8>) -> bool {
        if !std::mem::replace(&mut self.plain, false) || self.raw.is_empty() {
            return true;
        }
        match self.decode(&self.raw).map(std::borrow::Cow::into_owned) {
            Some(text) => {
                self.run.text(&text);
                true
            }
            None => {
                self.give_up(out);
                false
            }
        }
    }

    /// Ends the current run: its translation, or the run as it came.
    fn flush(&mut self, out: &mut Vec<u8>) {
        self.next_check = FIRST_CHECK;
        if self.raw.is_empty() {
            return;
        }
        if std::mem::replace(&mut self.plain, true) {
            return self.flush_plain(out);
        }
        // The builder and the HTML buffer are kept from run to run.
        let mut run = std::mem::take(&mut self.run);
        let mut html = std::mem::take(&mut self.html);
        html.clear();
        if self.render(run.end(), &mut html) {
            out.extend_from_slice(&self.encode(&html));
            self.raw.clear();
        } else {
            out.append(&mut self.raw);
        }
        run.clear();
        self.run = run;
        self.html = html;
    }

    /// `flush` for a run of text alone: as a segment would render it, without building one.
    fn flush_plain(&mut self, out: &mut Vec<u8>) {
        let raw = std::mem::take(&mut self.raw);
        if self.encoding == encoding_rs::UTF_8 && !self.counting {
            // Most runs of a translated page are found as the page writes them: no decoding,
            // trimming or normalising.
            let text = raw.trim_ascii_start();
            let lead = &raw[..raw.len() - text.len()];
            let text = text.trim_ascii_end();
            if let Some(html) = self.lookup.html(text) {
                out.extend_from_slice(lead);
                out.extend_from_slice(html.as_bytes());
                out.extend_from_slice(&raw[lead.len() + text.len()..]);
                self.raw = raw;
                self.raw.clear();
                return;
            }
        }
        let mut normal = std::mem::take(&mut self.source);
        let mut html = std::mem::take(&mut self.html);
        normal.clear();
        html.clear();
        let translated = self.decode(&raw).is_some_and(|text| {
            let decoded = segment::decode_entities(&text);
            let trimmed = decoded.trim();
            if trimmed.is_empty() {
                return false;
            }
            // Sources are normalised, so text found as it stands (most runs of a translated
            // page) need not be normalised first.
            let (source, translation) = match self.lookup.translation(trimmed) {
                Some(t) => (trimmed, Some(t)),
                None => {
                    segment::normalize_space_into(trimmed, &mut normal);
                    let again = normal != trimmed;
                    let t = again.then(|| self.lookup.translation(&normal)).flatten();
                    (normal.as_str(), t)
                }
            };
            self.lookup.seen(source);
            let words = if self.counting { words_of(source) } else { 0 };
            self.coverage.words += words;
            let done = translation.is_some_and(|t| segment::render_plain_into(&text, t, &mut html));
            self.coverage.translated += if done { words } else { 0 };
            done
        });
        if translated {
            out.extend_from_slice(&self.encode(&html));
        } else {
            out.extend_from_slice(&raw);
        }
        self.source = normal;
        self.html = html;
        self.raw = raw;
        self.raw.clear();
    }

    /// The translation of a finished run as HTML, appended to `html` and counted; false leaves
    /// the run as it came.
    fn render(&mut self, segment: &Segment, html: &mut String) -> bool {
        self.lookup.seen(&segment.source);
        let words = if self.counting { segment.words() } else { 0 };
        self.coverage.words += words;
        let done = self
            .lookup
            .translation(&segment.source)
            .is_some_and(|t| segment.render_into(t, html));
        self.coverage.translated += if done { words } else { 0 };
        done
    }

    /// The start tag with its text attributes translated, or `None` when none was.
    fn translate_attributes(
        &mut self,
        name: &[u8],
        tag: &str,
        attrs: &[Attr<'_>],
    ) -> Option<String> {
        let button = name == b"input"
            && attrs.iter().any(|a| {
                a.name == "type"
                    && matches!(
                        a.value.trim().to_ascii_lowercase().as_str(),
                        "submit" | "button" | "reset"
                    )
            });
        let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        for attr in attrs {
            let wanted = TEXT_ATTRIBUTES.contains(&attr.name) || (button && attr.name == "value");
            if !wanted {
                continue;
            }
            let mut builder = SegmentBuilder::new();
            builder.text(attr.value);
            let segment = builder.finish();
            if segment.source.is_empty() {
                continue;
            }
            let words = if self.counting { segment.words() } else { 0 };
            self.coverage.words += words;
            self.lookup.seen(&segment.source);
            if let Some(t) = self.lookup.translation(&segment.source) {
                let quoted = format!("\"{}\"", html_escape::encode_double_quoted_attribute(t));
                edits.push((attr.span.clone(), quoted));
                self.coverage.translated += words;
            }
        }
        if edits.is_empty() {
            return None;
        }
        let mut html = String::with_capacity(tag.len() + 64);
        let mut at = 0;
        for (span, value) in edits {
            html.push_str(&tag[at..span.start]);
            html.push_str(&value);
            at = span.end;
        }
        html.push_str(&tag[at..]);
        Some(html)
    }

    /// Text of the page's bytes; `None` when they are not valid in its encoding (passed raw).
    fn decode<'a>(&self, bytes: &'a [u8]) -> Option<std::borrow::Cow<'a, str>> {
        if self.encoding == encoding_rs::UTF_8 {
            std::str::from_utf8(bytes)
                .ok()
                .map(std::borrow::Cow::Borrowed)
        } else {
            self.encoding
                .decode_without_bom_handling_and_without_replacement(bytes)
        }
    }

    /// HTML in the page's encoding; characters it lacks become character references.
    fn encode<'a>(&self, html: &'a str) -> std::borrow::Cow<'a, [u8]> {
        if self.encoding == encoding_rs::UTF_8 {
            std::borrow::Cow::Borrowed(html.as_bytes())
        } else {
            self.encoding.encode(html).0
        }
    }
}

/// One attribute of a start tag: its lowercase name, its value as written (entities included)
/// and the byte range of the value with its quotes, for replacing it.
struct Attr<'a> {
    name: &'a str,
    value: &'a str,
    span: std::ops::Range<usize>,
}

/// The attributes of a complete start tag, as the HTML tokenizer reads them. Names are matched
/// lowercase: the rewriter's output keeps the origin's case, and only a few names matter.
fn attributes(tag: &str) -> Vec<Attr<'_>> {
    let b = tag.as_bytes();
    let mut out = Vec::new();
    let mut i = 1 + b[1..]
        .iter()
        .position(|c| c.is_ascii_whitespace() || *c == b'/' || *c == b'>')
        .unwrap_or(b.len() - 1);
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() || b[i] == b'>' {
            break;
        }
        let name_start = i;
        i += 1;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'/' | b'>' | b'=') {
            i += 1;
        }
        let name = &tag[name_start..i];
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        let (value, span) = if i < b.len() && b[i] == b'=' {
            i += 1;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            match b.get(i) {
                Some(&q @ (b'"' | b'\'')) => {
                    let close = b[i + 1..]
                        .iter()
                        .position(|&c| c == q)
                        .map_or(b.len(), |p| i + 1 + p);
                    i = (close + 1).min(b.len());
                    (&tag[start + 1..close], start..i)
                }
                _ => {
                    while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                        i += 1;
                    }
                    (&tag[start..i], start..i)
                }
            }
        } else {
            ("", i..i)
        };
        // Names that matter here are ASCII; others are kept as they are for matching nothing.
        if name.bytes().all(|c| !c.is_ascii_uppercase()) {
            out.push(Attr { name, value, span });
        } else {
            let lower: &'static str = match name.to_ascii_lowercase().as_str() {
                "alt" => "alt",
                "title" => "title",
                "placeholder" => "placeholder",
                "aria-label" => "aria-label",
                "value" => "value",
                "type" => "type",
                "class" => "class",
                "translate" => "translate",
                _ => continue,
            };
            out.push(Attr {
                name: lower,
                value,
                span,
            });
        }
    }
    out
}

/// Reads the tag `buf` starts with (`<name …>` or `</name …>`) as the HTML tokenizer would,
/// quotes in attribute values honoured. Returns its length and whether it has an attribute the
/// replacer reads (`translate`, a text attribute, a `class` naming `notranslate`): most tags of
/// a page have none, and are not parsed again. `None` when its `>` has not arrived yet.
fn read_tag(buf: &[u8]) -> Option<(usize, bool)> {
    let space = |c: u8| c.is_ascii_whitespace();
    let mut i = 1 + usize::from(buf.get(1) == Some(&b'/'));
    while i < buf.len() && !matches!(buf[i], b'>' | b'/') && !space(buf[i]) {
        i += 1;
    }
    let mut wanted = false;
    loop {
        while i < buf.len() && (space(buf[i]) || buf[i] == b'/') {
            i += 1;
        }
        if *buf.get(i)? == b'>' {
            return Some((i + 1, wanted));
        }
        // An attribute's name may begin with `=`; it ends at the next one.
        let name_start = i;
        i += 1;
        while i < buf.len() && !matches!(buf[i], b'>' | b'/' | b'=') && !space(buf[i]) {
            i += 1;
        }
        let name = &buf[name_start..i];
        while i < buf.len() && space(buf[i]) {
            i += 1;
        }
        if buf.get(i) != Some(&b'=') {
            wanted |= is_text_attribute(name);
            continue;
        }
        i += 1;
        while i < buf.len() && space(buf[i]) {
            i += 1;
        }
        let value_start = i;
        match *buf.get(i)? {
            q @ (b'"' | b'\'') => i += 2 + memchr::memchr(q, &buf[i + 1..])?,
            _ => {
                while i < buf.len() && buf[i] != b'>' && !space(buf[i]) {
                    i += 1;
                }
            }
        }
        wanted |= is_text_attribute(name)
            || (name.eq_ignore_ascii_case(b"class")
                && memchr::memmem::find(&buf[value_start..i], b"notranslate").is_some());
    }
}

/// Whether the replacer reads an attribute of this name (any case, as the tokenizer reads it).
fn is_text_attribute(name: &[u8]) -> bool {
    name.eq_ignore_ascii_case(b"translate")
        || TEXT_ATTRIBUTES
            .iter()
            .any(|a| name.eq_ignore_ascii_case(a.as_bytes()))
}

/// Where the end tag of the raw-text element `name` begins in `buf` (`</name` followed by
/// whitespace, `/` or `>`, any case).
fn find_end_tag(buf: &[u8], name: &str) -> Option<usize> {
    let mut from = 0;
    // memchr rather than memmem: this runs on every piece of every script and style, and a
    // two-byte needle is found faster by its first byte than by building a searcher each time.
    while let Some(at) = memchr::memchr(b'<', &buf[from..]).map(|a| from + a) {
        if buf.get(at + 1) != Some(&b'/') {
            if at + 1 >= buf.len() {
                return None;
            }
            from = at + 1;
            continue;
        }
        let after = at + 2 + name.len();
        if buf.len() < after + 1 {
            return None;
        }
        if buf[at + 2..after].eq_ignore_ascii_case(name.as_bytes())
            && matches!(
                buf[after],
                b'>' | b'/' | b' ' | b'\t' | b'\n' | b'\r' | 0x0c
            )
        {
            return Some(at);
        }
        from = at + 2;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static [(&'static str, &'static str)]);

    impl Lookup for Fixed {
        fn has_prefix(&self, partial: &str) -> bool {
            self.0.iter().any(|(s, _)| s.starts_with(partial))
        }
        fn translation(&self, source: &str) -> Option<&str> {
            self.0.iter().find(|(s, _)| *s == source).map(|(_, t)| *t)
        }
    }

    const MEMORY: &[(&str, &str)] = &[
        ("Ships in <1>7 days</1>", "Dikirim dalam <1>7 hari</1>"),
        ("Close", "Tutup"),
        ("Kettle", "Ketel"),
        ("Add to cart", "Tambah ke keranjang"),
    ];

    /// The page through the replacer in pieces of `size` bytes.
    fn replaced(html: &str, size: usize) -> String {
        let mut r = Replacer::new(Arc::new(Fixed(MEMORY)), charset(encoding_rs::UTF_8));
        let mut out = Vec::new();
        for piece in html.as_bytes().chunks(size) {
            r.push(piece, &mut out);
        }
        r.finish(&mut out);
        String::from_utf8(out).unwrap()
    }

    /// The page through the replacer as bytes, in pieces of `size`.
    fn replaced_bytes(html: &[u8], size: usize) -> Vec<u8> {
        let mut r = Replacer::new(Arc::new(Fixed(MEMORY)), charset(encoding_rs::UTF_8));
        let mut out = Vec::new();
        for piece in html.chunks(size) {
            r.push(piece, &mut out);
        }
        r.finish(&mut out);
        out
    }

    #[test]
    fn text_not_in_the_page_encoding_passes_byte_for_byte() {
        // Invalid UTF-8 in a run of text alone, before an inline element (the run becomes a
        // segment there), and after one; the runs around them are still translated.
        // A comment with such bytes inside a run sends the run out first, as it came.
        let page: &[u8] = b"<body><p>Close \xff</p><p>\xfe <b>Close</b></p>\
            <p>Ships in <b>7 days</b> \xc3</p><p>Close <!-- \xff --> now</p><p>Close</p></body>";
        let want: &[u8] = b"<body><p>Close \xff</p><p>\xfe <b>Close</b></p>\
            <p>Ships in <b>7 days</b> \xc3</p><p>Close <!-- \xff --> now</p><p>Tutup</p></body>";
        for size in [1, 2, 3, 7, page.len()] {
            assert_eq!(replaced_bytes(page, size), want, "pieces of {size}");
        }
    }

    #[test]
    fn markup_the_scan_must_not_misread_at_any_split() {
        let page = concat!(
            "<head><script>var s = '<body><p>Close</p>';</script></head>",
            "<body><p title='a > b'>Ships in <b data-x=\"1>2\">7 days</b></p>",
            "<!-- <p>Close</p> --><STYLE>p::after{content:'</p>Close'}</STYLE >",
            "<p>Close<!-- kept --></p><p>Open</p><![CDATA[ <p>Close</p> ]]>",
            "<img alt=Kettle src=k.png><p>a < b</p></body><p>Close</p>"
        );
        let want = concat!(
            "<head><script>var s = '<body><p>Close</p>';</script></head>",
            "<body><p title='a > b'>Dikirim dalam <b data-x=\"1>2\">7 hari</b></p>",
            "<!-- <p>Close</p> --><STYLE>p::after{content:'</p>Close'}</STYLE >",
            "<p>Tutup</p><p>Open</p><![CDATA[ <p>Close</p> ]]>",
            "<img alt=\"Ketel\" src=k.png><p>a < b</p></body><p>Close</p>"
        );
        for size in [1, 2, 3, 5, 8, 13, 4096] {
            assert_eq!(replaced(page, size), want, "pieces of {size}");
        }
    }

    #[test]
    fn runs_one_after_another_keep_their_own_markup() {
        // The segment buffers are reused from run to run: a run left untranslated between two
        // translated ones, and the same sentence with other tags, must not borrow each other's.
        let page = "<body><p>Ships in <b>7 days</b></p><p>Open <i>now</i> <br></p>\
            <p> Ships in <em class=x>7 days</em>\n</p></body>";
        let want = "<body><p>Dikirim dalam <b>7 hari</b></p><p>Open <i>now</i> <br></p>\
            <p> Dikirim dalam <em class=x>7 hari</em>\n</p></body>";
        for size in [1, 3, page.len()] {
            assert_eq!(replaced(page, size), want, "pieces of {size}");
        }
    }

    #[test]
    fn text_is_found_whether_or_not_its_whitespace_is_normal() {
        // Found as it stands, found once normalised, and a near miss left alone; the run's
        // outer whitespace stays around the translation.
        let page =
            "<body><p> Add to cart\n</p><p>Add\n  to\u{a0}cart</p><p>Add to carts</p></body>";
        let want = "<body><p> Tambah ke keranjang\n</p><p>Tambah ke keranjang</p><p>Add to carts</p></body>";
        for size in [1, 4, page.len()] {
            assert_eq!(replaced(page, size), want, "pieces of {size}");
        }
    }

    #[test]
    fn text_found_as_the_page_writes_it_reads_as_text_decoded() {
        // A run is looked up by its bytes first (`Memory::get_html`), then decoded; both ways
        // give the same HTML. An entry with placeholders cannot fill a run of text alone.
        let po = concat!(
            "msgid \"\"\nmsgstr \"Content-Type: text/plain; charset=UTF-8\\n\"\n\n",
            "msgid \"Tom & Jerry\"\nmsgstr \"Tom & Jerry <versi>\"\n\n",
            "msgid \"Open <1>now</1>\"\nmsgstr \"Buka <1>sekarang</1>\"\n\n",
            "msgid \"Open now\"\nmsgstr \"Buka <1>sekarang</1>\"\n",
        );
        let memory = super::super::Memory::parse(std::path::Path::new("id.po"), po, false).unwrap();
        let lookup = Arc::new(PageMemory::new(Arc::new(memory), "/"));
        let page = "<body><p> Tom &amp; Jerry\n</p><p>Tom &#38; Jerry</p>\
            <p>Open <b>now</b></p><p>Open now</p></body>";
        let want = "<body><p> Tom &amp; Jerry &lt;versi&gt;\n</p><p>Tom &amp; Jerry &lt;versi&gt;</p>\
            <p>Buka <b>sekarang</b></p><p>Open now</p></body>";
        for size in [1, 5, page.len()] {
            let mut r = Replacer::new(lookup.clone(), charset(encoding_rs::UTF_8));
            let mut out = Vec::new();
            for piece in page.as_bytes().chunks(size) {
                r.push(piece, &mut out);
            }
            r.finish(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), want, "pieces of {size}");
        }
    }

    #[test]
    fn attributes_as_the_tokenizer_reads_them() {
        let tag = r#"<input TYPE=submit value = 'Send it' disabled aria-label="x">"#;
        let attrs = attributes(tag);
        let got: Vec<(&str, &str)> = attrs.iter().map(|a| (a.name, a.value)).collect();
        assert_eq!(
            got,
            [
                ("type", "submit"),
                ("value", "Send it"),
                ("disabled", ""),
                ("aria-label", "x")
            ]
        );
        assert_eq!(&tag[attrs[1].span.clone()], "'Send it'");
        assert_eq!(read_tag(b"<a href=\"x>y\">z"), Some((14, false)));
        assert_eq!(read_tag(b"<a href=\"x>y"), None);
        assert_eq!(read_tag(b"<a href = x>y"), Some((12, false)));
        assert_eq!(read_tag(b"<img src=a.png ALT=x/>"), Some((22, true)));
        assert_eq!(read_tag(b"<p class='a notranslate'>"), Some((25, true)));
        assert_eq!(read_tag(b"<p data-title=x class=note>"), Some((27, false)));
        assert_eq!(read_tag(b"<b hidden title>"), Some((16, true)));
        assert_eq!(read_tag(b"</p >"), Some((5, false)));
        assert_eq!(read_tag(b"<p class="), None);
        assert_eq!(find_end_tag(b"x</scriptx></SCRIPT>", "script"), Some(11));
        assert_eq!(find_end_tag(b"x</scr", "script"), None);
    }
}
