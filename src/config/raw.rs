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
    pub origin: Spanned<RawOrigin>,
    #[serde(default)]
    pub limits: RawSiteLimits,
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
