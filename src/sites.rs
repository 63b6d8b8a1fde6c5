//! The live state built from loaded rules: each site with its origin client, and the host table
//! that picks a site for a request. Built whole from [`Rules`] and swapped atomically on reload.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use crate::chat::{ChatError, ChatService};
use crate::config::{Rules, Site};
use crate::fleet::Fleet;
use crate::geoip::{GeoIp, GeoIpError};
use crate::upstream::{EmbeddedOrigins, Upstream, UpstreamError};

/// The compiled-in GeoIP database, opened once and shared by every rules generation.
static DEFAULT_GEOIP: LazyLock<GeoIp> = LazyLock::new(GeoIp::embedded);

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    GeoIp(#[from] GeoIpError),
    #[error("site {site}: {source}")]
    Chat { site: String, source: ChatError },
}

pub struct SiteState {
    /// The site's directory name, shared by its cache keys.
    pub name: Arc<str>,
    pub config: Site,
    pub upstream: Upstream,
    /// The site's own GeoIP database, when its rules name one.
    geoip: Option<GeoIp>,
    /// The chat endpoint, when the site has `[chat]`.
    pub chat: Option<ChatService>,
}

impl SiteState {
    /// Whether `host` (any case, with or without port) is this site's: one of its hosts, under
    /// one of its wildcards, or the host of its `public_origin`. Links to it are internal.
    pub fn owns_host(&self, host: &str) -> bool {
        let host = normalize_host(host);
        let public = self
            .config
            .seo
            .as_ref()
            .and_then(|s| s.public_origin.as_deref())
            .and_then(|o| o.split("://").nth(1))
            .map(normalize_host);
        public.as_deref() == Some(host.as_str())
            || self.config.hosts.iter().any(|h| match h.strip_prefix('*') {
                Some(suffix) => host.ends_with(suffix),
                None => *h == host,
            })
    }
}

pub struct Runtime {
    pub rules: Rules,
    exact: HashMap<String, Arc<SiteState>>,
    /// `(".example.com", site)` for `*.example.com`, longest suffix first.
    wildcards: Vec<(String, Arc<SiteState>)>,
}

impl Runtime {
    /// `fleet`: where the chat's quotas are counted when several instances share them.
    pub fn build(
        rules: Rules,
        embedded: &EmbeddedOrigins,
        fleet: Option<&Arc<Fleet>>,
    ) -> Result<Self, BuildError> {
        let mut exact = HashMap::new();
        let mut wildcards = Vec::new();
        for site in &rules.sites {
            let geoip = match site.seo.as_ref().and_then(|s| s.geoip.as_deref()) {
                Some(path) => Some(GeoIp::open(path)?),
                None => None,
            };
            let chat = ChatService::for_site(site, fleet).map_err(|source| BuildError::Chat {
                site: site.name.clone(),
                source,
            })?;
            let state = Arc::new(SiteState {
                chat,
                name: Arc::from(site.name.as_str()),
                upstream: Upstream::new(&site.origin, embedded)?,
                config: site.clone(),
                geoip,
            });
            for host in &site.hosts {
                match host.strip_prefix('*') {
                    Some(suffix) => wildcards.push((suffix.to_string(), state.clone())),
                    None => {
                        exact.insert(host.clone(), state.clone());
                    }
                }
            }
        }
        wildcards.sort_by_key(|(suffix, _)| std::cmp::Reverse(suffix.len()));
        Ok(Self {
            rules,
            exact,
            wildcards,
        })
    }

    /// Every site's state, for periodic housekeeping.
    pub fn sites(&self) -> impl Iterator<Item = &Arc<SiteState>> {
        self.exact
            .values()
            .chain(self.wildcards.iter().map(|(_, s)| s))
    }

    /// The GeoIP database for a site's suggestions.
    pub fn geoip<'a>(&self, site: &'a SiteState) -> &'a GeoIp {
        site.geoip.as_ref().unwrap_or(&DEFAULT_GEOIP)
    }

    /// The site serving `host` (any port, any case), if one does.
    pub fn route(&self, host: &str) -> Option<&Arc<SiteState>> {
        let host = normalize_host(host);
        self.exact.get(host.as_str()).or_else(|| {
            self.wildcards
                .iter()
                .find(|(suffix, _)| host.ends_with(suffix.as_str()))
                .map(|(_, site)| site)
        })
    }
}

/// Lower-case host without port, brackets or trailing dot: `[::1]:8080` → `::1`.
pub fn normalize_host(authority: &str) -> String {
    let authority = authority.trim();
    let host = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
            _ => authority,
        }
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::normalize_host;

    #[test]
    fn hosts_normalize_without_port() {
        assert_eq!(normalize_host("LocalHost:8080"), "localhost");
        assert_eq!(normalize_host("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(normalize_host("[::1]:8080"), "::1");
        assert_eq!(normalize_host("shop.example."), "shop.example");
    }
}
