//! The admin listener: its own port, never the public one. Everything but `/healthz` needs
//! `Authorization: Bearer <token>` (from `[admin] token` in server.toml or `EDGESEO_ADMIN_TOKEN`).
//!
//! ```text
//! GET  /healthz   liveness and a summary (no token needed)
//! GET  /metrics   Prometheus text
//! POST /purge     {"site": "...", "path_prefix": "/products", "locale": "id"} → {"purged": n}
//! POST /reload    rules reloaded (200) or refused with diagnostics (422)
//! ```

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use crate::app::Control;
use crate::body::{self, Body};
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
        json_response(StatusCode::OK, json!({"purged": purged}))
    }

    async fn metrics(&self) -> Response<Body> {
        let cache = &self.control.cache;
        let (entries, bytes) = cache.usage().await;
        let c = &cache.counters;
        let mut text = String::from(
            "# HELP edgeseo_cache_responses_total Responses by how the cache answered.\n\
             # TYPE edgeseo_cache_responses_total counter\n",
        );
        for (status, counter) in [
            ("hit", &c.hit),
            ("miss", &c.miss),
            ("stale", &c.stale),
            ("bypass", &c.bypass),
        ] {
            text.push_str(&format!(
                "edgeseo_cache_responses_total{{status=\"{status}\"}} {}\n",
                counter.load(Ordering::Relaxed)
            ));
        }
        text.push_str(&format!(
            "# HELP edgeseo_cache_entries Responses held in the cache.\n# TYPE edgeseo_cache_entries gauge\nedgeseo_cache_entries {entries}\n\
             # HELP edgeseo_cache_bytes Bytes held in the cache, as its capacity counts them.\n# TYPE edgeseo_cache_bytes gauge\nedgeseo_cache_bytes {bytes}\n\
             # HELP edgeseo_sites Sites served by the current rules.\n# TYPE edgeseo_sites gauge\nedgeseo_sites {}\n\
             # HELP edgeseo_reloads_total Successful rule reloads.\n# TYPE edgeseo_reloads_total counter\nedgeseo_reloads_total {}\n\
             # HELP edgeseo_reload_failures_total Reloads refused because the rules on disk are invalid.\n# TYPE edgeseo_reload_failures_total counter\nedgeseo_reload_failures_total {}\n\
             # HELP edgeseo_rules_valid 1 when the rules on disk are the ones serving, 0 when the last reload was refused.\n# TYPE edgeseo_rules_valid gauge\nedgeseo_rules_valid {}\n\
             # HELP edgeseo_log_suppressed_total Warnings and errors held back because their call site wrote too many that second.\n# TYPE edgeseo_log_suppressed_total counter\nedgeseo_log_suppressed_total {}\n",
            self.control.runtime().rules.sites.len(),
            self.control.reloads(),
            self.control.reload_failures(),
            u8::from(self.control.refused().is_none()),
            crate::logging::suppressed(),
        ));
        text.push_str(
            "# HELP edgeseo_translation_coverage Share of the words on a site's known pages that its translation memory translates, per locale.\n\
             # TYPE edgeseo_translation_coverage gauge\n\
             # HELP edgeseo_translation_pages_advertised Pages whose translation reaches min_coverage (the others are not advertised at that locale).\n\
             # TYPE edgeseo_translation_pages_advertised gauge\n\
             # HELP edgeseo_translation_pages Pages the translation memory knows of.\n\
             # TYPE edgeseo_translation_pages gauge\n",
        );
        for site in &self.control.runtime().rules.sites {
            let Some(seo) = &site.seo else { continue };
            for &locale in seo.locales.iter().filter(|&&l| l != Locale::En) {
                let c = seo.coverage(locale);
                let name = site.name.replace('\\', "\\\\").replace('"', "\\\"");
                let labels = format!("site=\"{name}\",locale=\"{}\"", locale.code());
                text.push_str(&format!(
                    "edgeseo_translation_coverage{{{labels}}} {:.4}\n\
                     edgeseo_translation_pages_advertised{{{labels}}} {}\n\
                     edgeseo_translation_pages{{{labels}}} {}\n",
                    c.share(),
                    c.pages_covered,
                    c.pages
                ));
            }
        }
        let mut resp = Response::new(body::full(text));
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        resp
    }
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
                Ok(()) => json_response(StatusCode::OK, json!({"reloaded": true})),
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
