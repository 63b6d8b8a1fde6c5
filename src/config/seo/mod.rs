//! The SEO half of a site's rules: the typed model (locales, organization, page rules, templates,
//! feeds) and the loading of a site's SEO files into it. Checking `pages.toml` lives in
//! `pages.rs`, reading the CSV feeds (`products.csv`, `keywords/<locale>.csv`) in `feeds.rs`. A
//! site without `pages.toml` is proxied without rewriting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;
use toml::Spanned;

mod facts;
mod feeds;
mod pages;
mod reviews;

use super::Validator;
use super::diag::Diagnostic;
use super::raw::{RawMerchant, RawOrganization, RawSite, RawTranslate};
use crate::locale::Locale;
use crate::translate::{CoverageSummary, Memory};
use facts::load_facts;
pub use feeds::is_date;
use feeds::{load_keywords, load_products};
use pages::load_pages;
pub use reviews::ReviewRules;
use reviews::review_rules;

/// One value per locale, indexed by [`Locale`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Localized<T>([T; 4]);

impl<T> Localized<T> {
    pub fn get(&self, locale: Locale) -> &T {
        &self.0[locale as usize]
    }

    fn set(&mut self, locale: Locale, value: T) {
        self.0[locale as usize] = value;
    }
}

#[derive(Debug, Clone)]
pub struct SiteSeo {
    /// `https://www.example.com` (no trailing slash) for absolute URLs; `None` uses the request's
    /// scheme and host.
    pub public_origin: Option<String>,
    /// Enabled locales, English (the root and `x-default`) first.
    pub locales: Vec<Locale>,
    pub suggest: SuggestMode,
    pub switcher: Switcher,
    /// A GeoIP database file; `None` uses the database compiled into the binary.
    pub geoip: Option<PathBuf>,
    pub verify_crawlers: bool,
    /// Peers whose `Forwarded`/`X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    pub organization: Organization,
    pub rewrite: RewriteSettings,
    pub pages: Pages,
    pub products: Products,
    pub keywords: Keywords,
    /// Translation memories (`translations/<locale>.po`) of the locales that have one.
    pub translations: HashMap<Locale, Arc<Memory>>,
    pub translate: TranslateSettings,
    pub merchant: Merchant,
    /// Where the origin's pages show buyer reviews (`None`: no `[reviews]`).
    pub reviews: Option<ReviewRules>,
}

/// `[merchant]`: the return policy and the shipping per buyer market that a Product's offer
/// states (merchant listings ask for both); nothing is stated that the site did not give.
#[derive(Debug, Clone, Default)]
pub struct Merchant {
    pub returns: Option<ReturnPolicy>,
    /// Ordered by country code.
    pub shipping: Vec<Shipping>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReturnPolicy {
    pub category: ReturnCategory,
    /// Who pays for a return (`None`: not stated).
    pub fees: Option<ReturnFees>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReturnCategory {
    NotPermitted,
    FiniteWindow { days: u32 },
    Unlimited,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReturnFees {
    Free,
    Customer,
}

/// Delivery to one market: days of handling (production) and of transit, as ranges.
#[derive(Debug, Clone, PartialEq)]
pub struct Shipping {
    /// ISO 3166-1 alpha-2 of a market a locale serves (`ID`, `VN`, `TH`).
    pub country: String,
    pub handling_days: Option<(u32, u32)>,
    pub transit_days: (u32, u32),
}

/// `[translate]`: how the page text is translated and when a translation is good enough to
/// show search engines.
#[derive(Debug, Clone)]
pub struct TranslateSettings {
    /// Serve translations marked `fuzzy` (machine pre-fills not yet reviewed).
    pub serve_fuzzy: bool,
    /// Share of a page's words that must be translated for its localized URL to be advertised
    /// (hreflang, sitemap, indexable); 0 advertises every locale whatever its text.
    pub min_coverage: f32,
    /// Elements whose text is never translated, besides `translate="no"` and `.notranslate`.
    pub exclude: Vec<lol_html::Selector>,
    /// Terms that must come through translation unchanged (brand, model names).
    pub glossary: Vec<String>,
}

/// `[translate] min_coverage` when a site sets none.
pub const DEFAULT_MIN_COVERAGE: f32 = 0.8;

impl SiteSeo {
    /// The rule for an origin path: the first that matches, skipping product rules for paths
    /// that are not in the product feed (a product template without a product says nothing).
    pub fn page_rule(&self, path: &str) -> Option<&PageRule> {
        self.pages.rules.iter().find(|r| {
            r.pattern.matches(path)
                && (r.kind == PageKind::Page || self.products.by_path(path).is_some())
        })
    }

    /// Whether the page at `origin_path` is shown to search engines at `locale`: English always;
    /// another locale when the share of the page's words its memory translates reaches
    /// `min_coverage` (a page the memory names nowhere counts as untranslated).
    pub fn advertised(&self, locale: Locale, origin_path: &str) -> bool {
        locale == Locale::En
            || self.translate.min_coverage <= 0.0
            || self
                .translations
                .get(&locale)
                .and_then(|m| m.coverage(origin_path))
                .is_some_and(|c| c >= self.translate.min_coverage)
    }

    /// The enabled locales `origin_path` is advertised at, English first.
    pub fn advertised_locales(&self, origin_path: &str) -> Vec<Locale> {
        self.locales
            .iter()
            .copied()
            .filter(|&l| self.advertised(l, origin_path))
            .collect()
    }

    /// Elements whose text is never translated: prices (replaced per locale) and the site's
    /// `[translate] exclude`.
    pub fn untranslated_selectors(&self) -> Vec<lol_html::Selector> {
        std::iter::once(&self.rewrite.price_selector)
            .chain(&self.translate.exclude)
            .cloned()
            .collect()
    }

    /// How much of the site's known page text `locale` has translated (nothing known for a
    /// locale without a memory).
    pub fn coverage(&self, locale: Locale) -> CoverageSummary {
        self.translations
            .get(&locale)
            .map(|m| m.summary(self.translate.min_coverage))
            .unwrap_or_default()
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }
}

/// What a human on the English pages is offered when their country or language suggests another
/// locale. Crawlers are never offered anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuggestMode {
    /// A dismissible banner, drawn by a script so the page itself stays the same for everyone.
    Banner,
    /// A 302 to the locale URL (not cached, `Vary` set).
    Redirect,
    Off,
}

/// Where a localized page gets its crawlable links to its other languages (`[locales] switcher`
/// and `switcher_at`).
#[derive(Debug, Clone)]
pub enum Switcher {
    /// A bar at the top of `<body>`.
    Bar,
    /// At the end of the first element the selector matches; before `</body>` on a page where
    /// it matches nothing.
    Inside(lol_html::Selector),
    Off,
}

#[derive(Debug, Clone, Default)]
pub struct Organization {
    pub name: String,
    pub legal_name: Option<String>,
    /// Path or absolute URL of the logo.
    pub logo: Option<String>,
    pub email: Option<String>,
    pub telephone: Option<String>,
    pub whatsapp: Option<String>,
    /// Zalo phone number, offered to Vietnamese buyers (the chat's handover).
    pub zalo: Option<String>,
    /// LINE ID (`@shop` for an official account), offered to Thai buyers.
    pub line: Option<String>,
    pub street_address: Option<String>,
    pub address_locality: Option<String>,
    pub address_region: Option<String>,
    pub postal_code: Option<String>,
    /// ISO 3166-1 alpha-2.
    pub address_country: Option<String>,
    pub founding_date: Option<String>,
    pub same_as: Vec<String>,
    /// `prefer = "rules"`: these fields replace the origin's own JSON-LD organization's rather
    /// than only filling what it lacks.
    pub rules_win: bool,
}

#[derive(Debug, Clone)]
pub struct RewriteSettings {
    /// Memory the HTML rewriter may use per response; beyond it the rest passes through unmodified.
    pub max_memory: usize,
    /// Elements showing a price: `data-sku` names the product; their text becomes the locale's price.
    pub price_selector: lol_html::Selector,
    /// The same selector as written (the audit reads pages with it).
    pub price_selector_css: String,
}

#[derive(Debug, Clone)]
pub struct Pages {
    pub rules: Vec<PageRule>,
    /// The home page's name in breadcrumbs.
    pub home_label: Localized<String>,
    /// Origin paths listed in the sitemap besides the product pages.
    pub sitemap_paths: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PageRule {
    pub pattern: PathPattern,
    pub kind: PageKind,
    /// Keyword category for `{kw1}`…; product pages use their product's category.
    pub category: Option<String>,
    /// Name in breadcrumbs.
    pub name: Option<Localized<String>>,
    pub title: Localized<Alternatives>,
    pub description: Localized<Alternatives>,
    /// A short visible line in the page's language (its keywords and MOQ where a searcher sees
    /// them), placed after the first element of `Lead::after`.
    pub lead: Option<Lead>,
    /// Freshness of these pages in the cache, overriding what the origin says.
    pub cache_ttl: Option<std::time::Duration>,
}

/// A title or description: templates from the longest to the shortest, of which a page gets the
/// widest that fits its budget, and where they are written.
#[derive(Debug, Clone, Default)]
pub struct Alternatives {
    pub texts: Vec<Template>,
    pub at: super::Position,
}

#[derive(Debug, Clone)]
pub struct Lead {
    pub text: Localized<Template>,
    /// Default `h1`.
    pub after: lol_html::Selector,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    Page,
    /// A product page: its path is in the product feed.
    Product,
}

/// A path glob: `*` matches one segment, a final `**` any rest. A trailing slash is ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<String>,
}

impl PathPattern {
    fn parse(text: &str) -> Result<Self, String> {
        if !text.starts_with('/') {
            return Err(format!("path pattern `{text}` must start with `/`"));
        }
        let segments: Vec<String> = segments(text).map(str::to_string).collect();
        if let Some(pos) = segments.iter().position(|s| s == "**")
            && pos + 1 != segments.len()
        {
            return Err("`**` may only end a path pattern".into());
        }
        Ok(Self { segments })
    }

    pub fn matches(&self, path: &str) -> bool {
        let mut parts = segments(path);
        for (i, pattern) in self.segments.iter().enumerate() {
            if pattern == "**" {
                return i + 1 == self.segments.len();
            }
            match parts.next() {
                Some(part) if pattern == "*" || pattern == part => {}
                _ => return false,
            }
        }
        parts.next().is_none()
    }
}

fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

/// A title or description template: text with `{placeholders}`, checked when the rules load.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Template {
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Field(Field),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    ProductName,
    ProductPrice,
    ProductSku,
    /// The minimum order quantity with its unit in the page's language (`500 pcs`, `1000 bộ`).
    ProductMoq,
    OrgName,
    PageName,
    /// `{kw1}`…`{kw5}`: the category's keywords by search volume, 0-based here.
    Keyword(usize),
}

impl Template {
    fn parse(text: &str, kind: PageKind) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..].find('}').ok_or("unclosed `{` in template")? + open;
            let name = &rest[open + 1..close];
            let field = match name {
                "product.name" => Field::ProductName,
                "product.price" => Field::ProductPrice,
                "product.sku" => Field::ProductSku,
                "product.moq" => Field::ProductMoq,
                "org.name" => Field::OrgName,
                "page.name" => Field::PageName,
                kw if kw.starts_with("kw") => match kw[2..].parse::<usize>() {
                    Ok(n @ 1..=5) => Field::Keyword(n - 1),
                    _ => {
                        return Err(format!(
                            "unknown placeholder `{{{name}}}`: keywords are {{kw1}}…{{kw5}}"
                        ));
                    }
                },
                _ => {
                    return Err(format!(
                        "unknown placeholder `{{{name}}}`; known: product.name, product.price, product.sku, product.moq, org.name, page.name, kw1…kw5"
                    ));
                }
            };
            if kind != PageKind::Product
                && matches!(
                    field,
                    Field::ProductName
                        | Field::ProductPrice
                        | Field::ProductSku
                        | Field::ProductMoq
                )
            {
                return Err(format!(
                    "`{{{name}}}` needs `kind = \"product\"` on this page rule"
                ));
            }
            parts.push(Part::Field(field));
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Self { parts })
    }

    /// How many keywords the template needs: one more than its highest `{kwN}`, 0 for none.
    pub fn keywords_needed(&self) -> usize {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Field(Field::Keyword(i)) => Some(i + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    pub fn uses_keywords(&self) -> bool {
        self.parts
            .iter()
            .any(|p| matches!(p, Part::Field(Field::Keyword(_))))
    }
}

#[derive(Debug, Clone, Default)]
pub struct Products {
    pub list: Vec<Arc<Product>>,
    by_path: HashMap<String, Arc<Product>>,
    by_sku: HashMap<String, Arc<Product>>,
}

impl Products {
    pub fn by_path(&self, path: &str) -> Option<&Arc<Product>> {
        self.by_path.get(path.trim_end_matches('/'))
    }

    pub fn by_sku(&self, sku: &str) -> Option<&Arc<Product>> {
        self.by_sku.get(sku)
    }

    /// Changes every product with `edit`, while the feed is still being loaded.
    fn edit(&mut self, mut edit: impl FnMut(&mut Product)) {
        self.by_path.clear();
        self.by_sku.clear();
        for product in &mut self.list {
            // Unshared once the maps are cleared, so nothing is copied.
            edit(Arc::make_mut(product));
            self.by_sku.insert(product.sku.clone(), product.clone());
            self.by_path.insert(product.path.clone(), product.clone());
        }
    }
}

#[derive(Debug, Clone)]
pub struct Product {
    pub sku: String,
    /// Origin path of the product page.
    pub path: String,
    pub name: Localized<String>,
    /// What the product is, for its JSON-LD (`description_<locale>`, optional; empty for none).
    pub description: Localized<String>,
    /// Decimal price text per locale's currency, as in the feed (`24.90`, `408400`).
    pub price: Localized<String>,
    /// schema.org ItemAvailability name (`InStock`, `PreOrder`, …).
    pub availability: String,
    pub image: String,
    pub brand: String,
    pub category: String,
    /// Manufacturer part number (`mpn`, optional; often the model number the page shows).
    pub mpn: Option<String>,
    /// GTIN-8, -12, -13 or -14 (`gtin`, optional; check digit verified).
    pub gtin: Option<String>,
    /// Minimum order quantity (`moq`, optional): the Offer's `eligibleQuantity`, counted in
    /// the UN/CEFACT unit `moq_unit` (default `H87`, piece; `SET` for sets).
    pub moq: Option<(u64, String)>,
    /// `YYYY-MM-DD` until which the feed's prices hold (`price_valid_until`, optional): the
    /// converted prices of a B2B feed are quotes, not list prices.
    pub price_valid_until: Option<String>,
    /// Production time in days after the order is confirmed (`lead_time`, optional: `15` or
    /// `15-25`), which the chat states for the product.
    pub lead_time: Option<(u32, u32)>,
    /// The main specifications in a line, per locale (`facts.toml`; empty where not written).
    pub specs: Localized<String>,
    /// What a buyer should know about samples of this product, per locale (`facts.toml`).
    pub samples: Localized<String>,
    /// The average rating the product page shows (`rating`, 1 to 5) and the number of reviews
    /// it is the average of (`review_count`): both or neither, as the page states them.
    pub rating: Option<(String, u64)>,
}

/// Marketplace search keywords per locale and category, highest volume first.
#[derive(Debug, Clone, Default)]
pub struct Keywords {
    by_locale: Localized<HashMap<String, Vec<Keyword>>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyword {
    pub text: String,
    pub volume: u64,
    pub marketplace: String,
}

impl Keywords {
    /// The `n` highest-volume keywords of `locale` over every category.
    pub fn overall(&self, locale: Locale, n: usize) -> Vec<&Keyword> {
        let mut all: Vec<&Keyword> = self.by_locale.get(locale).values().flatten().collect();
        all.sort_by(|a, b| b.volume.cmp(&a.volume).then_with(|| a.text.cmp(&b.text)));
        all.dedup_by(|a, b| a.text == b.text);
        all.truncate(n);
        all
    }

    pub fn top(&self, locale: Locale, category: &str) -> &[Keyword] {
        self.by_locale
            .get(locale)
            .get(category)
            .map_or(&[], Vec::as_slice)
    }
}

/// Loads the SEO rules of one site; `None` when the site has no `pages.toml` or on errors (which
/// are pushed to `diags`).
pub(super) fn load(
    site_dir: &Path,
    raw: &RawSite,
    organization: Option<&Organization>,
    v: &mut Validator<'_>,
    diags_after: &mut Vec<Diagnostic>,
) -> Option<SiteSeo> {
    let pages_path = site_dir.join("pages.toml");
    if !pages_path.exists() {
        return None;
    }
    let public_origin = raw.public_origin.as_ref().and_then(|o| v.public_origin(o));
    let locales = v.locales(&raw.locales.enabled);
    let suggest = match raw
        .locales
        .suggest
        .as_ref()
        .map(|s| (s, s.get_ref().as_str()))
    {
        None | Some((_, "banner")) => SuggestMode::Banner,
        Some((_, "redirect")) => SuggestMode::Redirect,
        Some((_, "off")) => SuggestMode::Off,
        Some((s, other)) => {
            v.error(
                s.span(),
                format!("suggest must be \"banner\", \"redirect\" or \"off\", not `{other}`"),
            );
            SuggestMode::Off
        }
    };
    let switcher = match (raw.locales.switcher, &raw.locales.switcher_at) {
        (Some(false), _) => Switcher::Off,
        (_, None) => Switcher::Bar,
        (_, Some(at)) => v.selector(at).map_or(Switcher::Bar, Switcher::Inside),
    };
    let merchant = merchant(&raw.merchant, v);
    let reviews = raw.reviews.as_ref().and_then(|r| review_rules(r, v));
    let geoip = raw.locales.geoip.as_ref().and_then(|g| {
        let path = site_dir.join(g.get_ref());
        if !path.is_file() {
            v.error(
                g.span(),
                format!("GeoIP database {} not found", path.display()),
            );
            return None;
        }
        // Opened here, not only when serving, so that `check` refuses what `serve` would.
        match crate::geoip::GeoIp::open(&path) {
            Ok(_) => Some(path),
            Err(e) => {
                v.error(g.span(), e.to_string());
                None
            }
        }
    });
    let trusted_proxies = raw
        .locales
        .trusted_proxies
        .iter()
        .flatten()
        .filter_map(|p| v.network(p))
        .collect();
    let organization = match organization {
        Some(org) => org.clone(),
        None => {
            v.error(
                0..0,
                "a site with pages.toml needs an [organization] with at least `name`",
            );
            Organization::default()
        }
    };
    const DEFAULT_PRICE: &str = "span[data-sku][data-currency]";
    let (price_selector, price_selector_css) = raw
        .rewrite
        .price_selector
        .as_ref()
        .and_then(|s| Some((v.selector(s)?, s.get_ref().clone())))
        .unwrap_or_else(|| {
            (
                DEFAULT_PRICE.parse().expect("valid selector"),
                DEFAULT_PRICE.to_owned(),
            )
        });
    let rewrite = RewriteSettings {
        max_memory: v.size(&raw.rewrite.max_memory, 4 << 20, 64 << 10..=1 << 30) as usize,
        price_selector,
        price_selector_css,
    };

    let translate = translate_settings(&raw.translate, v);
    let translations = load_translations(site_dir, &locales, &translate, diags_after);
    let keywords = load_keywords(site_dir, &locales, diags_after);
    let products = load_products(
        &site_dir.join("products.csv"),
        &locales,
        &translations,
        diags_after,
    )
    .map(|mut products| {
        load_facts(&site_dir.join("facts.toml"), &mut products, diags_after);
        products
    });
    let pages = load_pages(&pages_path, &locales, &keywords, &products, diags_after)?;

    Some(SiteSeo {
        public_origin,
        locales,
        suggest,
        switcher,
        geoip,
        verify_crawlers: raw.locales.verify_crawlers.unwrap_or(false),
        trusted_proxies,
        organization,
        rewrite,
        pages,
        products: products?,
        keywords: keywords?,
        translations,
        translate,
        merchant,
        reviews,
    })
}

fn translate_settings(raw: &RawTranslate, v: &mut Validator<'_>) -> TranslateSettings {
    let min_coverage = match &raw.min_coverage {
        Some(c) if (0.0..=1.0).contains(c.get_ref()) => *c.get_ref() as f32,
        Some(c) => {
            v.error(c.span(), "min_coverage is a share between 0 and 1");
            DEFAULT_MIN_COVERAGE
        }
        None => DEFAULT_MIN_COVERAGE,
    };
    let exclude = raw
        .exclude
        .iter()
        .filter_map(|s| match s.get_ref().parse::<lol_html::Selector>() {
            Ok(selector) => Some(selector),
            Err(e) => {
                v.error(s.span(), format!("invalid CSS selector: {e}"));
                None
            }
        })
        .collect();
    let glossary = raw
        .glossary
        .iter()
        .filter_map(|t| {
            let term = t.get_ref().trim();
            if term.is_empty() {
                v.error(t.span(), "a glossary term cannot be empty");
            }
            (!term.is_empty()).then(|| term.to_owned())
        })
        .collect();
    TranslateSettings {
        serve_fuzzy: raw.serve_fuzzy.unwrap_or(false),
        min_coverage,
        exclude,
        glossary,
    }
}

fn merchant(raw: &RawMerchant, v: &mut Validator<'_>) -> Merchant {
    let category = raw
        .returns
        .as_ref()
        .and_then(|r| match r.get_ref().as_str() {
            "not_permitted" => Some(ReturnCategory::NotPermitted),
            "unlimited" => Some(ReturnCategory::Unlimited),
            "finite" => match &raw.return_days {
                Some(d) if (1..=365).contains(d.get_ref()) => Some(ReturnCategory::FiniteWindow {
                    days: *d.get_ref() as u32,
                }),
                Some(d) => {
                    v.error(d.span(), "return_days is a number of days from 1 to 365");
                    None
                }
                None => {
                    v.error(r.span(), "returns = \"finite\" needs return_days");
                    None
                }
            },
            other => {
                v.error(
                r.span(),
                format!(
                    "returns must be \"not_permitted\", \"finite\" or \"unlimited\", not `{other}`"
                ),
            );
                None
            }
        });
    if let Some(d) = &raw.return_days
        && raw.returns.as_ref().is_none_or(|r| r.get_ref() != "finite")
    {
        v.error(d.span(), "return_days goes with returns = \"finite\"");
    }
    let fees = raw
        .return_fees
        .as_ref()
        .and_then(|f| match f.get_ref().as_str() {
            "free" => Some(ReturnFees::Free),
            "customer" => Some(ReturnFees::Customer),
            other => {
                v.error(
                    f.span(),
                    format!("return_fees must be \"free\" or \"customer\", not `{other}`"),
                );
                None
            }
        });
    let shipping = raw
        .shipping
        .iter()
        .filter_map(|(country, rule)| {
            let served = Locale::ALL
                .iter()
                .any(|l| l.country() == Some(country.as_str()));
            if !served {
                v.error(
                    rule.span(),
                    format!("[merchant.shipping.{country}]: markets are ID, VN and TH"),
                );
                return None;
            }
            let rule = rule.get_ref();
            let mut days = |text: &Spanned<String>, what: &str| {
                let range = day_range(text.get_ref());
                if range.is_none() {
                    v.error(
                        text.span(),
                        format!("{what} is a range of days like \"7-12\""),
                    );
                }
                range
            };
            let handling_days = match &rule.handling_days {
                Some(h) => Some(days(h, "handling_days")?),
                None => None,
            };
            Some(Shipping {
                country: country.clone(),
                handling_days,
                transit_days: days(&rule.transit_days, "transit_days")?,
            })
        })
        .collect();
    Merchant {
        returns: category.map(|category| ReturnPolicy { category, fees }),
        shipping,
    }
}

/// `"7-12"` or `"7"` days, at most a year.
fn day_range(text: &str) -> Option<(u32, u32)> {
    let (min, max) = match text.split_once('-') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
        None => {
            let n = text.trim().parse().ok()?;
            (n, n)
        }
    };
    (min <= max && max <= 365).then_some((min, max))
}

/// `translations/<locale>.po` of every enabled locale but English, where present.
fn load_translations(
    site_dir: &Path,
    locales: &[Locale],
    settings: &TranslateSettings,
    diags: &mut Vec<Diagnostic>,
) -> HashMap<Locale, Arc<Memory>> {
    let serve_fuzzy = settings.serve_fuzzy;
    let mut memories = HashMap::new();
    for &locale in locales.iter().filter(|&&l| l != Locale::En) {
        let path = site_dir
            .join("translations")
            .join(format!("{}.po", locale.code()));
        if !path.exists() {
            continue;
        }
        match Memory::load(&path, serve_fuzzy) {
            Ok(memory) => {
                memories.insert(locale, Arc::new(memory));
            }
            Err(e) => diags.push(Diagnostic {
                path: e.file,
                line: e.line,
                col: e.col,
                message: e.message,
            }),
        }
    }
    memories
}

impl Validator<'_> {
    fn public_origin(&mut self, value: &Spanned<String>) -> Option<String> {
        let text = value.get_ref().trim_end_matches('/');
        match text.parse::<http::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https"))
                    && uri.authority().is_some()
                    && matches!(uri.path(), "" | "/") =>
            {
                Some(text.to_string())
            }
            _ => {
                self.error(
                    value.span(),
                    format!("public_origin must be like \"https://www.example.com\", not `{text}`"),
                );
                None
            }
        }
    }

    fn locales(&mut self, enabled: &Option<Spanned<Vec<Spanned<String>>>>) -> Vec<Locale> {
        let Some(enabled) = enabled else {
            return Locale::ALL.to_vec();
        };
        let mut out = vec![Locale::En];
        for code in enabled.get_ref() {
            match Locale::from_code(code.get_ref()) {
                Some(Locale::En) => {}
                Some(l) if !out.contains(&l) => out.push(l),
                Some(l) => self.error(code.span(), format!("locale `{l}` is listed twice")),
                None => self.error(
                    code.span(),
                    format!("unknown locale `{}`; known: en, id, vi, th", code.get_ref()),
                ),
            }
        }
        out.sort();
        out
    }

    pub(super) fn network(&mut self, value: &Spanned<String>) -> Option<IpNet> {
        let text = value.get_ref();
        let parsed = text
            .parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from));
        match parsed {
            Ok(net) => Some(net),
            Err(_) => {
                self.error(
                    value.span(),
                    format!("`{text}` is not an IP address or CIDR network"),
                );
                None
            }
        }
    }

    pub(super) fn organization(&mut self, raw: &RawOrganization) -> Organization {
        if raw.name.get_ref().trim().is_empty() {
            self.error(raw.name.span(), "organization name must not be empty");
        }
        let address_country = self
            .checked(
                raw.address_country.as_ref(),
                |code| code.len() == 2 && code.chars().all(|ch| ch.is_ascii_uppercase()),
                "address_country must be an ISO 3166-1 code like \"CN\"",
            )
            .map(str::to_owned);
        let same_as = raw
            .same_as
            .iter()
            .flatten()
            .filter(|u| {
                let ok = u.get_ref().starts_with("https://") || u.get_ref().starts_with("http://");
                if !ok {
                    self.error(u.span(), "same_as entries must be absolute URLs");
                }
                ok
            })
            .map(|u| u.get_ref().clone())
            .collect();
        let zalo = self
            .checked(
                raw.zalo.as_ref(),
                |z| {
                    let digits = z.chars().filter(char::is_ascii_digit).count();
                    (8..=15).contains(&digits)
                        && z.chars().all(|c| {
                            c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '.' | '(' | ')')
                        })
                },
                "zalo is the account's phone number, e.g. \"+84 912 345 678\"",
            )
            .map(|z| z.trim().to_owned());
        let line = self
            .checked(
                raw.line.as_ref(),
                |l| {
                    let id = l.trim();
                    let name = id.strip_prefix('@').unwrap_or(id);
                    (1..=20).contains(&name.len())
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
                },
                "line is a LINE ID (letters, digits, . _ -; @ for an official account)",
            )
            .map(|l| l.trim().to_owned());
        let rules_win = match raw
            .prefer
            .as_ref()
            .map(|p| (p.get_ref().as_str(), p.span()))
        {
            None | Some(("origin", _)) => false,
            Some(("rules", _)) => true,
            Some((other, span)) => {
                self.error(
                    span,
                    format!("prefer must be \"origin\" or \"rules\", not {other:?}"),
                );
                false
            }
        };
        Organization {
            name: raw.name.get_ref().clone(),
            legal_name: raw.legal_name.clone(),
            logo: raw.logo.as_ref().map(|l| l.get_ref().clone()),
            email: raw.email.clone(),
            telephone: raw.telephone.clone(),
            whatsapp: raw.whatsapp.clone(),
            zalo,
            line,
            street_address: raw.street_address.clone(),
            address_locality: raw.address_locality.clone(),
            address_region: raw.address_region.clone(),
            postal_code: raw.postal_code.clone(),
            address_country,
            founding_date: raw.founding_date.clone(),
            same_as,
            rules_win,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::feeds::{field_start, is_date, is_decimal, is_gtin};
    use super::*;

    #[test]
    fn path_patterns() {
        let p = PathPattern::parse("/products/*").unwrap();
        assert!(p.matches("/products/air-fryer"));
        assert!(p.matches("/products/air-fryer/"));
        assert!(!p.matches("/products"));
        assert!(!p.matches("/products/a/b"));
        let root = PathPattern::parse("/").unwrap();
        assert!(root.matches("/"));
        assert!(!root.matches("/about"));
        let all = PathPattern::parse("/**").unwrap();
        assert!(all.matches("/"));
        assert!(all.matches("/a/b/c"));
        assert!(PathPattern::parse("/a/**/b").is_err());
    }

    #[test]
    fn templates_parse_and_reject_unknown_fields() {
        let t = Template::parse("{product.name} {kw1} | {org.name}", PageKind::Product).unwrap();
        assert_eq!(t.parts.len(), 5);
        assert!(t.uses_keywords());
        assert!(Template::parse("{product.name}", PageKind::Page).is_err());
        assert!(Template::parse("{kw9}", PageKind::Page).is_err());
        assert!(Template::parse("{nope}", PageKind::Page).is_err());
        assert!(Template::parse("open {kw1", PageKind::Page).is_err());
    }

    #[test]
    fn decimals() {
        assert!(is_decimal("24.90"));
        assert!(is_decimal("408400"));
        assert!(!is_decimal("408.400,00"));
        assert!(!is_decimal("1."));
        assert!(!is_decimal(""));
    }

    #[test]
    fn csv_fields_are_found_by_position_not_by_text() {
        let line = "a,\"b,\"\"c\",0,0\nnext,row";
        assert_eq!(field_start(line, 0), 0);
        assert_eq!(field_start(line, 1), 2);
        assert_eq!(field_start(line, 2), 10);
        assert_eq!(field_start(line, 3), 12);
        assert_eq!(
            field_start(line, 4),
            13,
            "past the last field: the record's end"
        );
    }

    #[test]
    fn gtins_and_dates() {
        assert!(is_gtin("4006381333931"), "EAN-13");
        assert!(is_gtin("036000291452"), "UPC-A");
        assert!(is_gtin("96385074"), "EAN-8");
        assert!(!is_gtin("4006381333932"), "wrong check digit");
        assert!(!is_gtin("40063813339"), "11 digits");
        assert!(!is_gtin("400638133393a"));
        assert!(is_date("2027-06-30"));
        assert!(is_date("2028-02-29"));
        assert!(!is_date("2027-02-29"));
        assert!(!is_date("2027-6-30"));
        assert!(!is_date("2027-13-01"));
        assert!(!is_date("30/06/2027"));
    }
}
