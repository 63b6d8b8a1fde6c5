//! What a page should say about itself at one locale URL: the localized title and description,
//! canonical and hreflang links, Open Graph tags, JSON-LD and localized prices. Built per request
//! from the site's rules before the origin's body arrives, and finished at `</head>` once the
//! origin's own canonical is known. Nothing here depends on who is asking, only on the URL.

mod jsonld;
mod text;
pub mod vocabulary;

pub use jsonld::Review;
pub use text::{Budget, DESCRIPTION, TITLE, width_px};

use std::fmt::Write as _;
use std::sync::Arc;

use crate::config::{Field, Keyword, PageKind, Part, Product, SiteSeo, Switcher, Template};
use crate::locale::Locale;

pub use text::{escape_attr, escape_text, format_price, format_quantity};

/// A page request as the SEO layer sees it.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest<'a> {
    pub locale: Locale,
    /// The path the origin knows (locale prefix removed), without query.
    pub origin_path: &'a str,
    /// `https://www.example.com`: the site's public origin or the request's scheme and host.
    pub base: &'a str,
}

/// The switcher's looks, kept low so that a site's own CSS wins: a bar that pushes the page down
/// rather than floating over it, or links that fit into the site's navigation.
const SWITCHER_CSS: &str = "<style>.edgeseo-lang{display:flex;flex-wrap:wrap;align-items:center;\
gap:4px 14px;font:14px/1.5 system-ui,sans-serif}.edgeseo-lang a{color:#0b5394}\
.edgeseo-lang a[aria-current]{color:#1f2937;font-weight:600;text-decoration:none}\
.edgeseo-lang-bar{justify-content:flex-end;padding:6px 16px;background:#f3f4f6}</style>";

/// Everything the rewriter needs to localize one page.
#[derive(Debug, Clone)]
pub struct HeadPlan {
    pub locale: Locale,
    /// `None` keeps the origin's own title (an empty template).
    pub title: Option<String>,
    /// Used when the origin page has no title and the template keeps the origin's.
    fallback_title: String,
    pub description: Option<String>,
    /// No alternative fitted its budget, so the first was shortened.
    pub title_shortened: bool,
    pub description_shortened: bool,
    base: String,
    origin_path: String,
    /// Locales whose URL of this page is shown to search engines (hreflang).
    locales: Vec<Locale>,
    /// This locale's text of the page is too little translated to be indexed.
    pub noindex: bool,
    /// The page's JSON-LD graph, serialized when the head is written (the origin's
    /// organization, if its head has one, is merged in then).
    jsonld: jsonld::Graph,
    /// The page rule's lead in this locale, and the element it goes after.
    lead: Option<(String, lol_html::Selector)>,
    /// The site's rules, for prices looked up as price elements stream by.
    seo: Arc<SiteSeo>,
}

/// Titles and descriptions that fit no results page, as `check` warns of them: for every
/// template, on how many of the pages it serves (sitemap paths and product pages, every locale)
/// no alternative fits, with one such page and the text it was shortened to.
pub fn unfit_templates(seo: &Arc<SiteSeo>) -> Vec<crate::config::Diagnostic> {
    use std::collections::BTreeMap;
    let base = seo.public_origin.as_deref().unwrap_or("");
    let paths = seo
        .pages
        .sitemap_paths
        .iter()
        .map(String::as_str)
        .chain(seo.products.list.iter().map(|p| p.path.as_str()));
    /// One template in one locale: what it is, its budget, the pages it serves, those on
    /// which it was shortened, and the first of them with its shortened text.
    struct Tally<'a> {
        what: &'a str,
        max_px: f32,
        pages: usize,
        shortened: usize,
        example: String,
    }
    let mut found: BTreeMap<(&crate::config::Position, Locale), Tally> = BTreeMap::new();
    for origin_path in paths {
        let Some(rule) = seo.page_rule(&normalize_path(origin_path)) else {
            continue;
        };
        for &locale in &seo.locales {
            let request = PageRequest {
                locale,
                origin_path,
                base,
            };
            let plan = HeadPlan::build(seo, request);
            for (what, at, shortened, text, budget) in [
                (
                    "title",
                    &rule.title.get(locale).at,
                    plan.title_shortened,
                    &plan.title,
                    text::TITLE,
                ),
                (
                    "description",
                    &rule.description.get(locale).at,
                    plan.description_shortened,
                    &plan.description,
                    text::DESCRIPTION,
                ),
            ] {
                let tally = found.entry((at, locale)).or_insert_with(|| Tally {
                    what,
                    max_px: budget.max_px,
                    pages: 0,
                    shortened: 0,
                    example: String::new(),
                });
                tally.pages += 1;
                if shortened {
                    tally.shortened += 1;
                    if tally.example.is_empty() {
                        let shown = text.as_deref().unwrap_or_default();
                        tally.example =
                            format!("{} → \"{shown}\"", locale.localize_path(origin_path));
                    }
                }
            }
        }
    }
    found
        .into_iter()
        .filter(|(_, t)| t.shortened > 0)
        .map(|((at, locale), t)| {
            let scope = if t.shortened == t.pages {
                "any of its".to_string()
            } else {
                format!("{} of its", t.shortened)
            };
            at.diagnostic(format!(
                "warning: no {} alternative ({}) fits {} px on {scope} {} page(s); shortened, e.g. {}",
                t.what,
                locale.code(),
                t.max_px,
                t.pages,
                t.example
            ))
        })
        .collect()
}

/// Nodes with one `@id` joined into one, as search engines read them (a page may state a
/// product in its head and its reviews in a later block); the first value of a property wins.
pub fn join_by_id(nodes: impl IntoIterator<Item = serde_json::Value>) -> Vec<serde_json::Value> {
    let mut out: Vec<serde_json::Value> = Vec::new();
    for node in nodes {
        let same = node["@id"]
            .as_str()
            .and_then(|id| out.iter().position(|n| n["@id"].as_str() == Some(id)));
        match (same, node) {
            (Some(at), serde_json::Value::Object(fields)) => {
                if let serde_json::Value::Object(first) = &mut out[at] {
                    for (key, value) in fields {
                        first.entry(key).or_insert(value);
                    }
                }
            }
            (_, node) => out.push(node),
        }
    }
    out
}

const LD_OPEN: &str = r#"<script type="application/ld+json">"#;

/// A JSON-LD block stating `reviews` of the product `product_id` (see
/// `jsonld::reviews_document`); `ascii_only` escapes what the page's encoding lacks.
pub fn reviews_script(product_id: &str, reviews: &[Review], best: u8, ascii_only: bool) -> String {
    let json = jsonld::reviews_document(product_id, reviews, best);
    format!(
        "{LD_OPEN}{}</script>",
        jsonld::script_safe(&json, ascii_only)
    )
}

impl HeadPlan {
    pub fn build(seo: &Arc<SiteSeo>, req: PageRequest<'_>) -> HeadPlan {
        let locale = req.locale;
        let path = normalize_path(req.origin_path);
        let rule = seo.page_rule(&path);
        let product = rule
            .filter(|r| r.kind == PageKind::Product)
            .and_then(|_| seo.products.by_path(&path));
        let category = product
            .map(|p| p.category.as_str())
            .or_else(|| rule.and_then(|r| r.category.as_deref()));
        let all_keywords = category.map_or(&[][..], |c| seo.keywords.top(locale, c));
        // In a title or description, a keyword the product's name already says (with or without
        // its accents) is not said twice ("Nồi chiên không dầu 4.5L – nồi chiên không dầu"), nor,
        // where others are left, one that only extends such a keyword ("… – nồi chiên không dầu
        // giá rẻ"): the next one takes its place. The lead, under the name, says the top keywords
        // as they are.
        let fold = |s: &str| crate::chat::features::fold_latin_diacritics(&s.to_lowercase());
        let name = product.map(|p| fold(p.name.get(locale)));
        let folded: Vec<String> = all_keywords.iter().map(|k| fold(&k.text)).collect();
        let said: Vec<&String> = folded
            .iter()
            .filter(|k| name.as_ref().is_some_and(|n| n.contains(k.as_str())))
            .collect();
        let keep = |unsaid: &dyn Fn(&str) -> bool| -> Vec<&Keyword> {
            all_keywords
                .iter()
                .zip(&folded)
                .filter(|(_, k)| unsaid(k))
                .map(|(k, _)| k)
                .collect()
        };
        let strict = keep(&|k| !said.iter().any(|s| k.contains(s.as_str())));
        let loose = keep(&|k| !said.iter().any(|s| s.as_str() == k));
        let all: Vec<&Keyword> = all_keywords.iter().collect();
        let page_name = page_name(seo, locale, &path);
        let lead_ctx = TemplateCtx {
            seo,
            locale,
            product: product.map(|p| &**p),
            page_name: &page_name,
            keywords: &all,
        };
        // From the least repetitive keyword list to the full one; the first that has keywords
        // renders the text that stands for the template (structured data, the shortened text).
        let passes = [&strict, &loose, &all].map(|keywords| TemplateCtx {
            keywords,
            ..lead_ctx
        });
        let ctx = passes
            .iter()
            .find(|c| !c.keywords.is_empty())
            .unwrap_or(&lead_ctx);
        let render = |t: &Template| Some(ctx.render(t)).filter(|s| !s.trim().is_empty());
        // Of the alternatives, the widest within the budget, in the least repetitive pass that
        // has any within it; an alternative needing more keywords than a pass has would repeat
        // one, so it waits for the last. Else the first, shortened (`text::fit`; `true`). An
        // empty first alternative keeps the origin's text.
        let choose = |alternatives: &[Template], budget: text::Budget| {
            let first = render(alternatives.first()?)?;
            let width = |s: &String| text::width_px(s, budget.size_px);
            passes
                .iter()
                .enumerate()
                .find_map(|(i, pass)| {
                    alternatives
                        .iter()
                        .filter(|t| {
                            i == passes.len() - 1 || t.keywords_needed() <= pass.keywords.len()
                        })
                        .map(|t| pass.render(t))
                        .filter(|s| !s.trim().is_empty() && width(s) <= budget.max_px)
                        .max_by(|a, b| width(a).total_cmp(&width(b)))
                })
                .map(|fits| (fits, false))
                .or_else(|| Some((text::fit(&first, budget), true)))
        };
        let title = rule.and_then(|r| choose(&r.title.get(locale).texts, text::TITLE));
        let lead = rule
            .and_then(|r| r.lead.as_ref())
            .map(|l| (lead_ctx.render(l.text.get(locale)), l.after.clone()))
            .filter(|(text, _)| !text.trim().is_empty());
        // Structured data takes the first alternative whole: no budget applies there.
        let whole_description = rule.and_then(|r| render(r.description.get(locale).texts.first()?));
        let description =
            rule.and_then(|r| choose(&r.description.get(locale).texts, text::DESCRIPTION));

        let breadcrumbs = breadcrumbs(seo, locale, &path, req.base);
        let graph = jsonld::graph(&jsonld::PageFacts {
            seo,
            locale,
            base: req.base,
            url: &format!("{}{}", req.base, locale.localize_path(&path)),
            description: whole_description.as_deref(),
            product: product.map(|p| &**p),
            breadcrumbs: &breadcrumbs,
        });
        let fallback_title = if path == "/" {
            seo.organization.name.clone()
        } else {
            format!("{page_name} | {}", seo.organization.name)
        };
        HeadPlan {
            locale,
            title_shortened: title.as_ref().is_some_and(|t| t.1),
            description_shortened: description.as_ref().is_some_and(|d| d.1),
            title: title.map(|t| t.0),
            fallback_title,
            description: description.map(|d| d.0),
            base: req.base.to_string(),
            noindex: !seo.advertised(locale, &path),
            locales: seo.advertised_locales(&path),
            origin_path: path,
            jsonld: graph,
            lead,
            seo: seo.clone(),
        }
    }

    /// The page rule's lead as HTML (`translate="no"`: it is already in the page's language),
    /// and the element it goes after.
    pub fn lead_html(&self) -> Option<(String, &lol_html::Selector)> {
        let (text, after) = self.lead.as_ref()?;
        Some((
            format!(
                r#"<p class="edgeseo-lead" translate="no">{}</p>"#,
                html_escape::encode_text(text)
            ),
            after,
        ))
    }

    /// The page's origin path, normalised (`/products`, never `/products/`).
    pub fn origin_path(&self) -> &str {
        &self.origin_path
    }

    /// The price of a product, in this locale's currency and notation.
    pub fn price(&self, sku: &str) -> Option<String> {
        let product = self.seo.products.by_sku(sku)?;
        Some(format_price(self.locale, product.price.get(self.locale)))
    }

    /// Elements whose text is a product price.
    pub fn price_selector(&self) -> &lol_html::Selector {
        &self.seo.rewrite.price_selector
    }

    /// Elements whose text is never translated: prices and the site's `[translate] exclude`.
    pub fn untranslated_selectors(&self) -> Vec<lol_html::Selector> {
        self.seo.untranslated_selectors()
    }

    /// The URL of this page at `locale`.
    pub fn url(&self, locale: Locale, path: &str) -> String {
        format!("{}{}", self.base, locale.localize_path(path))
    }

    /// The crawlable language switcher: a link to each advertised version of this page, named in
    /// its own language (`None` when the site turns it off or the page has one version only).
    /// `translate="no"` keeps the names out of the page's translation. (In a page whose encoding
    /// lacks their letters, the rewriter's encoder writes them as character references.)
    pub fn switcher_html(&self) -> Option<String> {
        if !self.has_switcher() {
            return None;
        }
        let label = match self.locale {
            Locale::En => "Language",
            Locale::Id => "Bahasa",
            Locale::Vi => "Ngôn ngữ",
            Locale::Th => "ภาษา",
        };
        let class = match self.seo.switcher {
            Switcher::Bar => "edgeseo-lang edgeseo-lang-bar",
            _ => "edgeseo-lang",
        };
        let mut html = format!(r#"<nav class="{class}" translate="no" aria-label="{label}">"#);
        for &locale in &self.locales {
            let current = if locale == self.locale {
                r#" aria-current="page""#
            } else {
                ""
            };
            let _ = write!(
                html,
                r#"<a href="{}" hreflang="{}" lang="{}"{current}>{}</a> "#,
                escape_attr(&self.url(locale, &self.origin_path)),
                locale.tag(),
                locale.tag(),
                locale.name()
            );
        }
        html.truncate(html.len() - 1);
        html.push_str("</nav>");
        Some(html)
    }

    fn has_switcher(&self) -> bool {
        !matches!(self.seo.switcher, Switcher::Off) && self.locales.len() >= 2
    }

    /// Where the switcher goes.
    pub fn switcher(&self) -> &Switcher {
        &self.seo.switcher
    }

    /// Where the page's reviews are, when it is a product's and the site says.
    pub fn reviews(&self) -> Option<(&crate::config::ReviewRules, &str)> {
        Some((self.seo.reviews.as_ref()?, self.jsonld.product_id()?))
    }

    /// What replaces an origin JSON-LD block's text (see `jsonld::Graph::adopt_origin`): `None`
    /// keeps it, an empty string drops the block.
    pub fn adopt_origin_jsonld(
        &self,
        text: &str,
        head_written: bool,
        origin_org: &mut Option<serde_json::Value>,
        ascii_only: bool,
    ) -> Option<String> {
        let json = self.jsonld.adopt_origin(text, head_written, origin_org)?;
        Some(jsonld::script_safe(&json, ascii_only))
    }

    /// schema.org types the page's JSON-LD describes.
    pub fn jsonld_types(&self) -> &[&'static str] {
        self.jsonld.types()
    }

    /// The tags that close `<head>`. `origin_canonical` is the href of the origin's own canonical
    /// link, if it had one: a page canonical to another URL keeps pointing there (at this locale)
    /// and, not being self-canonical, gets no hreflang set. `origin_org` is the organization node
    /// of the origin's head JSON-LD, merged into ours. `ascii_only` escapes the JSON-LD for
    /// pages whose encoding cannot carry every character.
    pub fn head_html(
        &self,
        origin_canonical: Option<&str>,
        origin_org: Option<&serde_json::Value>,
        need: Needs,
        ascii_only: bool,
    ) -> String {
        let canonical_path = origin_canonical
            .and_then(canonical_path)
            .unwrap_or_else(|| self.origin_path.clone());
        let self_canonical = canonical_path == self.origin_path;
        let canonical = self.url(self.locale, &canonical_path);
        let mut html = String::with_capacity(2048);
        if self.noindex {
            // Search engines would see the page's English text under a localized URL.
            html.push_str(r#"<meta name="robots" content="noindex">"#);
        }
        if need.title {
            let title = self.title.as_deref().unwrap_or(&self.fallback_title);
            let _ = write!(html, "<title>{}</title>", escape_text(title));
        }
        if let Some(description) = &self.description {
            if need.description {
                let _ = write!(
                    html,
                    r#"<meta name="description" content="{}">"#,
                    escape_attr(description)
                );
            }
            let _ = write!(
                html,
                r#"<meta property="og:description" content="{}">"#,
                escape_attr(description)
            );
        }
        if let Some(title) = &self.title {
            let _ = write!(
                html,
                r#"<meta property="og:title" content="{}">"#,
                escape_attr(title)
            );
        }
        let _ = write!(
            html,
            r#"<link rel="canonical" href="{}">"#,
            escape_attr(&canonical)
        );
        let _ = write!(
            html,
            r#"<meta property="og:url" content="{}">"#,
            escape_attr(&canonical)
        );
        let _ = write!(
            html,
            r#"<meta property="og:locale" content="{}">"#,
            self.locale.og()
        );
        for &other in self.locales.iter().filter(|&&l| l != self.locale) {
            let _ = write!(
                html,
                r#"<meta property="og:locale:alternate" content="{}">"#,
                other.og()
            );
        }
        if self_canonical && !self.noindex {
            for &locale in &self.locales {
                let _ = write!(
                    html,
                    r#"<link rel="alternate" hreflang="{}" href="{}">"#,
                    locale.tag(),
                    escape_attr(&self.url(locale, &self.origin_path))
                );
            }
            let _ = write!(
                html,
                r#"<link rel="alternate" hreflang="x-default" href="{}">"#,
                escape_attr(&self.url(Locale::En, &self.origin_path))
            );
        }
        if self.has_switcher() {
            html.push_str(SWITCHER_CSS);
        }
        html.push_str(LD_OPEN);
        let graph = self
            .jsonld
            .serialize(origin_org, self.seo.organization.rules_win);
        html.push_str(&jsonld::script_safe(&graph, ascii_only));
        html.push_str("</script>");
        html
    }
}

/// Which of the replaceable tags the origin's head lacked, so they are added rather than swapped.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub title: bool,
    pub description: bool,
}

/// `/products/` → `/products`; the root stays `/`.
pub fn normalize_path(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

/// The path (and query) of an origin canonical href, whatever host it names.
fn canonical_path(href: &str) -> Option<String> {
    let href = href.trim();
    let after_scheme = href
        .strip_prefix("https://")
        .or_else(|| href.strip_prefix("http://"))
        .or_else(|| href.strip_prefix("//"));
    let path = match after_scheme {
        Some(rest) => rest.find('/').map_or("/", |i| &rest[i..]),
        None if href.starts_with('/') => href,
        None => return None,
    };
    let path = path.split('#').next().unwrap_or(path);
    let (p, query) = path.split_once('?').unwrap_or((path, ""));
    let p = Locale::split_path(p).1;
    let mut out = normalize_path(p);
    if !query.is_empty() {
        out.push('?');
        out.push_str(query);
    }
    Some(out)
}

struct TemplateCtx<'a> {
    seo: &'a SiteSeo,
    locale: Locale,
    product: Option<&'a Product>,
    page_name: &'a str,
    keywords: &'a [&'a Keyword],
}

impl TemplateCtx<'_> {
    fn render(&self, template: &Template) -> String {
        let mut out = String::new();
        for part in &template.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field(field) => match field {
                    Field::ProductName => {
                        out.push_str(self.product.map_or("", |p| p.name.get(self.locale)))
                    }
                    Field::ProductSku => out.push_str(self.product.map_or("", |p| &p.sku)),
                    Field::ProductMoq => {
                        if let Some((n, unit)) = self.product.and_then(|p| p.moq.as_ref()) {
                            out.push_str(&text::format_quantity(self.locale, *n, unit));
                        }
                    }
                    Field::ProductPrice => {
                        if let Some(p) = self.product {
                            out.push_str(&format_price(self.locale, p.price.get(self.locale)));
                        }
                    }
                    Field::OrgName => out.push_str(&self.seo.organization.name),
                    Field::PageName => out.push_str(self.page_name),
                    Field::Keyword(i) => {
                        // Fewer keywords than asked for: fall back to the top one.
                        let kw = self.keywords.get(*i).or_else(|| self.keywords.first());
                        out.push_str(kw.map_or("", |k| k.text.as_str()));
                    }
                },
            }
        }
        // Collapse the doubled spaces an empty placeholder leaves behind.
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    }
}

/// The page's name in breadcrumbs: the product's name, the rule's name, or the path segment.
fn page_name(seo: &SiteSeo, locale: Locale, path: &str) -> String {
    if path == "/" {
        return seo.pages.home_label.get(locale).clone();
    }
    if let Some(product) = seo.products.by_path(path) {
        return product.name.get(locale).clone();
    }
    let named = seo
        .page_rule(path)
        .filter(|r| r.kind == PageKind::Page)
        .and_then(|r| r.name.as_ref());
    match named {
        Some(name) => name.get(locale).clone(),
        None => humanize(path.rsplit('/').next().unwrap_or(path)),
    }
}

fn humanize(segment: &str) -> String {
    let words = segment.replace(['-', '_'], " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// `(name, absolute URL)` from the home page down to this page; empty on the home page.
fn breadcrumbs(seo: &SiteSeo, locale: Locale, path: &str, base: &str) -> Vec<(String, String)> {
    if path == "/" {
        return Vec::new();
    }
    let mut trail = vec![(
        seo.pages.home_label.get(locale).clone(),
        format!("{base}{}", locale.localize_path("/")),
    )];
    let mut prefix = String::new();
    for segment in path.split('/').filter(|s| !s.is_empty()) {
        prefix.push('/');
        prefix.push_str(segment);
        trail.push((
            page_name(seo, locale, &prefix),
            format!("{base}{}", locale.localize_path(&prefix)),
        ));
    }
    trail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_ignore_host_and_locale() {
        assert_eq!(
            canonical_path("https://www.example.com/products/x/").as_deref(),
            Some("/products/x")
        );
        assert_eq!(
            canonical_path("/id/products/x").as_deref(),
            Some("/products/x")
        );
        assert_eq!(canonical_path("https://e.com").as_deref(), Some("/"));
        assert_eq!(
            canonical_path("/a?page=2#top").as_deref(),
            Some("/a?page=2")
        );
        assert_eq!(canonical_path("relative"), None);
    }
}
