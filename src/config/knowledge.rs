//! The regulatory knowledge base the chat answers import questions from: the entries shipped in
//! `src/chat/base/regulations.toml` and a site's own `chat/regulations.toml`, in the same format.
//! A site's entry with a shipped entry's id replaces it, so an operator can correct or extend the
//! guidance without waiting for a release.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use super::diag::{Diagnostic, SourceFile};
use super::raw::{RawAnswer, RawRegulations};
use crate::locale::Locale;

/// The market a rule applies to; `Asean` entries (the ASEAN–China certificate of origin, HS
/// codes in general) apply to all three.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Market {
    Id,
    Vn,
    Th,
    Asean,
}

impl Market {
    pub fn parse(code: &str) -> Option<Market> {
        Some(match code {
            "ID" => Market::Id,
            "VN" => Market::Vn,
            "TH" => Market::Th,
            "ASEAN" => Market::Asean,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Market::Id => "ID",
            Market::Vn => "VN",
            Market::Th => "TH",
            Market::Asean => "ASEAN",
        }
    }
}

/// One piece of regulatory guidance, in the four languages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegEntry {
    pub id: String,
    pub market: Market,
    pub authority: String,
    pub topic: String,
    /// Product categories it concerns, lowercase English.
    pub categories: Vec<String>,
    /// Two-digit HS chapters it concerns; empty when it applies to all goods.
    pub hs_chapters: Vec<String>,
    /// Words buyers use for it, in any language.
    pub keywords: Vec<String>,
    /// The official source, by name.
    pub source: String,
    /// When it was last checked against its source, `YYYY-MM`.
    pub reviewed: String,
    /// The guidance, indexed by `Locale`.
    pub text: [String; 4],
}

const BASE: (&str, &str) = (
    "src/chat/base/regulations.toml",
    include_str!("../chat/base/regulations.toml"),
);

static BASE_ENTRIES: LazyLock<Result<Vec<Arc<RegEntry>>, Vec<Diagnostic>>> = LazyLock::new(|| {
    let mut diags = Vec::new();
    let entries = parse(&SourceFile::new(BASE.0, BASE.1.into()), &mut diags);
    if diags.is_empty() {
        Ok(entries.into_iter().map(Arc::new).collect())
    } else {
        Err(diags)
    }
});

/// The shipped entries, parsed once per process; a broken file is reported like a broken rule
/// file (a test keeps it from shipping).
pub fn base_regulations() -> Result<&'static [Arc<RegEntry>], &'static [Diagnostic]> {
    BASE_ENTRIES
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Vec::as_slice)
}

/// The knowledge base a site answers from: the shipped entries (unless `base` is empty), with
/// the site's own replacing those of the same id and adding the rest.
pub fn merge(base: &[Arc<RegEntry>], site: Vec<RegEntry>) -> Vec<Arc<RegEntry>> {
    let own: HashSet<String> = site.iter().map(|e| e.id.clone()).collect();
    base.iter()
        .filter(|e| !own.contains(&e.id))
        .cloned()
        .chain(site.into_iter().map(Arc::new))
        .collect()
}

/// Reads a regulations file into entries, reporting every problem with its line and column.
pub fn parse(src: &SourceFile, diags: &mut Vec<Diagnostic>) -> Vec<RegEntry> {
    let raw: RawRegulations = match toml::from_str(&src.text) {
        Ok(r) => r,
        Err(e) => {
            diags.push(src.diagnostic(e.span().unwrap_or(0..0), e.message().trim().to_string()));
            return Vec::new();
        }
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for entry in raw.entry {
        let e = entry.into_inner();
        let before = diags.len();
        let mut err = |span: std::ops::Range<usize>, message: String| {
            diags.push(src.diagnostic(span, message));
        };
        let id = e.id.get_ref().clone();
        let id_ok = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !id_ok {
            err(
                e.id.span(),
                format!("entry id `{id}` must be lowercase letters, digits and `-`"),
            );
        } else if !seen.insert(id.clone()) {
            err(e.id.span(), format!("entry id `{id}` is used twice"));
        }
        let market = Market::parse(e.market.get_ref());
        if market.is_none() {
            err(
                e.market.span(),
                format!(
                    "[{id}] unknown market `{}`; known: ID, VN, TH, ASEAN",
                    e.market.get_ref()
                ),
            );
        }
        for chapter in &e.hs_chapters {
            let c = chapter.get_ref();
            if c.len() != 2 || !c.bytes().all(|b| b.is_ascii_digit()) {
                err(
                    chapter.span(),
                    format!("[{id}] HS chapter `{c}` must be two digits"),
                );
            }
        }
        let reviewed = e.reviewed.get_ref();
        let month_ok = reviewed.len() == 7
            && reviewed.as_bytes()[4] == b'-'
            && reviewed[..4].bytes().all(|b| b.is_ascii_digit())
            && matches!(reviewed[5..].parse::<u8>(), Ok(1..=12));
        if !month_ok {
            err(
                e.reviewed.span(),
                format!("[{id}] reviewed `{reviewed}` must be a month, YYYY-MM"),
            );
        }
        for (name, value) in [
            ("authority", &e.authority),
            ("topic", &e.topic),
            ("source", &e.source),
        ] {
            if value.get_ref().trim().is_empty() {
                err(value.span(), format!("[{id}] `{name}` is empty"));
            }
        }
        let at = e.text.span();
        let RawAnswer {
            en,
            id: ind,
            vi,
            th,
        } = e.text.into_inner();
        let mut text: [String; 4] = Default::default();
        for (locale, t) in Locale::ALL.into_iter().zip([en, ind, vi, th]) {
            match t {
                Some(t) if !t.get_ref().trim().is_empty() => {
                    text[locale as usize] = t.into_inner();
                }
                Some(t) => err(
                    t.span(),
                    format!("[{id}] the `{}` text is empty", locale.code()),
                ),
                None => err(
                    at.clone(),
                    format!("[{id}] needs a `{}` text", locale.code()),
                ),
            }
        }
        if diags.len() > before {
            continue;
        }
        out.push(RegEntry {
            id,
            market: market.unwrap_or(Market::Asean),
            authority: e.authority.into_inner(),
            topic: e.topic.into_inner(),
            // Matched against the product categories' names, which are lowercase.
            categories: e.categories.iter().map(|c| c.to_lowercase()).collect(),
            hs_chapters: e.hs_chapters.into_iter().map(|c| c.into_inner()).collect(),
            keywords: e.keywords,
            source: e.source.into_inner(),
            reviewed: e.reviewed.into_inner(),
            text,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_knowledge_base_parses() {
        let entries = base_regulations().unwrap_or_else(|d| panic!("{}", d[0]));
        assert!(entries.len() >= 60, "{} entries", entries.len());
        for market in [Market::Id, Market::Vn, Market::Th, Market::Asean] {
            assert!(entries.iter().any(|e| e.market == market));
        }
    }

    #[test]
    fn errors_point_at_the_value() {
        let text = r#"
[[entry]]
id = "id-test"
market = "MY"
authority = "BPOM"
topic = "t"
hs_chapters = ["330"]
source = "s"
reviewed = "2026-13"
[entry.text]
en = "e"
id = "i"
vi = ""
"#;
        let mut diags = Vec::new();
        let entries = parse(&SourceFile::new("r.toml", text.into()), &mut diags);
        assert!(entries.is_empty());
        let got: Vec<String> = diags.iter().map(ToString::to_string).collect();
        assert_eq!(
            got,
            [
                "r.toml:4:10: [id-test] unknown market `MY`; known: ID, VN, TH, ASEAN",
                "r.toml:7:16: [id-test] HS chapter `330` must be two digits",
                "r.toml:9:12: [id-test] reviewed `2026-13` must be a month, YYYY-MM",
                "r.toml:13:6: [id-test] the `vi` text is empty",
                "r.toml:10:1: [id-test] needs a `th` text",
            ]
        );
    }

    #[test]
    fn a_site_entry_replaces_the_shipped_one_of_its_id() {
        let base = base_regulations().unwrap();
        let mut own = (*base[0]).clone();
        own.text[0] = "corrected".into();
        let merged = merge(base, vec![own]);
        assert_eq!(merged.len(), base.len());
        let e = merged.iter().find(|e| e.id == base[0].id).unwrap();
        assert_eq!(e.text[0], "corrected");
    }
}
