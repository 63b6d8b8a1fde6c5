//! The translation memory of one site and locale: `rules/<site>/translations/<locale>.po`.
//!
//! Owns: reading a PO file into source → translation lookups, and rejecting a malformed one with
//! `file:line:col` before anything is served from it.
//! The PO syntax is checked line by line here first, because the PO reader (polib) reports no
//! positions and assumes well-formed lines; only a file that passes goes to it.
//! Must never: serve a `fuzzy` entry unless the site allows it, or an empty translation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::segment::{escape_text, has_placeholder, words_of};

/// Why a PO file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{col}: {message}", file.display())]
pub struct PoError {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

type FastMap<V> = HashMap<String, V, foldhash::fast::RandomState>;

/// Source segments (with their optional `msgctxt`) and their translations, as served.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// Translations of sources without a context: what page text is looked up in, once per
    /// block of every page served, hence a fast hasher (the keys are the site's own text).
    plain: FastMap<String>,
    /// The plain entries without placeholders as page HTML: the source as a page writes it
    /// (escaped) → the translation as HTML. A run of text alone is looked up here by its bytes,
    /// before any decoding; a page that writes the text otherwise finds it in `plain`.
    html: HashMap<Box<[u8]>, Box<str>, foldhash::fast::RandomState>,
    /// Translations of sources with a `msgctxt`: context → source → translation.
    in_context: HashMap<String, FastMap<String>>,
    /// Every source served, sorted and each once: whether a run can still become one of them.
    sources: Vec<String>,
    /// Entries with a translation that is not served because it is marked fuzzy.
    fuzzy_skipped: usize,
    /// Entries without a translation yet.
    untranslated: usize,
    /// Per origin path named in the entries' `#:` references: (words served translated, words).
    pages: HashMap<String, (usize, usize)>,
}

/// How much of a site's known page text one memory translates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoverageSummary {
    /// Words of all pages, each page counted with every segment on it.
    pub words: usize,
    pub translated_words: usize,
    pub pages: usize,
    /// Pages whose coverage reaches the site's `min_coverage`.
    pub pages_covered: usize,
}

impl CoverageSummary {
    /// Share of the words translated, 0 when no page is known.
    pub fn share(&self) -> f64 {
        if self.words == 0 {
            0.0
        } else {
            self.translated_words as f64 / self.words as f64
        }
    }
}

impl Memory {
    /// Reads `path`. `serve_fuzzy` decides whether translations marked `fuzzy` (machine
    /// pre-fills not yet reviewed) are served.
    pub fn load(path: &Path, serve_fuzzy: bool) -> Result<Memory, PoError> {
        let text = std::fs::read_to_string(path).map_err(|e| PoError {
            file: path.to_owned(),
            line: 1,
            col: 1,
            message: format!("cannot read: {e}"),
        })?;
        Self::parse(path, &text, serve_fuzzy)
    }

    /// Parses PO text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str, serve_fuzzy: bool) -> Result<Memory, PoError> {
        let catalog = read_catalog(path, text)?;
        let mut memory = Memory::default();
        for m in catalog.messages() {
            let Ok(msgstr) = m.msgstr() else {
                // Plural forms name counts of something; page text has no use for them.
                continue;
            };
            let served = !msgstr.is_empty() && (serve_fuzzy || !m.is_fuzzy());
            if m.msgctxt().is_none() {
                // The extractor names the pages a segment is on: what each page's coverage is
                // counted from.
                let words = words_of(m.msgid());
                for page in m.source().split_whitespace() {
                    let (done, all) = memory.pages.entry(page.to_owned()).or_default();
                    *all += words;
                    *done += if served { words } else { 0 };
                }
            }
            if msgstr.is_empty() {
                memory.untranslated += 1;
            } else if !served {
                memory.fuzzy_skipped += 1;
            } else {
                let (source, translation) = (m.msgid().to_owned(), msgstr.to_owned());
                match m.msgctxt() {
                    Some(context) => {
                        memory
                            .in_context
                            .entry(context.to_owned())
                            .or_default()
                            .insert(source, translation);
                    }
                    None => {
                        memory.plain.insert(source, translation);
                    }
                }
            }
        }
        memory.html = memory
            .plain
            .iter()
            .filter(|(s, t)| !s.is_empty() && !has_placeholder(s) && !has_placeholder(t))
            .map(|(s, t)| (escape_text(s).into_bytes().into(), escape_text(t).into()))
            .collect();
        let with_context = memory.in_context.values().flat_map(FastMap::keys);
        memory.sources = memory.plain.keys().chain(with_context).cloned().collect();
        memory.sources.sort_unstable();
        memory.sources.dedup();
        Ok(memory)
    }

    /// The translation of `source` in `context` (a `msgctxt`), if the memory has one to serve.
    pub fn get(&self, context: Option<&str>, source: &str) -> Option<&str> {
        match context {
            None => self.plain.get(source),
            Some(context) => self.in_context.get(context)?.get(source),
        }
        .map(String::as_str)
    }

    /// The translation as HTML of a run of text alone that reads `html` (trimmed, as the page
    /// has it), for an entry without context.
    pub fn get_html(&self, html: &[u8]) -> Option<&str> {
        self.html.get(html).map(|t| &**t)
    }

    /// Whether some entry has `context` as its `msgctxt`.
    pub fn has_context(&self, context: &str) -> bool {
        self.in_context.contains_key(context)
    }

    /// Whether some source served begins with `partial`: a run of page text
    /// that cannot become one need not be held any longer.
    pub fn has_prefix(&self, partial: &str) -> bool {
        let at = self.sources.partition_point(|s| s.as_str() < partial);
        self.sources.get(at).is_some_and(|s| s.starts_with(partial))
    }

    /// Share of the words on the page at `origin_path` that are served translated, as the
    /// entries' `#:` references record it; `None` for a page no entry names (never extracted).
    pub fn coverage(&self, origin_path: &str) -> Option<f32> {
        let &(done, all) = self.pages.get(origin_path)?;
        Some(if all == 0 {
            1.0
        } else {
            done as f32 / all as f32
        })
    }

    /// Coverage over every page the entries name, pages counted at `min_coverage`.
    pub fn summary(&self, min_coverage: f32) -> CoverageSummary {
        let mut sum = CoverageSummary::default();
        for &(done, all) in self.pages.values() {
            sum.translated_words += done;
            sum.words += all;
            sum.pages += 1;
            sum.pages_covered += usize::from(all == 0 || done as f32 >= min_coverage * all as f32);
        }
        sum
    }

    /// Translations served.
    pub fn len(&self) -> usize {
        self.plain.len() + self.in_context.values().map(FastMap::len).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entries kept back because they are fuzzy.
    pub fn fuzzy_skipped(&self) -> usize {
        self.fuzzy_skipped
    }

    /// Entries with no translation yet.
    pub fn untranslated(&self) -> usize {
        self.untranslated
    }
}

/// Reads PO text into a catalog, after checking its syntax line by line.
pub(crate) fn read_catalog(path: &Path, text: &str) -> Result<polib::catalog::Catalog, PoError> {
    check_syntax(text).map_err(|(line, byte_col, message)| {
        // Columns count characters, so that Thai and Vietnamese text point at the right place.
        let text_line = text.lines().nth(line - 1).unwrap_or_default();
        let before = text_line.get(..byte_col - 1).unwrap_or(text_line);
        PoError {
            file: path.to_owned(),
            line,
            col: before.chars().count() + 1,
            message,
        }
    })?;
    polib::po_file::parse_from_reader(text.as_bytes()).map_err(|e| PoError {
        file: path.to_owned(),
        line: 1,
        col: 1,
        message: e.to_string(),
    })
}

/// Checks every line of a PO file: blank, a comment (`#`, `#.`, `#:`, `#,`, `#|`, `#~`), a
/// keyword with a quoted string, or a quoted continuation of the keyword above. The first
/// entry must be the header (`msgid ""`). Returns (line, byte column, message) of the first
/// fault, both 1-based.
fn check_syntax(text: &str) -> Result<(), (usize, usize, String)> {
    // Whether a keyword line has been seen since the last blank line or comment, i.e. whether
    // a continuation string has something to continue.
    let mut in_field = false;
    let mut first_msgid = true;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_end_matches('\r');
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if trimmed.is_empty() {
            in_field = false;
            continue;
        }
        if trimmed.starts_with('#') {
            in_field = false;
            continue;
        }
        let (keyword, rest) = match trimmed.find(|c: char| c.is_whitespace()) {
            _ if trimmed.starts_with('"') => ("", trimmed),
            Some(at) => (&trimmed[..at], trimmed[at..].trim_start()),
            None => (trimmed, ""),
        };
        let known = matches!(keyword, "msgctxt" | "msgid" | "msgid_plural" | "msgstr")
            || keyword
                .strip_prefix("msgstr[")
                .and_then(|k| k.strip_suffix(']'))
                .is_some_and(|n| n.len() == 1 && n.as_bytes()[0].is_ascii_digit());
        if keyword.is_empty() {
            if !in_field {
                return Err((
                    line_no,
                    indent + 1,
                    "string without a keyword before it".into(),
                ));
            }
        } else if !known {
            return Err((
                line_no,
                indent + 1,
                format!("unknown keyword {keyword:?} (expected msgctxt, msgid, msgstr)"),
            ));
        } else {
            in_field = true;
            if keyword == "msgid" {
                if first_msgid && rest != "\"\"" {
                    return Err((
                        line_no,
                        indent + 1,
                        "the first entry must be the header (msgid \"\")".into(),
                    ));
                }
                first_msgid = false;
            }
        }
        let col = indent + 1 + (trimmed.len() - rest.len());
        check_string(rest).map_err(|(offset, message)| (line_no, col + offset, message))?;
    }
    if first_msgid {
        return Err((1, 1, "no header entry (msgid \"\")".into()));
    }
    Ok(())
}

/// One C-style quoted string and nothing after it. Returns (offset, message) of a fault.
fn check_string(s: &str) -> Result<(), (usize, String)> {
    if !s.starts_with('"') {
        return Err((0, "expected a quoted string".into()));
    }
    let mut chars = s.char_indices().skip(1);
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                return if s[at + 1..].trim().is_empty() {
                    Ok(())
                } else {
                    Err((at + 1, "text after the closing quote".into()))
                };
            }
            '\\' => match chars.next() {
                Some((_, 'n' | 't' | 'r' | '"' | '\\' | 'a' | 'b' | 'f' | 'v')) => {}
                Some((_, other)) => {
                    return Err((at, format!("unknown escape \\{other}")));
                }
                None => return Err((at, "line ends inside an escape".into())),
            },
            _ => {}
        }
    }
    Err((s.len(), "missing closing quote".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "msgid \"\"\nmsgstr \"\"\n\"Content-Type: text/plain; charset=UTF-8\\n\"\n\n";

    fn parse(body: &str, fuzzy: bool) -> Result<Memory, PoError> {
        Memory::parse(Path::new("id.po"), &format!("{HEADER}{body}"), fuzzy)
    }

    #[test]
    fn translations_contexts_and_fuzzy() {
        let po = "msgid \"Add to cart\"\nmsgstr \"Tambah ke keranjang\"\n\n\
                  msgctxt \"menu\"\nmsgid \"Order\"\nmsgstr \"Pesan\"\n\n\
                  msgid \"Order\"\nmsgstr \"Pesanan\"\n\n\
                  #, fuzzy\nmsgid \"Ships in <1>7 days</1>\"\nmsgstr \"Dikirim dalam <1>7 hari</1>\"\n\n\
                  msgid \"Warranty\"\nmsgstr \"\"\n\n\
                  msgid \"\"\n\"Long \"\n\"text\"\nmsgstr \"Teks \"\n\"panjang\"\n";
        let m = parse(po, false).unwrap();
        assert_eq!(m.get(None, "Add to cart"), Some("Tambah ke keranjang"));
        assert_eq!(m.get(Some("menu"), "Order"), Some("Pesan"));
        assert_eq!(m.get(None, "Order"), Some("Pesanan"));
        assert_eq!(m.get(None, "Ships in <1>7 days</1>"), None);
        assert_eq!(m.get(None, "Warranty"), None);
        assert_eq!(m.get(None, "Long text"), Some("Teks panjang"));
        assert_eq!((m.fuzzy_skipped(), m.untranslated()), (1, 1));
        assert!(m.has_prefix("Add to c") && m.has_prefix("Long text") && m.has_prefix(""));
        assert!(!m.has_prefix("Add to basket") && !m.has_prefix("Ships in"));
        let served = parse(po, true).unwrap();
        assert_eq!(
            served.get(None, "Ships in <1>7 days</1>"),
            Some("Dikirim dalam <1>7 hari</1>")
        );
    }

    #[test]
    fn coverage_per_page_from_the_references() {
        let po = "#: / /faq\nmsgid \"Free shipping over fifty\"\nmsgstr \"Gratis ongkir di atas lima puluh\"\n\n\
                  #: /faq\nmsgid \"Ask us anything\"\nmsgstr \"\"\n\n\
                  #: /faq\n#, fuzzy\nmsgid \"Warranty terms\"\nmsgstr \"Syarat garansi\"\n\n\
                  #: /faq\nmsgid \"SKU AF-450\"\nmsgstr \"\"\n";
        let m = parse(po, false).unwrap();
        assert_eq!(m.coverage("/"), Some(1.0));
        // 4 of 4 + 3 + 2 words ("SKU AF-450" has one word, "SKU", untranslated).
        assert_eq!(m.coverage("/faq"), Some(4.0 / 10.0));
        assert_eq!(m.coverage("/about"), None);
        assert_eq!(parse(po, true).unwrap().coverage("/faq"), Some(6.0 / 10.0));
        let sum = m.summary(0.8);
        assert_eq!(
            (
                sum.translated_words,
                sum.words,
                sum.pages_covered,
                sum.pages
            ),
            (8, 14, 1, 2)
        );
        assert_eq!(m.summary(0.4).pages_covered, 2);
    }

    #[test]
    fn malformed_files_are_rejected_with_their_position() {
        let cases = [
            ("msgid \"a\"\nmsgstr \"b\n", 6, 10, "missing closing quote"),
            ("msgid \"a\"\nmsgstring \"b\"\n", 6, 1, "unknown keyword"),
            (
                "msgid \"a\"\nmsgstr \"b\" x\n",
                6,
                11,
                "after the closing quote",
            ),
            ("msgid \"a\"\nmsgstr \"b\\q\"\n", 6, 10, "unknown escape"),
            ("\n\"orphan\"\n", 6, 1, "without a keyword"),
            ("msgid \"a\"\nmsgstr\n", 6, 7, "expected a quoted string"),
        ];
        for (body, line, col, what) in cases {
            let e = parse(body, false).unwrap_err();
            assert_eq!((e.line, e.col), (line, col), "{body:?}: {e}");
            assert!(
                e.to_string().starts_with(&format!("id.po:{line}:{col}: ")),
                "{e}"
            );
            assert!(e.message.contains(what), "{body:?}: {e}");
        }
        let no_header = Memory::parse(Path::new("th.po"), "msgid \"a\"\nmsgstr \"b\"\n", false);
        assert!(no_header.unwrap_err().message.contains("header"));
    }
}
