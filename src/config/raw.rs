//! The rule files exactly as written: serde structs that reject unknown keys and keep the span of
//! every value that validation may complain about. Nothing outside `config` sees these types.

use serde::Deserialize;
use toml::Spanned;

/// `rules/server.toml` (optional): settings of the listeners, shared by all sites.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    #[serde(default)]
    pub limits: RawServerLimits,
    #[serde(default)]
    pub cache: RawServerCache,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub reload: RawReload,
    pub fleet: Option<RawFleet>,
    #[serde(default)]
    pub acme: RawServerAcme,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerAcme {
    pub check_every: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFleet {
    pub redis: Spanned<String>,
    pub key_prefix: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReload {
    pub watch: Option<bool>,
    pub debounce: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerCache {
    pub max_size: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub token: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServerLimits {
    pub max_header_size: Option<Spanned<String>>,
    pub header_read_timeout: Option<Spanned<String>>,
    pub idle_timeout: Option<Spanned<String>>,
    pub drain_timeout: Option<Spanned<String>>,
    pub max_connections: Option<Spanned<i64>>,
    pub max_concurrent_streams: Option<Spanned<i64>>,
}

/// `rules/<site>/site.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSite {
    pub hosts: Spanned<Vec<Spanned<String>>>,
    pub public_origin: Option<Spanned<String>>,
    pub origin: Spanned<RawOrigin>,
    #[serde(default)]
    pub limits: RawSiteLimits,
    #[serde(default)]
    pub locales: RawLocales,
    pub organization: Option<Spanned<RawOrganization>>,
    #[serde(default)]
    pub rewrite: RawRewrite,
    #[serde(default)]
    pub translate: RawTranslate,
    #[serde(default)]
    pub merchant: RawMerchant,
    pub reviews: Option<RawReviews>,
    #[serde(default)]
    pub cache: RawSiteCache,
    #[serde(default)]
    pub compress: RawCompress,
    #[serde(default)]
    pub https: RawHttps,
    #[serde(default)]
    pub tls: RawTls,
    #[serde(default)]
    pub websocket: RawWebsocket,
    pub chat: Option<Spanned<RawChat>>,
}

/// One table of `chat/answers.toml`: the answer to an intent in each language.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnswer {
    pub en: Option<Spanned<String>>,
    pub id: Option<Spanned<String>>,
    pub vi: Option<Spanned<String>>,
    pub th: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebsocket {
    pub enabled: Option<bool>,
    pub idle_timeout: Option<Spanned<String>>,
    pub max_message: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttps {
    pub redirect: Option<bool>,
    pub port: Option<Spanned<i64>>,
    pub hsts_max_age: Option<Spanned<String>>,
    pub hsts_include_subdomains: Option<bool>,
    pub hsts_preload: Option<Spanned<bool>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub acme: Option<Spanned<bool>>,
    pub email: Option<Spanned<String>>,
    pub directory: Option<Spanned<String>>,
    pub challenge: Option<Spanned<String>>,
    pub renew_before: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawChat {
    pub path: Spanned<String>,
    pub threshold: Option<Spanned<f64>>,
    pub max_message: Option<Spanned<String>>,
    pub per_ip_per_minute: Option<Spanned<i64>>,
    pub per_session_per_minute: Option<Spanned<i64>>,
    pub global_per_second: Option<Spanned<i64>>,
    pub max_concurrent: Option<Spanned<i64>>,
    pub exempt: Option<Vec<Spanned<String>>>,
    pub widget: Option<bool>,
    pub base: Option<bool>,
    pub backend: Option<Spanned<String>>,
    pub backend_timeout: Option<Spanned<String>>,
    pub backend_max_concurrent: Option<Spanned<i64>>,
    pub llm: Option<Spanned<RawLlm>>,
}

/// `[chat] llm = { url, model, ... }`: the OpenAI-compatible model that words the answers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLlm {
    pub url: Spanned<String>,
    pub model: Spanned<String>,
    pub api_key_env: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub max_concurrent: Option<Spanned<i64>>,
    pub tokens_per_minute: Option<Spanned<i64>>,
    pub max_tokens: Option<Spanned<i64>>,
    pub send_personal_data: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSiteCache {
    pub enabled: Option<bool>,
    pub max_entry_size: Option<Spanned<String>>,
    pub stale_while_revalidate: Option<Spanned<String>>,
    pub stale_if_error: Option<Spanned<String>>,
    pub session_cookies: Option<Vec<Spanned<String>>>,
    pub ignore_cookies: Option<Vec<Spanned<String>>>,
    pub statuses: Option<Vec<Spanned<i64>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompress {
    pub enabled: Option<bool>,
    pub min_size: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocales {
    pub enabled: Option<Spanned<Vec<Spanned<String>>>>,
    pub suggest: Option<Spanned<String>>,
    pub geoip: Option<Spanned<String>>,
    pub verify_crawlers: Option<bool>,
    pub trusted_proxies: Option<Vec<Spanned<String>>>,
    pub switcher: Option<bool>,
    pub switcher_at: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrganization {
    pub name: Spanned<String>,
    pub legal_name: Option<String>,
    pub logo: Option<Spanned<String>>,
    pub email: Option<String>,
    pub telephone: Option<String>,
    pub whatsapp: Option<String>,
    pub zalo: Option<Spanned<String>>,
    pub line: Option<Spanned<String>>,
    pub street_address: Option<String>,
    pub address_locality: Option<String>,
    pub address_region: Option<String>,
    pub postal_code: Option<String>,
    pub address_country: Option<Spanned<String>>,
    pub founding_date: Option<String>,
    pub same_as: Option<Vec<Spanned<String>>>,
    pub prefer: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    pub max_memory: Option<Spanned<String>>,
    pub price_selector: Option<Spanned<String>>,
}

/// `[reviews]`: CSS selectors of the buyer reviews the origin's pages show.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReviews {
    pub item: Spanned<String>,
    pub author: Spanned<String>,
    pub rating: Spanned<String>,
    pub body: Option<Spanned<String>>,
    pub date: Option<Spanned<String>>,
    pub best: Option<Spanned<i64>>,
    pub max: Option<Spanned<i64>>,
}

/// `[merchant]`: what merchant listings show about returns and shipping, per buyer market.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMerchant {
    pub returns: Option<Spanned<String>>,
    pub return_days: Option<Spanned<i64>>,
    pub return_fees: Option<Spanned<String>>,
    /// Keyed by the market's country code (`ID`, `VN`, `TH`).
    #[serde(default)]
    pub shipping: std::collections::BTreeMap<String, Spanned<RawShipping>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShipping {
    pub handling_days: Option<Spanned<String>>,
    pub transit_days: Spanned<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTranslate {
    pub serve_fuzzy: Option<bool>,
    pub min_coverage: Option<Spanned<f64>>,
    #[serde(default)]
    pub exclude: Vec<Spanned<String>>,
    #[serde(default)]
    pub glossary: Vec<Spanned<String>>,
}

/// `rules/<site>/pages.toml`: page rules, first match wins.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPages {
    #[serde(default)]
    pub home_label: Option<Spanned<RawLocalized>>,
    #[serde(default)]
    pub sitemap: Option<RawSitemap>,
    #[serde(default)]
    pub page: Vec<Spanned<RawPage>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSitemap {
    pub paths: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPage {
    pub path: Spanned<String>,
    pub kind: Option<Spanned<String>>,
    pub category: Option<Spanned<String>>,
    pub name: Option<Spanned<RawLocalized>>,
    pub title: Spanned<RawLocalized<Texts>>,
    pub description: Spanned<RawLocalized<Texts>>,
    pub lead: Option<Spanned<RawLocalized>>,
    pub lead_after: Option<Spanned<String>>,
    pub cache_ttl: Option<Spanned<String>>,
}

/// A text per locale code.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLocalized<T = String> {
    pub en: Option<Spanned<T>>,
    pub id: Option<Spanned<T>>,
    pub vi: Option<Spanned<T>>,
    pub th: Option<Spanned<T>>,
}

/// A title or description: one text, or alternatives from the longest to the shortest.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Texts {
    One(String),
    Many(Vec<String>),
}

impl Texts {
    pub fn all(&self) -> &[String] {
        match self {
            Texts::One(t) => std::slice::from_ref(t),
            Texts::Many(ts) => ts,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    pub url: Option<Spanned<String>>,
    pub embedded: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub response_timeout: Option<Spanned<String>>,
    pub ca_file: Option<Spanned<String>>,
    pub max_idle_connections: Option<Spanned<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSiteLimits {
    pub max_request_body: Option<Spanned<String>>,
}

/// `chat/regulations.toml`: the regulatory knowledge base's entries.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegulations {
    #[serde(default)]
    pub entry: Vec<Spanned<RawRegEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegEntry {
    pub id: Spanned<String>,
    pub market: Spanned<String>,
    pub authority: Spanned<String>,
    pub topic: Spanned<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub hs_chapters: Vec<Spanned<String>>,
    #[serde(default)]
    pub keywords: Vec<String>,
    pub source: Spanned<String>,
    pub reviewed: Spanned<String>,
    pub text: Spanned<RawAnswer>,
}
