//! Segments: the unit a translator translates and the memory is keyed by.
//!
//! Owns: turning a run of inline HTML (text plus inline elements such as `a`, `strong`, `br`)
//! into a source string with numbered placeholders (`Ships in <1>7 days</1>`, `Line<1/>break`),
//! deciding whether that string is worth translating, and rebuilding HTML from a translation
//! that may reorder the placeholders.
//! Must never: emit a translation whose placeholders do not match the source's (the original
//! markup would be lost or duplicated), or change the original HTML of a run left untranslated.

use std::fmt::Write as _;
use std::ops::Range;

/// A run of inline HTML being collected as the page streams by.
#[derive(Debug, Default, Clone)]
pub struct SegmentBuilder {
    /// The run exactly as the origin sent it.
    raw: String,
    /// Decoded text with placeholders, whitespace not yet normalised.
    source: String,
    /// Text since the last tag, still encoded: an entity may arrive split over two chunks.
    pending: String,
    /// Per placeholder number - 1: the original start tag, and its end tag once seen.
    tags: Vec<Tag>,
    /// Placeholders opened and not yet closed (index, element key), innermost last.
    open: Vec<(usize, u64)>,
    /// The segment `end` built.
    done: Segment,
}

impl SegmentBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Text as it appears in the HTML source (entities not yet decoded).
    pub fn text(&mut self, html: &str) {
        self.raw.push_str(html);
        self.pending.push_str(html);
    }

    /// Markup that is neither text nor an element (a comment): kept when the run is left
    /// untranslated, dropped from a translation.
    pub fn other(&mut self, html: &str) {
        self.decode_pending();
        self.raw.push_str(html);
    }

    fn decode_pending(&mut self) {
        if memchr::memchr(b'&', self.pending.as_bytes()).is_none() {
            self.source.push_str(&self.pending);
        } else {
            html_escape::decode_html_entities_to_string(&self.pending, &mut self.source);
        }
        self.pending.clear();
    }

    /// Appends `html` to the run, returning where it lies in it.
    fn push_raw(&mut self, html: &str) -> Range<usize> {
        self.raw.push_str(html);
        self.raw.len() - html.len()..self.raw.len()
    }

    /// An inline element's start tag (`<a href="/x">`); `key` names the element so that its end
    /// tag can be matched (`close`).
    pub fn open(&mut self, start_tag: &str, key: u64) {
        self.decode_pending();
        let start = self.push_raw(start_tag);
        self.tags.push((start, None));
        let n = self.tags.len();
        self.open.push((n - 1, key));
        push_placeholder(&mut self.source, n, Kind::Open);
    }

    /// The end tag of the element `key`, if it is the innermost one open in this run. Returns
    /// false otherwise (its start tag went out with an earlier run): the caller writes it.
    pub fn close(&mut self, end_tag: &str, key: u64) -> bool {
        match self.open.last() {
            Some(&(i, k)) if k == key => {
                self.decode_pending();
                self.open.pop();
                self.tags[i].1 = Some(self.push_raw(end_tag));
                push_placeholder(&mut self.source, i + 1, Kind::Close);
                true
            }
            _ => false,
        }
    }

    /// A void element (`<br>`, `<img …>`) or an opaque inline fragment (`<code>…</code>`) that
    /// the translation carries as one placeholder.
    pub fn void(&mut self, html: &str) {
        self.decode_pending();
        let tag = self.push_raw(html);
        // An empty end marks a void element.
        self.tags.push((tag, Some(0..0)));
        push_placeholder(&mut self.source, self.tags.len(), Kind::Void);
    }

    /// The forms the source so far may take once the run ends, as `Segment::source` would
    /// begin: as it stands, and without each element open from the start (which `finish` takes
    /// out when it closes at the end). `None` while an entity may be incomplete.
    pub fn partials(&self) -> Option<Vec<String>> {
        if let Some(amp) = self.pending.rfind('&')
            && !self.pending[amp..].contains(';')
            && self.pending.len() - amp < 40
        {
            return None;
        }
        let decoded = decode_entities(&self.pending);
        let mut partial = normalize_space(&format!("{}{decoded}", self.source));
        let mut forms = Vec::with_capacity(2);
        // Only an element still open, or closing right at the end, can turn out to wrap the run.
        while let Some(rest) = partial.strip_prefix("<1>")
            && rest.find("</1>").is_none_or(|at| at + 4 == rest.len())
        {
            let inner = rest.strip_suffix("</1>").unwrap_or(rest).trim();
            let unwrapped = renumber_down(inner);
            forms.push(std::mem::replace(&mut partial, unwrapped));
        }
        forms.push(partial);
        Some(forms)
    }

    /// Bytes held so far: the caller gives up on a run that grows past its limit.
    pub fn held(&self) -> usize {
        self.raw.len()
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Ends the run: the segment, with whitespace normalised, and the run's original HTML.
    pub fn finish(mut self) -> Segment {
        self.end();
        self.done
    }

    /// `finish` for a builder used run after run: the segment is built in buffers kept from
    /// the runs before, and `clear` starts the next run.
    pub fn end(&mut self) -> &Segment {
        self.decode_pending();
        let done = &mut self.done;
        done.source.clear();
        normalize_space_into(&self.source, &mut done.source);
        done.lead.clear();
        done.lead.push_str(leading_space(&self.raw));
        done.trail.clear();
        done.trail.push_str(trailing_space(&self.raw));
        std::mem::swap(&mut done.raw, &mut self.raw);
        std::mem::swap(&mut done.tags, &mut self.tags);
        // An element around the whole run (a link, a bold line) is no part of the sentence: the
        // translator sees "Home", not "<1>Home</1>", and the tags stay around the translation.
        while done.source.len() >= 7
            && done.source.starts_with("<1>")
            && done.source.find("</1>") == Some(done.source.len() - 4)
            && done
                .tags
                .first()
                .is_some_and(|(_, end)| end.as_ref().is_some_and(|e| !e.is_empty()))
        {
            let (start, end) = done.tags.remove(0);
            done.lead.push_str(&done.raw[start]);
            done.trail
                .insert_str(0, end.map_or("", |end| &done.raw[end]));
            done.source = renumber_down(done.source[3..done.source.len() - 4].trim());
        }
        &self.done
    }

    /// Empties the builder for the next run, keeping its buffers.
    pub fn clear(&mut self) {
        self.raw.clear();
        self.source.clear();
        self.pending.clear();
        self.tags.clear();
        self.open.clear();
    }
}

/// `source` with every placeholder number one lower.
fn renumber_down(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(((text, (n, kind)), after)) = next_placeholder(rest) {
        out.push_str(text);
        // Callers only renumber text whose placeholder 1 was taken out; 0 cannot occur.
        push_placeholder(&mut out, n.saturating_sub(1), kind);
        rest = after;
    }
    out.push_str(rest);
    out
}

/// Appends placeholder `n` (`<n>`, `</n>` or `<n/>`). Runs rarely hold ten elements, whose
/// numbers are written without the formatter.
fn push_placeholder(out: &mut String, n: usize, kind: Kind) {
    out.push_str(if kind == Kind::Close { "</" } else { "<" });
    match u8::try_from(n) {
        Ok(digit @ 0..=9) => out.push(char::from(b'0' + digit)),
        _ => write!(out, "{n}").expect("writing to a String"),
    }
    out.push_str(if kind == Kind::Void { "/>" } else { ">" });
}

/// A finished run of inline HTML.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Segment {
    /// What the memory is keyed by: decoded text, placeholders, single spaces, trimmed.
    pub source: String,
    /// The run exactly as the origin sent it.
    pub raw: String,
    lead: String,
    trail: String,
    tags: Vec<Tag>,
}

/// Where an element's start tag lies in the run's HTML, and its end tag once seen (empty for
/// a void element).
type Tag = (Range<usize>, Option<Range<usize>>);

impl Segment {
    /// Whether a translator has anything to translate: some words outside the placeholders,
    /// not just a price, a number with its unit, a code, an email or a URL.
    pub fn is_translatable(&self) -> bool {
        self.words() > 0
    }

    /// Words a reader would count in the source, placeholders, numbers and codes left out.
    pub fn words(&self) -> usize {
        words_of(&self.source)
    }

    /// HTML for `translation` (the memory's text for `source`), keeping the run's outer
    /// whitespace and original tags; `None` when its placeholders do not match the source's.
    pub fn render(&self, translation: &str) -> Option<String> {
        let mut out = String::with_capacity(self.raw.len() + translation.len());
        self.render_into(translation, &mut out).then_some(out)
    }

    /// `render`, appended to `out`; false, with `out` left as it was, when the placeholders do
    /// not match.
    pub fn render_into(&self, translation: &str, out: &mut String) -> bool {
        let before = out.len();
        let done = self.render_parts(translation, out).is_some();
        if !done {
            out.truncate(before);
        }
        done
    }

    fn render_parts(&self, translation: &str, out: &mut String) -> Option<()> {
        out.push_str(&self.lead);
        let mut used = vec![(false, false); self.tags.len()];
        let mut open: Vec<usize> = Vec::new();
        let mut rest = translation;
        while let Some(((text, placeholder), after)) = next_placeholder(rest) {
            push_escaped(out, text);
            let (n, kind) = placeholder;
            let i = n.checked_sub(1).filter(|&i| i < self.tags.len())?;
            let (start, end) = &self.tags[i];
            let void = end.as_ref().is_some_and(Range::is_empty);
            let (start, end) = (&self.raw[start.clone()], end.clone().map(|e| &self.raw[e]));
            match kind {
                Kind::Void if void && !used[i].0 => {
                    out.push_str(start);
                    used[i] = (true, true);
                }
                Kind::Open if !void && !used[i].0 => {
                    out.push_str(start);
                    used[i].0 = true;
                    open.push(i);
                }
                Kind::Close if open.last() == Some(&i) => {
                    out.push_str(end.unwrap_or_default());
                    used[i].1 = true;
                    open.pop();
                }
                _ => return None,
            }
            rest = after;
        }
        push_escaped(out, rest);
        // Every placeholder of the source exactly once, every pair closed. A start tag whose end
        // never came (the origin left it open) is closed nowhere, as in the source.
        let complete = used
            .iter()
            .zip(&self.tags)
            .all(|(&(o, c), (_, end))| o && (c || end.is_none()));
        if !complete || open.iter().any(|&i| self.tags[i].1.is_some()) {
            return None;
        }
        out.push_str(&self.trail);
        Some(())
    }
}

/// Appends to `out` the HTML for `translation` of a run of text alone (`raw`, as the page has
/// it): the run's outer whitespace around the escaped translation, as `Segment::render` gives
/// it. False, and nothing appended, when the translation has placeholders, which such a run
/// cannot fill.
pub fn render_plain_into(raw: &str, translation: &str, out: &mut String) -> bool {
    if has_placeholder(translation) {
        return false;
    }
    out.push_str(leading_space(raw));
    push_escaped(out, translation);
    out.push_str(trailing_space(raw));
    true
}

/// Whether trimmed text has its spaces in normal form already: white space only as single
/// spaces.
fn is_normal(text: &str) -> bool {
    let mut after_space = false;
    text.chars().all(|c| {
        let space = c == ' ';
        let normal = if space {
            !after_space
        } else {
            !c.is_whitespace()
        };
        after_space = space;
        normal
    })
}

/// `text` escaped as HTML text, as a translation is written into a page.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    push_escaped(&mut out, text);
    out
}

/// Whether `text` holds a placeholder (`<1>`, `</1>`, `<1/>`).
pub fn has_placeholder(text: &str) -> bool {
    next_placeholder(text).is_some()
}

/// Appends `text` escaped as HTML text (`&`, `<`, `>`). Most text has none of them, and is
/// copied without a look at each character.
fn push_escaped(out: &mut String, text: &str) {
    if memchr::memchr3(b'&', b'<', b'>', text.as_bytes()).is_none() {
        out.push_str(text);
    } else {
        html_escape::encode_text_to_string(text, out);
    }
}

/// `text` with its character references decoded; borrowed when it has none (most text).
pub fn decode_entities(text: &str) -> std::borrow::Cow<'_, str> {
    if memchr::memchr(b'&', text.as_bytes()).is_none() {
        std::borrow::Cow::Borrowed(text)
    } else {
        html_escape::decode_html_entities(text)
    }
}

/// Words a reader would count in a segment source, placeholders, numbers and codes left out.
pub fn words_of(source: &str) -> usize {
    let mut words = 0;
    let mut rest = source;
    while let Some(((text, _), after)) = next_placeholder(rest) {
        words += text.split_whitespace().filter(|t| is_wordlike(t)).count();
        rest = after;
    }
    words + rest.split_whitespace().filter(|t| is_wordlike(t)).count()
}

/// Whether `translation` has exactly the placeholders of `source` (in any order): what a
/// translation must keep to be rendered back into the page's markup.
pub fn same_placeholders(source: &str, translation: &str) -> bool {
    fn all(mut s: &str) -> Vec<Placeholder> {
        let mut found = Vec::new();
        while let Some(((_, p), after)) = next_placeholder(s) {
            found.push(p);
            s = after;
        }
        found.sort_unstable_by_key(|&(n, kind)| (n, kind as u8));
        found
    }
    all(source) == all(translation)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Open,
    Close,
    Void,
}

type Placeholder = (usize, Kind);

/// Splits `s` at its first placeholder: ((text before, placeholder), rest after).
fn next_placeholder(s: &str) -> Option<((&str, Placeholder), &str)> {
    let mut from = 0;
    while let Some(at) = memchr::memchr(b'<', &s.as_bytes()[from..]).map(|i| i + from) {
        if let Some((p, len)) = parse_placeholder(&s[at..]) {
            return Some(((&s[..at], p), &s[at + len..]));
        }
        from = at + 1;
    }
    None
}

/// `<12>`, `</12>` or `<12/>` at the start of `s`, with its length.
fn parse_placeholder(s: &str) -> Option<(Placeholder, usize)> {
    let body = s.strip_prefix('<')?;
    let (closing, body) = match body.strip_prefix('/') {
        Some(b) => (true, b),
        None => (false, body),
    };
    let digits = body.bytes().take_while(u8::is_ascii_digit).count();
    let n: usize = body[..digits].parse().ok()?;
    let after = &body[digits..];
    let (kind, tail) = if let Some(t) = after.strip_prefix("/>") {
        (Kind::Void, t)
    } else {
        (
            if closing { Kind::Close } else { Kind::Open },
            after.strip_prefix('>')?,
        )
    };
    if closing && kind == Kind::Void {
        return None;
    }
    Some(((n, kind), s.len() - tail.len()))
}

/// A token a reader would call a word: two letters or more, and not a currency, a URL, an
/// email, a code mixing digits and letters (`AF-450`, `M8x20`) or a number with its unit
/// (`1500W`, `4.5L`).
fn is_wordlike(token: &str) -> bool {
    const CURRENCIES: &[&str] = &["rp", "idr", "vnd", "thb", "usd", "us$", "rmb", "cny", "eur"];
    let letters = token.chars().filter(|c| c.is_alphabetic()).count();
    let digits = token.chars().filter(|c| c.is_ascii_digit()).count();
    letters > 1
        && digits == 0
        && !CURRENCIES.iter().any(|c| c.eq_ignore_ascii_case(token))
        && !token.contains('@')
        && !token.contains("://")
        && !token.starts_with("www.")
}

/// `s` with runs of whitespace as single spaces, trimmed. Whitespace is Unicode's, looked up
/// only for non-ASCII characters: page text is mostly ASCII, and this runs on all of it.
fn normalize_space(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    normalize_space_into(s, &mut out);
    out
}

/// `normalize_space`, appended to `out`.
pub fn normalize_space_into(s: &str, out: &mut String) {
    let start_len = out.len();
    // Text already in its normal form (the common case) is copied once.
    let trimmed = s.trim();
    if is_normal(trimmed) {
        out.push_str(trimmed);
        return;
    }
    let bytes = s.as_bytes();
    let mut word: Option<usize> = None;
    let mut i = 0;
    while i < bytes.len() {
        let (space, len) = match bytes[i] {
            b if b < 0x80 => (b.is_ascii_whitespace() || b == 0x0b, 1),
            _ => {
                let c = s[i..].chars().next().unwrap_or(' ');
                (c.is_whitespace(), c.len_utf8())
            }
        };
        match (space, word) {
            (true, Some(start)) => {
                if out.len() > start_len {
                    out.push(' ');
                }
                out.push_str(&s[start..i]);
                word = None;
            }
            (false, None) => word = Some(i),
            _ => {}
        }
        i += len;
    }
    if let Some(start) = word {
        if out.len() > start_len {
            out.push(' ');
        }
        out.push_str(&s[start..]);
    }
}

fn leading_space(s: &str) -> &str {
    &s[..s.len() - s.trim_start().len()]
}

fn trailing_space(s: &str) -> &str {
    &s[s.trim_end().len()..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_white_space_character_is_read_as_a_space_and_no_other() {
        // The normal-form check and the normalising pass must agree with `char::is_whitespace`
        // on every character up to the ideographic space, the last white space there is.
        for c in (0..=0x3000).filter_map(char::from_u32) {
            let text = format!("a{c}b");
            let want = if c.is_whitespace() { "a b" } else { &text };
            assert_eq!(normalize_space(&text), want, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn whitespace_normalises_the_same_on_every_path() {
        // Words joined by single spaces, whatever whitespace (ASCII, vertical tab, non-breaking
        // or ideographic space) separated them, with or without the text already normal.
        let cases = [
            ("", ""),
            ("   ", ""),
            ("Add to cart", "Add to cart"),
            ("  Add to cart ", "Add to cart"),
            ("Add  to\ncart", "Add to cart"),
            ("\tAdd\r\nto \x0ccart\x0b", "Add to cart"),
            ("\x0bAdd", "Add"),
            ("Tambah\u{a0} ke\u{3000}keranjang", "Tambah ke keranjang"),
            ("  Giá sỉ  ", "Giá sỉ"),
        ];
        for (text, want) in cases {
            assert_eq!(normalize_space(text), want, "{text:?}");
            let mut out = String::from("x");
            normalize_space_into(text, &mut out);
            let joined = if want.is_empty() {
                "x".to_string()
            } else {
                format!("x{want}")
            };
            assert_eq!(out, joined, "appended {text:?}");
        }
    }

    #[test]
    fn escaping_and_entities_as_html_escape_gives_them() {
        for text in ["plain text", "a < b & c > d", "&amp; &lt;", "Rp 1.000"] {
            let mut out = String::new();
            push_escaped(&mut out, text);
            assert_eq!(out, html_escape::encode_text(text));
            assert_eq!(
                decode_entities(text),
                html_escape::decode_html_entities(text)
            );
        }
    }

    fn ships() -> Segment {
        let mut b = SegmentBuilder::new();
        b.text("\n  Ships in ");
        b.open("<strong class=\"d\">", 1);
        b.text("7&nbsp;days");
        assert!(b.close("</strong>", 1));
        b.text(" from ");
        b.open("<a href=\"/contact\">", 2);
        b.text("Foshan &amp; Ningbo");
        assert!(!b.close("</strong>", 1));
        assert!(b.close("</a>", 2));
        b.void("<br>");
        b.text("  ");
        b.finish()
    }

    #[test]
    fn inline_markup_becomes_numbered_placeholders() {
        let s = ships();
        assert_eq!(
            s.source,
            "Ships in <1>7 days</1> from <2>Foshan & Ningbo</2><3/>"
        );
        assert!(s.is_translatable());
        assert_eq!(
            s.raw,
            "\n  Ships in <strong class=\"d\">7&nbsp;days</strong> from <a href=\"/contact\">Foshan &amp; Ningbo</a><br>  "
        );
    }

    #[test]
    fn translations_may_reorder_placeholders() {
        let s = ships();
        let html = s
            .render("Dari <2>Foshan & Ningbo</2>, dikirim dalam <1>7 hari</1><3/>")
            .unwrap();
        assert_eq!(
            html,
            "\n  Dari <a href=\"/contact\">Foshan &amp; Ningbo</a>, dikirim dalam <strong class=\"d\">7 hari</strong><br>  "
        );
    }

    #[test]
    fn mismatched_placeholders_are_refused() {
        let s = ships();
        for bad in [
            "Dikirim dalam 7 hari",                        // placeholders dropped
            "Dikirim <1>7 hari</1> dari <2>Foshan</2>",    // <3/> missing
            "Dikirim <1>7 hari</1> <2>a</2><3/><3/>",      // one used twice
            "Dikirim <1>7 hari <2>Foshan</1></2><3/>",     // pairs cross
            "Dikirim <1>7 hari</1> <2>Foshan</2><4/><3/>", // unknown number
            "Dikirim <3>7 hari</3> <2>Foshan</2><1/>",     // pair used as void
        ] {
            assert_eq!(s.render(bad), None, "{bad}");
        }
    }

    #[test]
    fn entities_split_over_chunks_and_comments() {
        let mut b = SegmentBuilder::new();
        b.text("Foshan &a");
        b.text("mp; Ningbo ");
        b.other("<!-- x -->");
        b.text("ok");
        let s = b.finish();
        assert_eq!(s.source, "Foshan & Ningbo ok");
        assert_eq!(s.raw, "Foshan &amp; Ningbo <!-- x -->ok");
    }

    #[test]
    fn partial_source_waits_for_entities() {
        let mut b = SegmentBuilder::new();
        b.text("  Foshan &a");
        assert_eq!(b.partials(), None);
        b.text("mp;  Ning");
        assert_eq!(b.partials().unwrap(), ["Foshan & Ning"]);
        b.open("<b>", 1);
        assert_eq!(b.partials().unwrap(), ["Foshan & Ning<1>"]);
        let mut b = SegmentBuilder::new();
        b.open("<a>", 1);
        b.open("<b>", 2);
        b.text(" Digital <");
        b.void("<br>");
        assert_eq!(
            b.partials().unwrap(),
            ["<1><2> Digital <<3/>", "<1> Digital <<2/>", "Digital <<1/>"]
        );
        assert!(b.close("</b>", 2));
        assert_eq!(b.partials().unwrap().last().unwrap(), "Digital <<1/>");
        b.text("x");
        assert_eq!(
            b.partials().unwrap().last().unwrap(),
            "<1> Digital <<2/></1>x"
        );
    }

    #[test]
    fn an_element_around_the_whole_run_stays_outside_the_source() {
        let mut b = SegmentBuilder::new();
        b.text(" ");
        b.open("<a href=\"/\">", 1);
        b.open("<b>", 2);
        b.text("Home ");
        b.void("<img src=\"h.svg\">");
        assert!(b.close("</b>", 2));
        assert!(b.close("</a>", 1));
        let s = b.finish();
        assert_eq!(s.source, "Home <1/>");
        assert_eq!(
            s.render("Beranda <1/>").unwrap(),
            " <a href=\"/\"><b>Beranda <img src=\"h.svg\"></b></a>"
        );
        let mut b = SegmentBuilder::new();
        b.open("<b>", 1);
        b.text("New");
        assert!(b.close("</b>", 1));
        b.text(" arrivals");
        assert_eq!(b.finish().source, "<1>New</1> arrivals");
        // An element still open when the run ends (a block came inside it).
        let mut b = SegmentBuilder::new();
        b.open("<a href=\"/\">", 1);
        assert_eq!(b.finish().source, "<1>");
    }

    #[test]
    fn literal_angle_brackets_in_text_are_text() {
        let mut b = SegmentBuilder::new();
        b.text("Power &lt;2 kW");
        let s = b.finish();
        assert_eq!(s.source, "Power <2 kW");
        assert_eq!(s.render("Daya <2 kW").unwrap(), "Daya &lt;2 kW");
    }

    #[test]
    fn prices_codes_numbers_and_addresses_are_not_translated() {
        for text in [
            "Rp 1.250.000",
            "AF-450",
            "1500W 4.5L",
            "sales@lianhe.example",
            "https://lianhe.example/x",
            "  ",
            "© 2026",
        ] {
            let mut b = SegmentBuilder::new();
            b.text(text);
            assert!(!b.finish().is_translatable(), "{text}");
        }
        let mut b = SegmentBuilder::new();
        b.text("Air fryer AF-450, 1500W");
        assert!(b.finish().is_translatable());
    }
}
