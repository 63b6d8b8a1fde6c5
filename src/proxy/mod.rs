//! The request pipeline, top to bottom. Every request passes these stages in this order:
//!
//! ```text
//! request ─► 1. route:    admitted (request.rs: CONNECT → 405, ambiguous Host → 400,
//!                         dot segments resolved), then Host/:authority → site
//!                                                          (unknown → 421, never forwarded)
//!                         an open ACME HTTP-01 token of the site's host → its answer
//!                         POST <chat path> → chat gateway (limits, language, intent, KB/backend)
//!         ─► 2. localize: /id/… /vi/… /th/… → locale + origin path   (sites with pages.toml)
//!                         Connection: upgrade → to the origin; on its 101 a tunnel joins
//!                         the two connections (tunnel.rs: WebSocket relay or bytes)
//!         ─► 3. edge:     /sitemap.xml, /__edgeseo/… answered here; /robots.txt is the
//!                         origin's with the sitemap announced
//!         ─► 4. suggest:  English page, human, site wants redirects → 302 to the locale URL
//!         ─► 5. cache:    a fresh entry is served (HIT); a stale one too (STALE), refreshed in
//!                         the background by stages 7 to 9; otherwise this request fills it
//!         ─► 6. admit:    body size limit                  (declared too large → 413)
//!         ─► 7. forward:  origin path, hop-by-hop stripped, X-Forwarded-*/Via, body streamed
//!                         (origin down or 5xx with a stored page → that page, STALE)
//!         ─► 8. respond:  hop-by-hop stripped, Via; localized pages rewritten as they stream;
//!                         text compressed in the client's preferred coding
//!         ─► 9. store:    a cacheable response fills the entry as it streams (MISS)
//! failure at any stage ─► ProxyError::into_response (the one place errors become statuses)
//! ```
//!
//! Stages 7 to 9 are one function, `fetch_render`, which a background refresh runs too.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::access::Note;
use crate::acme::Challenges;
use crate::body::{self, Body, BoxError};
use crate::cache::policy::RequestCaching;
use crate::cache::{self, CacheStatus, Entry, Fill, FillGuard, Freshness, Key, PageCache};
use crate::chat::ChatService;
use crate::codec::{self, Coding};
use crate::config::{SiteSeo, SuggestMode};
use crate::edge;
use crate::error::{ClientBodyError, ProxyError};
use crate::forward::{self, ClientSide};
use crate::locale::Locale;
use crate::metrics::Metrics;
use crate::request;
use crate::rewrite::{self, RewriteOptions};
use crate::seo::{HeadPlan, PageRequest};
use crate::server::{ConnInfo, Handler};
use crate::sites::{Runtime, SiteState};
use crate::suggest;
use crate::tunnel;

mod answers;
mod caching;
mod localize;
mod origin;
mod upgrade;

use answers::robots_base;
use answers::{
    acme_answer, chat_request, edge_response, https_redirect, is_acme_challenge, is_https, robots,
};
use caching::CacheStep;
use localize::{localize, suggest_redirect};
use origin::{Fetched, admit, compress, fetch_render};
use upgrade::{upgrade, upgrade_protocol};

pub struct Proxy {
    runtime: Arc<ArcSwap<Runtime>>,
    cache: Arc<PageCache>,
    metrics: Arc<Metrics>,
    /// Tokens of open ACME HTTP-01 validations.
    challenges: Arc<Challenges>,
}

/// What the stages learn about one request and hand to the next.
#[derive(Clone)]
struct RequestCtx {
    conn: ConnInfo,
    /// The client's address: the peer, or the nearest untrusted address a trusted proxy
    /// forwarded for.
    client_ip: std::net::IpAddr,
    runtime: Arc<Runtime>,
    /// The host as the client sent it (port included).
    host: String,
    site: Arc<SiteState>,
    /// The coding the response goes out in (and the one asked of the origin): the client's
    /// favourite of those edgeseo encodes.
    coding: Coding,
    /// Set for sites with localized SEO.
    page: Option<Page>,
    /// The visitor's own language choices: the switcher's cookie and `Accept-Language`, read
    /// once, on first use (a cache hit never needs them).
    choices: std::sync::OnceLock<LanguageChoices>,
}

/// What a visitor said about their language, before any decision is made from it.
#[derive(Clone, Debug)]
struct LanguageChoices {
    /// The locale picked with the language switcher (`edgeseo_locale` cookie).
    chosen: Option<Locale>,
    /// `Accept-Language`'s primary subtags, most preferred first.
    languages: Vec<String>,
}

impl RequestCtx {
    fn choices(&self, headers: &HeaderMap) -> &LanguageChoices {
        self.choices.get_or_init(|| LanguageChoices {
            chosen: suggest::chosen_locale(headers, suggest::COOKIE),
            languages: suggest::languages(headers),
        })
    }
}

/// A request for a localized site, after stage 2.
#[derive(Clone)]
struct Page {
    seo: Arc<SiteSeo>,
    locale: Locale,
    /// The path the origin knows, without the locale prefix or query.
    origin_path: String,
    /// `scheme://host` for absolute URLs.
    base: String,
}

impl Proxy {
    pub fn new(
        runtime: Arc<ArcSwap<Runtime>>,
        cache: Arc<PageCache>,
        metrics: Arc<Metrics>,
        challenges: Arc<Challenges>,
    ) -> Self {
        Self {
            runtime,
            cache,
            metrics,
            challenges,
        }
    }

    async fn pipeline(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
        note: &mut Note,
    ) -> Result<Response<Body>, ProxyError> {
        let host = request::admit(&mut req)?;
        let ctx = self.route(&req, host, conn)?;
        note.set_site(&ctx.site.name);
        if let Some(key_authorization) = self.challenges.http01(req.uri().path()) {
            return Ok(acme_answer(key_authorization));
        }
        let https = &ctx.site.config.https;
        let secure = is_https(&req, &ctx);
        if !secure && https.redirect && !is_acme_challenge(req.uri().path()) {
            return Ok(https_redirect(&req, &ctx));
        }
        let hsts = https.hsts.clone().filter(|_| secure);
        let mut resp = self.site_response(req, ctx, note).await?;
        // Only over HTTPS: a browser ignores it on plain HTTP, where an attacker could forge it.
        if let Some(hsts) = hsts {
            resp.headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, hsts);
        }
        Ok(resp)
    }

    /// Stage 1, route: pick the site by the requested host; with TLS the host must belong to the
    /// same site as the server name the certificate was chosen for.
    fn route(
        &self,
        req: &Request<Incoming>,
        host: String,
        conn: &ConnInfo,
    ) -> Result<RequestCtx, ProxyError> {
        let runtime = self.runtime.load_full();
        let site = runtime
            .route(&host)
            .ok_or_else(|| ProxyError::UnknownHost(host.clone()))?
            .clone();
        if let Some(sni) = &conn.sni {
            let same = runtime.route(sni).is_some_and(|s| Arc::ptr_eq(s, &site));
            if !same {
                return Err(ProxyError::MisdirectedSni {
                    host,
                    sni: sni.clone(),
                });
            }
        }
        // The one place the client's address is worked out: the site knows its trusted proxies.
        let client_ip = match &site.config.seo {
            Some(seo) => suggest::client_ip(conn.peer.ip(), req.headers(), seo),
            None => conn.peer.ip(),
        };
        Ok(RequestCtx {
            conn: conn.clone(),
            client_ip,
            runtime,
            host,
            coding: codec::negotiate(req.headers().get(header::ACCEPT_ENCODING)),
            site,
            page: None,
            choices: Default::default(),
        })
    }

    /// Stages 2 to 9, for a request routed to its site.
    async fn site_response(
        &self,
        req: Request<Incoming>,
        mut ctx: RequestCtx,
        note: &mut Note,
    ) -> Result<Response<Body>, ProxyError> {
        note.set_client_ip(|| ctx.client_ip);
        if let Some(chat) = &ctx.site.chat
            && req.method() == Method::POST
            && req.uri().path() == chat.path()
        {
            note.set_chat();
            return Ok(chat_request(req, chat, &ctx).await);
        }
        // 2. localize
        ctx.page = localize(&req, &ctx);
        note.set_locale(ctx.page.as_ref().map(|p| p.locale));
        match upgrade_protocol(&req) {
            Some(protocol) if ctx.site.config.websocket.enabled => {
                return upgrade(req, &ctx, protocol).await;
            }
            // An extended CONNECT that is not proxied as an upgrade goes nowhere.
            _ if req.method() == Method::CONNECT => {
                return Err(ProxyError::MethodNotAllowed(Method::CONNECT));
            }
            _ => {}
        }
        // 3. edge
        if let Some(resp) = edge_response(&req, &ctx) {
            return Ok(compress(resp, &ctx));
        }
        if let Some(base) = robots_base(&req, &ctx) {
            return robots(req, &ctx, &base).await;
        }
        // 4. suggest
        if let Some(resp) = suggest_redirect(&req, &ctx, note).await {
            return Ok(resp);
        }
        // 5. cache
        let (store, stale) = match self.cache_lookup(&req, &ctx).await {
            CacheStep::Serve(resp) => return Ok(resp),
            CacheStep::Fetch { store, stale } => (store, stale),
        };
        // 6. admit
        let limit = ctx.site.config.limits.max_request_body;
        admit(&req, limit)?;
        // 7 to 9. forward, respond, store
        let head_only = req.method() == Method::HEAD;
        let req = req.map(body::boxed);
        match fetch_render(&self.cache, req, &ctx, limit, head_only, store, stale).await? {
            Fetched::Rendered(resp, status) => {
                self.cache.counters.count(status);
                Ok(resp)
            }
            Fetched::Stale(entry, headers, failure) => {
                if let Some(err) = failure {
                    tracing::warn!(error = %err, "origin failed; serving the stale page");
                    if let Some(kind) = err.origin_failure() {
                        self.metrics.origin_failure(note.site(), kind);
                    }
                }
                Ok(self.serve(&entry, CacheStatus::Stale, &headers, head_only))
            }
        }
    }
}

impl Handler for Proxy {
    async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        let mut note = Note::new(&req, conn.peer.ip());
        let method = req.method().clone();
        let uri = req.uri().clone();
        let resp = match self.pipeline(req, conn, &mut note).await {
            Ok(resp) => resp,
            Err(err) if err.status().is_client_error() => {
                tracing::info!(peer = %conn.peer, %method, %uri, error = %err, "client error");
                err.into_response()
            }
            Err(err) => {
                tracing::warn!(peer = %conn.peer, %method, %uri, error = %err, "request failed");
                if let Some(kind) = err.origin_failure() {
                    self.metrics.origin_failure(note.site(), kind);
                }
                err.into_response()
            }
        };
        self.metrics.request(&note, &resp, note.elapsed());
        note.finish(resp)
    }
}
