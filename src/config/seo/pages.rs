//! `pages.toml`: page rules (path patterns, kinds) and their title and description templates per
//! locale, checked with file:line:col.

use std::path::Path;

use toml::Spanned;

use super::super::diag::Diagnostic;
use super::super::raw::{RawLocalized, RawPage, RawPages, Texts};
use super::super::{Validator, parse_toml, read_source};
use super::{
    Alternatives, Keywords, Lead, Localized, PageKind, PageRule, Pages, PathPattern, Products,
    Template,
};
use crate::locale::Locale;

pub(super) fn load_pages(
    path: &Path,
    locales: &[Locale],
    keywords: &Option<Keywords>,
    products: &Option<Products>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Pages> {
    let src = read_source(path, diags)?;
    let raw: RawPages = parse_toml(&src, diags)?;
    let before = diags.len();
    let mut v = Validator::new(&src, diags);
    let home_label = match &raw.home_label {
        Some(labels) => v.localized_text(labels, locales, "home_label"),
        None => {
            let mut l = Localized::default();
            for (locale, text) in
                Locale::ALL
                    .into_iter()
                    .zip(["Home", "Beranda", "Trang chủ", "หน้าแรก"])
            {
                l.set(locale, text.to_string());
            }
            l
        }
    };
    let mut rules = Vec::new();
    for page in &raw.page {
        if let Some(rule) = v.page_rule(page, locales, keywords.as_ref(), products.as_ref()) {
            rules.push(rule);
        }
    }
    let sitemap_paths = raw
        .sitemap
        .iter()
        .flat_map(|s| &s.paths)
        .filter_map(|p| {
            if p.get_ref().starts_with('/') {
                Some(p.get_ref().clone())
            } else {
                v.error(p.span(), "sitemap paths are origin paths starting with `/`");
                None
            }
        })
        .collect();
    if let Some(products) = products {
        for product in &products.list {
            let covered = rules
                .iter()
                .find(|r| r.pattern.matches(&product.path))
                .is_some_and(|r| r.kind == PageKind::Product);
            if !covered {
                v.error(
                    0..0,
                    format!(
                        "product {} ({}) is matched by no page rule with kind = \"product\"",
                        product.sku, product.path
                    ),
                );
            }
        }
    }
    (diags.len() == before).then_some(Pages {
        rules,
        home_label,
        sitemap_paths,
    })
}

impl Validator<'_> {
    pub(super) fn page_rule(
        &mut self,
        page: &Spanned<RawPage>,
        locales: &[Locale],
        keywords: Option<&Keywords>,
        products: Option<&Products>,
    ) -> Option<PageRule> {
        let raw = page.get_ref();
        let pattern = match PathPattern::parse(raw.path.get_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                self.error(raw.path.span(), e);
                None
            }
        };
        let kind = match raw.kind.as_ref().map(|k| (k, k.get_ref().as_str())) {
            None | Some((_, "page")) => PageKind::Page,
            Some((_, "product")) => PageKind::Product,
            Some((k, other)) => {
                self.error(
                    k.span(),
                    format!("kind must be \"page\" or \"product\", not `{other}`"),
                );
                PageKind::Page
            }
        };
        let title = self.alternatives(&raw.title, locales, kind, "title");
        let description = self.alternatives(&raw.description, locales, kind, "description");
        let lead_text = raw
            .lead
            .as_ref()
            .map(|l| self.templates(l, locales, kind, "lead"));
        let lead_after = match (&raw.lead_after, &raw.lead) {
            (Some(after), Some(_)) => self.selector(after),
            (Some(after), None) => {
                self.error(after.span(), "lead_after goes with a [page.lead]");
                None
            }
            (None, _) => Some("h1".parse().expect("valid selector")),
        };
        let name = raw
            .name
            .as_ref()
            .map(|n| self.localized_text(n, locales, "name"));
        // Every locale whose templates use {kw…} needs keywords for the category it will look up.
        let categories: Vec<(String, std::ops::Range<usize>)> = match (&raw.category, kind) {
            (Some(c), PageKind::Page) => vec![(c.get_ref().clone(), c.span())],
            (None, PageKind::Page) => Vec::new(),
            (_, PageKind::Product) => products
                .iter()
                .flat_map(|p| &p.list)
                .filter(|p| pattern.as_ref().is_some_and(|pat| pat.matches(&p.path)))
                .map(|p| (p.category.clone(), raw.path.span()))
                .collect(),
        };
        for &locale in locales {
            let lead_uses = lead_text
                .as_ref()
                .is_some_and(|l| l.get(locale).uses_keywords());
            let uses = |a: &Alternatives| a.texts.iter().any(Template::uses_keywords);
            if !(uses(title.get(locale)) || uses(description.get(locale)) || lead_uses) {
                continue;
            }
            if kind == PageKind::Page && raw.category.is_none() {
                self.error(
                    page.span(),
                    "templates use {kw…}: set `category` to pick the keywords",
                );
                break;
            }
            let Some(keywords) = keywords else { continue };
            for (category, span) in &categories {
                if keywords.top(locale, category).is_empty() {
                    self.error(
                        span.clone(),
                        format!("category `{category}` has no keywords in keywords/{locale}.csv"),
                    );
                }
            }
        }
        let cache_ttl = raw
            .cache_ttl
            .as_ref()
            .map(|t| self.duration(&Some(t.clone()), std::time::Duration::ZERO));
        Some(PageRule {
            cache_ttl,
            pattern: pattern?,
            kind,
            category: raw.category.as_ref().map(|c| c.get_ref().clone()),
            name,
            title,
            description,
            lead: match lead_text {
                Some(text) => Some(Lead {
                    text,
                    after: lead_after?,
                }),
                None => None,
            },
        })
    }

    pub(super) fn templates(
        &mut self,
        raw: &Spanned<RawLocalized>,
        locales: &[Locale],
        kind: PageKind,
        what: &str,
    ) -> Localized<Template> {
        self.localized(raw, locales, what, |v, text| {
            Template::parse(text.get_ref(), kind)
                .map_err(|e| v.error(text.span(), e))
                .ok()
        })
    }

    /// A title or description: one template or a list of alternatives, each checked.
    pub(super) fn alternatives(
        &mut self,
        raw: &Spanned<RawLocalized<Texts>>,
        locales: &[Locale],
        kind: PageKind,
        what: &str,
    ) -> Localized<Alternatives> {
        self.localized(raw, locales, what, |v, texts| {
            let all = texts.get_ref().all();
            if all.is_empty() {
                v.error(texts.span(), format!("{what} lists no alternative"));
                return None;
            }
            let mut out = Vec::with_capacity(all.len());
            for (i, text) in all.iter().enumerate() {
                let which = if all.len() > 1 {
                    format!("alternative {}: ", i + 1)
                } else {
                    String::new()
                };
                match Template::parse(text, kind) {
                    Ok(t) => out.push(t),
                    Err(e) => v.error(texts.span(), format!("{which}{e}")),
                }
            }
            (out.len() == all.len()).then(|| Alternatives {
                texts: out,
                at: v.src.position(texts.span()),
            })
        })
    }

    pub(super) fn localized_text(
        &mut self,
        raw: &Spanned<RawLocalized>,
        locales: &[Locale],
        what: &str,
    ) -> Localized<String> {
        self.localized(raw, locales, what, |_, text| Some(text.get_ref().clone()))
    }

    /// One value per enabled locale, each read from that locale's text by `read` (which reports
    /// its own errors); a missing text is an error.
    pub(super) fn localized<T: Default, R>(
        &mut self,
        raw: &Spanned<RawLocalized<R>>,
        locales: &[Locale],
        what: &str,
        mut read: impl FnMut(&mut Self, &Spanned<R>) -> Option<T>,
    ) -> Localized<T> {
        let mut out = Localized::default();
        for &locale in locales {
            match localized_field(raw.get_ref(), locale) {
                Some(text) => {
                    if let Some(value) = read(self, text) {
                        out.set(locale, value);
                    }
                }
                None => self.error(
                    raw.span(),
                    format!(
                        "{what} has no `{}` text, and locale {locale} is enabled",
                        locale.code()
                    ),
                ),
            }
        }
        out
    }
}

pub(super) fn localized_field<R>(raw: &RawLocalized<R>, locale: Locale) -> Option<&Spanned<R>> {
    match locale {
        Locale::En => raw.en.as_ref(),
        Locale::Id => raw.id.as_ref(),
        Locale::Vi => raw.vi.as_ref(),
        Locale::Th => raw.th.as_ref(),
    }
}
