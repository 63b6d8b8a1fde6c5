//! edgeseo: an edge proxy that serves a supplier's unchanged website localized for Indonesia,
//! Vietnam and Thailand. The request flow is in [`proxy`]; [`app`] assembles a running server.

pub mod access;
pub mod acme;
pub mod admin;
pub mod app;
pub mod audit;
pub mod body;
pub mod cache;
pub mod chat;
pub mod codec;
pub mod config;
pub mod control;
pub mod demo;
pub mod edge;
pub mod error;
pub mod fleet;
pub mod forward;
pub mod geoip;
pub mod headers;
pub mod locale;
pub mod logging;
pub mod metrics;
pub mod proxy;
pub mod report;
pub mod request;
pub mod rewrite;
pub mod seo;
pub mod server;
pub mod sites;
pub mod stress;
pub mod suggest;
pub mod tls;
pub mod translate;
pub mod tunnel;
pub mod upstream;
pub mod watch;

/// Helpers shared by the unit tests of several modules.
#[cfg(test)]
pub(crate) mod test_support {
    use http::{HeaderMap, HeaderName};

    /// A header map from `(name, value)` pairs, repeated names appended.
    pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }
}
