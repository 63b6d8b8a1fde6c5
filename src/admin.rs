//! The admin listener: its own port, never the public one. Everything but `/healthz` needs
//! `Authorization: Bearer <token>` (from `[admin] token` in server.toml or `EDGESEO_ADMIN_TOKEN`).
//!
//! ```text
//! GET  /healthz   liveness and a summary (no token needed)
//! GET  /metrics   OpenMetrics text (Prometheus reads it)
//! POST /purge     {"site": "...", "path_prefix": "/products", "locale": "id"} → {"purged": n}
//! POST /reload    rules reloaded (200) or refused with diagnostics (422)
//! ```
//!
//! With `[fleet]`, a purge and a successful reload are also published to the other instances
//! (`"fleet": "told"`, or `"unreachable"` when Redis could not be told).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use serde_json::json;

use crate::body::{self, Body};
use crate::control::Control;
use crate::locale::Locale;
use crate::server::{ConnInfo, Handler};

pub struct Admin {
    token: String,
    control: Arc<Control>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeRequest {
    site: String,
    path_prefix: Option<String>,
    locale: Option<String>,
}

impl Admin {
    pub fn new(token: String, control: Arc<Control>) -> Admin {
        Admin { token, control }
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        constant_time_eq(presented.as_bytes(), self.token.as_bytes())
    }

    async fn purge(&self, req: Request<Incoming>) -> Response<Body> {
        let bytes = match Limited::new(req.into_body(), 64 * 1024).collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => {
                return json_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    json!({"error": "body too large"}),
                );
            }
        };
        let purge: PurgeRequest = match serde_json::from_slice(&bytes) {
            Ok(p) => p,
            Err(e) => {
                return json_response(StatusCode::BAD_REQUEST, json!({"error": e.to_string()}));
            }
        };
        let locale = match purge
            .locale
            .as_deref()
            .map(|c| Locale::from_code(c).ok_or(c))
        {
            None => None,
            Some(Ok(l)) => Some(l),
            Some(Err(code)) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    json!({"error": format!("unknown locale `{code}`")}),
                );
            }
        };
        let known = self
            .control
            .runtime()
            .rules
            .sites
            .iter()
            .any(|s| s.name == purge.site);
        if !known {
            return json_response(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no site `{}`", purge.site)}),
            );
        }
        let purged = self
            .control
            .cache
            .purge(&purge.site, purge.path_prefix.as_deref(), locale);
        let Some(fleet) = &self.control.fleet else {
            return json_response(StatusCode::OK, json!({"purged": purged}));
        };
        // The other instances purge when the event reaches them; their counts are not waited for.
        let told = fleet
            .publish_purge(&purge.site, purge.path_prefix.as_deref(), locale)
            .await;
        json_response(
            StatusCode::OK,
            json!({"purged": purged, "fleet": if told { "told" } else { "unreachable" }}),
        )
    }

    /// The request path's metrics and, read at this moment, the cache's, the rules' and the
    /// translation memories' state.
    async fn metrics(&self) -> Response<Body> {
        let mut registry = Registry::with_prefix("edgeseo");
        self.control.metrics.register(&mut registry);

        let cache = &self.control.cache;
        let (entries, bytes) = cache.usage().await;
        let c = &cache.counters;
        registry.register(
            "cache_responses",
            "Responses by how the cache answered",
            counted(
                "status",
                &[
                    ("hit", &c.hit),
                    ("miss", &c.miss),
                    ("stale", &c.stale),
                    ("bypass", &c.bypass),
                ],
            ),
        );
        let r = &cache.removals;
        registry.register(
            "cache_removals",
            "Entries that left the cache: evicted when full, expired, or purged",
            counted(
                "cause",
                &[
                    ("evicted", &r.evicted),
                    ("expired", &r.expired),
                    ("purged", &r.purged),
                ],
            ),
        );
        let gauge = |v: i64| {
            let g: Gauge = Gauge::default();
            g.set(v);
            g
        };
        let count = |v: u64| {
            let c: Counter = Counter::default();
            c.inc_by(v);
            c
        };
        let runtime = self.control.runtime();
        registry.register(
            "cache_entries",
            "Responses held in the cache",
            gauge(entries as i64),
        );
        registry.register(
            "cache_bytes",
            "Bytes held in the cache, as its capacity counts them",
            gauge(bytes as i64),
        );
        registry.register(
            "sites",
            "Sites served by the current rules",
            gauge(runtime.rules.sites.len() as i64),
        );
        registry.register(
            "reloads",
            "Successful rule reloads",
            count(self.control.reloads()),
        );
        registry.register(
            "reload_failures",
            "Reloads refused because the rules on disk are invalid",
            count(self.control.reload_failures()),
        );
        if let Some(fleet) = &self.control.fleet {
            registry.register(
                "fleet_redis_up",
                "1 while Redis answers, 0 while the chat's quotas are this instance's own",
                gauge(i64::from(fleet.reachable())),
            );
            registry.register(
                "fleet_fallbacks",
                "Chat quota checks this instance decided alone because Redis did not answer in time",
                count(fleet.fallbacks.load(Ordering::Relaxed)),
            );
        }
        registry.register(
            "rules_valid",
            "1 when the rules on disk are the ones serving, 0 when the last reload was refused",
            gauge(i64::from(self.control.refused().is_none())),
        );
        registry.register(
            "log_suppressed",
            "Warnings and errors held back because their call site wrote too many that second",
            count(crate::logging::suppressed()),
        );

        let coverage = Family::<SiteLocale, Gauge<f64, AtomicU64>>::default();
        let advertised = Family::<SiteLocale, Gauge>::default();
        let pages = Family::<SiteLocale, Gauge>::default();
        for site in &runtime.rules.sites {
            let Some(seo) = &site.seo else { continue };
            for &locale in seo.locales.iter().filter(|&&l| l != Locale::En) {
                let c = seo.coverage(locale);
                let labels = SiteLocale {
                    site: site.name.clone(),
                    locale: locale.code(),
                };
                // Four decimals are what an operator reads; more only jitter between scrapes.
                coverage
                    .get_or_create(&labels)
                    .set((c.share() * 1e4).round() / 1e4);
                advertised
                    .get_or_create(&labels)
                    .set(c.pages_covered as i64);
                pages.get_or_create(&labels).set(c.pages as i64);
            }
        }
        registry.register(
            "translation_coverage",
            "Share of the words on a site's known pages that its translation memory translates, per locale",
            coverage,
        );
        registry.register(
            "translation_pages_advertised",
            "Pages whose translation reaches min_coverage (the others are not advertised at that locale)",
            advertised,
        );
        registry.register(
            "translation_pages",
            "Pages the translation memory knows of",
            pages,
        );

        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &registry) {
            tracing::warn!(error = %e, "metrics could not be written");
            return json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "metrics"}),
            );
        }
        let mut resp = Response::new(body::full(text));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        );
        resp
    }
}

/// One counter per value of a single label, read from `counters` at this scrape.
fn counted(
    label: &'static str,
    counters: &[(&'static str, &AtomicU64)],
) -> Family<[(&'static str, &'static str); 1], Counter> {
    let family = Family::<[(&'static str, &'static str); 1], Counter>::default();
    for &(value, counter) in counters {
        family
            .get_or_create(&[(label, value)])
            .inc_by(counter.load(Ordering::Relaxed));
    }
    family
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLocale {
    site: String,
    locale: &'static str,
}

impl Handler for Admin {
    async fn handle(&self, req: Request<Incoming>, _conn: &ConnInfo) -> Response<Body> {
        let route = (req.method().clone(), req.uri().path().to_string());
        if route == (Method::GET, "/healthz".to_string()) {
            let (entries, _) = self.control.cache.usage().await;
            let sites = self.control.runtime().rules.sites.len();
            // Still serving (the previous rules) when the files on disk were refused: live, but
            // the operator has an edit to fix.
            let rules = match self.control.refused() {
                None => json!({"valid": true}),
                Some(error) => json!({"valid": false, "error": error}),
            };
            return json_response(
                StatusCode::OK,
                json!({"status": "ok", "sites": sites, "cache_entries": entries, "rules": rules}),
            );
        }
        if !self.authorized(&req) {
            let mut resp = json_response(
                StatusCode::UNAUTHORIZED,
                json!({"error": "bearer token required"}),
            );
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return resp;
        }
        match (route.0, route.1.as_str()) {
            (Method::GET, "/metrics") => self.metrics().await,
            (Method::POST, "/purge") => self.purge(req).await,
            (Method::POST, "/reload") => match self.control.reload("POST /reload") {
                Ok(()) => match &self.control.fleet {
                    None => json_response(StatusCode::OK, json!({"reloaded": true})),
                    Some(fleet) => {
                        let told = fleet.publish_reload().await;
                        json_response(
                            StatusCode::OK,
                            json!({"reloaded": true, "fleet": if told { "told" } else { "unreachable" }}),
                        )
                    }
                },
                Err(e) => json_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"reloaded": false, "error": e.to_string()}),
                ),
            },
            _ => json_response(
                StatusCode::NOT_FOUND,
                json!({"error": "no such admin endpoint"}),
            ),
        }
    }
}

fn json_response(status: StatusCode, value: serde_json::Value) -> Response<Body> {
    body::json(status, &value)
}

/// Compares without stopping at the first difference, so timing does not reveal the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret-token-123", b"secret-token-123"));
        assert!(!constant_time_eq(b"secret-token-123", b"secret-token-124"));
        assert!(!constant_time_eq(b"short", b"secret-token-123"));
    }
}
