//! The request pipeline, top to bottom. Every request passes these stages in this order:
//!
//! ```text
//! request ─► 1. route:    admitted (request.rs: CONNECT → 405, ambiguous Host → 400,
//!                         dot segments resolved), then Host/:authority → site
//!                                                          (unknown → 421, never forwarded)
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

pub struct Proxy {
    runtime: Arc<ArcSwap<Runtime>>,
    cache: Arc<PageCache>,
    metrics: Arc<Metrics>,
}

/// What the cache stage decided.
enum CacheStep {
    Serve(Response<Body>),
    Fetch {
        /// Set when this request fills the entry.
        store: Option<Filling>,
        /// A stored page (and the request's headers) to serve if the origin fails.
        stale: Option<(Arc<Entry>, HeaderMap)>,
    },
}

impl CacheStep {
    fn bypass() -> CacheStep {
        CacheStep::Fetch {
            store: None,
            stale: None,
        }
    }
}

/// The entry a request fills.
struct Filling {
    key: Key,
    guard: FillGuard,
    /// Only a response the origin marks `public` may fill it (the request carries cookies).
    public_only: bool,
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

/// Largest origin robots.txt edgeseo will extend; a larger one passes through untouched.
const MAX_ROBOTS: usize = 512 * 1024;

impl Proxy {
    pub fn new(
        runtime: Arc<ArcSwap<Runtime>>,
        cache: Arc<PageCache>,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            runtime,
            cache,
            metrics,
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

    /// Stage 5, cache: answer from the cache, or say how to fetch: as the one request that fills
    /// the entry, or uncached; with a stale entry to fall back on if the origin fails.
    async fn cache_lookup(&self, req: &Request<Incoming>, ctx: &RequestCtx) -> CacheStep {
        let policy = &ctx.site.config.cache;
        let caching = cache::policy::request_caching(req.method(), req.headers(), policy);
        if caching == RequestCaching::Bypass {
            return CacheStep::bypass();
        }
        let public_only = caching == RequestCaching::PublicOnly;
        let key = cache_key(req, ctx);
        let head_only = req.method() == Method::HEAD;
        let mut waited = false;
        loop {
            let entry = self
                .cache
                .get(&key)
                .await
                .filter(|e| !public_only || cache::policy::is_public(&e.headers));
            let fallback = entry.clone().map(|e| (e, req.headers().clone()));
            match entry.as_ref().map(|e| (e, e.freshness())) {
                Some((entry, Freshness::Fresh)) => {
                    return CacheStep::Serve(self.serve(
                        entry,
                        CacheStatus::Hit,
                        req.headers(),
                        head_only,
                    ));
                }
                Some((entry, Freshness::Revalidate)) => {
                    // A refresh would carry this visitor's cookies to the origin and into the
                    // shared entry; one without them comes along soon enough.
                    if !public_only && entry.begin_refresh() {
                        spawn_refresh(
                            ctx.clone(),
                            req,
                            key.clone(),
                            entry.clone(),
                            self.cache.clone(),
                        );
                    }
                    return CacheStep::Serve(self.serve(
                        entry,
                        CacheStatus::Stale,
                        req.headers(),
                        head_only,
                    ));
                }
                _ => {}
            }
            // HEAD is answered from a GET entry but never fills one.
            if head_only || waited {
                return CacheStep::Fetch {
                    store: None,
                    stale: fallback,
                };
            }
            match self.cache.begin_fill(&key) {
                Fill::Leader(guard) => {
                    return CacheStep::Fetch {
                        store: Some(Filling {
                            key,
                            guard,
                            public_only,
                        }),
                        stale: fallback,
                    };
                }
                Fill::Follower(mut done) => {
                    // Another request is fetching this page: wait for its entry, then look again.
                    let patience = ctx.site.config.origin.response_timeout + Duration::from_secs(5);
                    let _ = tokio::time::timeout(patience, done.changed()).await;
                    waited = true;
                }
            }
        }
    }

    fn serve(
        &self,
        entry: &Entry,
        status: CacheStatus,
        request: &HeaderMap,
        head_only: bool,
    ) -> Response<Body> {
        self.cache.counters.count(status);
        entry.respond(status, request, head_only)
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
        })
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

/// The chat endpoint: answered here, never forwarded (forward mode is the chat's own business).
async fn chat_request(
    req: Request<Incoming>,
    chat: &ChatService,
    ctx: &RequestCtx,
) -> Response<Body> {
    // The page the widget sits on tells the language to fall back on.
    let page_locale = req
        .headers()
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split("://").nth(1))
        .and_then(|r| r.find('/').map(|i| &r[i..]))
        .map_or(Locale::En, |path| Locale::split_path(path).0);
    let (parts, body) = req.into_parts();
    let client = client_side(ctx, parts.version);
    chat.handle(parts, body, &client, ctx.client_ip, page_locale)
        .await
}

/// The client side of a request, for the X-Forwarded-* and Via headers sent upstream.
fn client_side(ctx: &RequestCtx, version: http::Version) -> ClientSide<'_> {
    let ip = ctx.conn.peer.ip();
    ClientSide {
        ip,
        proto: if ctx.conn.tls { "https" } else { "http" },
        host: &ctx.host,
        version,
        trusted: ctx
            .site
            .config
            .seo
            .as_ref()
            .is_some_and(|seo| seo.is_trusted_proxy(ip)),
    }
}

/// Stage 2, localize: the locale of the URL and the origin path behind it.
fn localize(req: &Request<Incoming>, ctx: &RequestCtx) -> Option<Page> {
    let seo = ctx.site.config.seo.clone()?;
    let (locale, origin_path) = Locale::split_path(req.uri().path());
    if !seo.locales.contains(&locale) {
        // A disabled locale's prefix is an ordinary origin path.
        return Some(Page {
            base: base_url(&seo, req, ctx),
            locale: Locale::En,
            origin_path: req.uri().path().to_string(),
            seo,
        });
    }
    Some(Page {
        base: base_url(&seo, req, ctx),
        locale,
        origin_path: origin_path.to_string(),
        seo,
    })
}

/// The site's public origin, or the scheme and host this request came in with.
fn base_url(seo: &SiteSeo, req: &Request<Incoming>, ctx: &RequestCtx) -> String {
    if let Some(origin) = &seo.public_origin {
        return origin.clone();
    }
    let https = is_https(req, ctx);
    let scheme = if https { "https" } else { "http" };
    // One spelling per site address, so that `Shop.test.:80` and `shop.test` share a cache entry.
    let Ok(authority) = ctx.host.parse::<http::uri::Authority>() else {
        return format!("{scheme}://{}", ctx.host.to_ascii_lowercase());
    };
    let host = authority.host().trim_end_matches('.').to_ascii_lowercase();
    let default_port = if https { 443 } else { 80 };
    match authority.port_u16().filter(|&p| p != default_port) {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// Whether the visitor reached the site over HTTPS: on edgeseo's TLS listener, or through a
/// trusted proxy that terminated TLS and says so (`X-Forwarded-Proto: https`).
fn is_https(req: &Request<Incoming>, ctx: &RequestCtx) -> bool {
    ctx.conn.tls
        || ctx.site.config.seo.as_ref().is_some_and(|seo| {
            seo.is_trusted_proxy(ctx.conn.peer.ip())
                && req
                    .headers()
                    .get("x-forwarded-proto")
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
        })
}

/// An ACME HTTP-01 challenge: answered over plain HTTP by definition, never redirected.
fn is_acme_challenge(path: &str) -> bool {
    path.starts_with("/.well-known/acme-challenge/")
}

/// 308 to the same URL over HTTPS (308 keeps the method and body, unlike 301).
fn https_redirect(req: &Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
    // The port the plain request came in on means nothing for HTTPS.
    let host = ctx
        .host
        .parse::<http::uri::Authority>()
        .map_or_else(|_| ctx.host.clone(), |a| a.host().to_string())
        .to_ascii_lowercase();
    let port = ctx
        .site
        .config
        .https
        .port
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(value) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, value);
    }
    resp
}

/// Stage 3, edge: what edgeseo answers itself.
fn edge_response(req: &Request<Incoming>, ctx: &RequestCtx) -> Option<Response<Body>> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let path = req.uri().path();
    if path.strip_prefix(edge::PREFIX) == Some("widget.js")
        && ctx.site.chat.as_ref().is_some_and(|c| c.widget())
    {
        return Some(edge::widget_script());
    }
    let page = ctx.page.as_ref()?;
    let query = req.uri().query().unwrap_or("");
    if path == "/sitemap.xml" {
        return Some(edge::sitemap(&page.seo, &page.base));
    }
    let name = path.strip_prefix(edge::PREFIX)?;
    Some(match name {
        "locale.js" => edge::locale_script(),
        "lang" => edge::choose_locale(query, suggest::COOKIE),
        "suggest" => {
            let target = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "path")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_else(|| "/".into());
            let (locale, origin_path) = Locale::split_path(target.split('?').next().unwrap_or("/"));
            let offer = if locale == Locale::En {
                // A banner is cheap to withhold: any crawler claim counts, unverified.
                let crawler = !matches!(
                    suggest::classify_agent(req.headers()),
                    suggest::Agent::Human
                );
                let visitor = visitor(req, ctx, crawler);
                suggest::decide(
                    &page.seo,
                    ctx.runtime.geoip(&ctx.site),
                    &visitor,
                    origin_path,
                )
            } else {
                None
            };
            edge::suggestion(offer, origin_path)
        }
        _ => return None,
    })
}

fn visitor(req: &Request<Incoming>, ctx: &RequestCtx, crawler: bool) -> suggest::Visitor {
    suggest::Visitor {
        ip: ctx.client_ip,
        crawler,
        chosen: suggest::chosen_locale(req.headers(), suggest::COOKIE),
        languages: suggest::languages(req.headers()),
    }
}

/// The protocol a request asks to switch to, if it asks: HTTP/1.1's `Upgrade`, or the
/// `:protocol` of HTTP/2's extended CONNECT (RFC 8441). `h2c` is not passed on: it asks this hop
/// for HTTP/2, which edgeseo offers itself.
fn upgrade_protocol(req: &Request<Incoming>) -> Option<HeaderValue> {
    if req.method() == Method::CONNECT {
        let protocol = req.extensions().get::<hyper::ext::Protocol>()?;
        return HeaderValue::from_str(protocol.as_str()).ok();
    }
    let asks = req.version() == http::Version::HTTP_11
        && crate::headers::list(req.headers(), header::CONNECTION)
            .any(|token| token.eq_ignore_ascii_case("upgrade"));
    let protocol = req.headers().get(header::UPGRADE)?;
    (asks && !protocol.as_bytes().eq_ignore_ascii_case(b"h2c")).then(|| protocol.clone())
}

/// Stage 2, localize, upgrades: the request goes to the origin as one; when the origin switches
/// protocols (101), the client's and the origin's connections are joined by a tunnel that
/// outlives this request. An origin that declines is answered like any other response.
async fn upgrade(
    mut req: Request<Incoming>,
    ctx: &RequestCtx,
    protocol: HeaderValue,
) -> Result<Response<Body>, ProxyError> {
    let websocket = protocol.as_bytes().eq_ignore_ascii_case(b"websocket");
    // HTTP/2's extended CONNECT becomes HTTP/1.1's upgrade handshake towards the origin.
    let over_h2 = req.method() == Method::CONNECT;
    let client_side = hyper::upgrade::on(&mut req);
    let mut upstream_req = forward_request(req.map(|_| body::empty()), ctx, Coding::Identity, 0);
    if over_h2 {
        *upstream_req.method_mut() = Method::GET;
    }
    let headers = upstream_req.headers_mut();
    if over_h2 && websocket {
        // RFC 8441 has no key; the origin's HTTP/1.1 handshake needs one.
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        if let Ok(key) = HeaderValue::from_str(&key) {
            headers.insert(header::SEC_WEBSOCKET_KEY, key);
        }
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
    if websocket {
        // The relay reads each message, and speaks no extension: compressed frames
        // (permessage-deflate) would be unreadable to it, so none may be agreed.
        headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    let mut resp = ctx.site.upstream.send(upstream_req).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(respond(resp, ctx, false).0);
    }
    let origin_side = hyper::upgrade::on(&mut resp);
    let (mut parts, _) = resp.into_parts();
    let agreed = parts.headers.get(header::UPGRADE).cloned();
    forward::response_headers(&mut parts.headers, parts.version);
    if over_h2 {
        // HTTP/2 accepts with 200 and has no connection-level headers; the accept value
        // answered the key edgeseo made up.
        parts.status = StatusCode::OK;
        parts.headers.remove(header::SEC_WEBSOCKET_ACCEPT);
    } else {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(agreed) = agreed {
            parts.headers.insert(header::UPGRADE, agreed);
        }
    }
    let limits = ctx.site.config.websocket.clone();
    // An HTTP/2 connection carrying the tunnel is not idle.
    let busy = ctx.conn.busy();
    tokio::spawn(async move {
        let _busy = busy;
        // The client's side is ready once the 101 has been written to it.
        match tokio::try_join!(client_side, origin_side) {
            Ok((client, origin)) => {
                let ending = if websocket {
                    tunnel::websocket(client, origin, &limits).await
                } else {
                    tunnel::bytes(client, origin, limits.idle_timeout).await
                };
                tracing::debug!(?ending, "upgraded connection ended");
            }
            Err(e) => tracing::debug!(error = %e, "upgrade did not complete"),
        }
    });
    Ok(Response::from_parts(parts, body::empty()))
}

/// Stage 4, suggest: on sites that redirect, a human on an English page goes to their locale's URL.
/// Crawlers never do; with `verify_crawlers`, a claim that reverse DNS does not confirm counts
/// as a human.
async fn suggest_redirect(
    req: &Request<Incoming>,
    ctx: &RequestCtx,
    note: &mut Note,
) -> Option<Response<Body>> {
    let page = ctx.page.as_ref()?;
    if page.seo.suggest != SuggestMode::Redirect
        || page.locale != Locale::En
        || req.method() != Method::GET
    {
        return None;
    }
    let crawler = match suggest::classify_agent(req.headers()) {
        suggest::Agent::Human => false,
        suggest::Agent::Bot => true,
        suggest::Agent::Verifiable(_) if !page.seo.verify_crawlers => true,
        suggest::Agent::Verifiable(claim) => {
            let verified = suggest::verify_crawler(ctx.client_ip, &claim).await;
            if verified {
                note.crawler_verified();
            }
            verified
        }
    };
    let visitor = visitor(req, ctx, crawler);
    let target = suggest::decide(
        &page.seo,
        ctx.runtime.geoip(&ctx.site),
        &visitor,
        &page.origin_path,
    )?;
    let mut location = target.localize_path(&page.origin_path);
    if let Some(q) = req.uri().query() {
        location.push('?');
        location.push_str(q);
    }
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::FOUND;
    let headers = resp.headers_mut();
    headers.insert(header::LOCATION, HeaderValue::from_str(&location).ok()?);
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    headers.insert(
        header::VARY,
        HeaderValue::from_static("Accept-Language, Cookie, User-Agent"),
    );
    Some(resp)
}

/// Stage 6, admit: refuse a body declared larger than the site allows before reading any of it.
fn admit(req: &Request<Incoming>, limit: u64) -> Result<(), ProxyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit => Err(ProxyError::BodyTooLarge),
        _ => Ok(()),
    }
}

/// Stage 7, forward: the request as the origin gets it. The body streams through a size limit, so
/// an undeclared (chunked) body that grows too large fails the upstream request with 413. The
/// origin is asked for one coding only, `accept`, so that what it may answer is known from the
/// cache key, and the rewriter can always read it.
fn forward_request(
    req: Request<Body>,
    ctx: &RequestCtx,
    accept: Coding,
    limit: u64,
) -> Request<Body> {
    let (mut parts, incoming) = req.into_parts();
    forward::request_headers(&mut parts.headers, &client_side(ctx, parts.version));
    match accept {
        Coding::Identity => parts.headers.remove(header::ACCEPT_ENCODING),
        coding => parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static(coding.name()),
        ),
    };
    if let Some(page) = &ctx.page {
        let mut path = page.origin_path.clone();
        if let Some(q) = parts.uri.query() {
            path.push('?');
            path.push_str(q);
        }
        if let Ok(uri) = path.parse() {
            parts.uri = uri;
        }
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // Tagged so that a body the client breaks is told apart from an origin failure.
    let incoming = incoming.map_err(|e| -> BoxError { Box::new(ClientBodyError(e)) });
    Request::from_parts(parts, body::boxed(Limited::new(incoming, limit)))
}

/// What stages 7 to 9 made of a request.
enum Fetched {
    /// The origin's answer as the client gets it, and whether it fills the cache (`Miss`) or
    /// not (`Bypass`).
    Rendered(Response<Body>, CacheStatus),
    /// The origin failed (the error) or answered 5xx, and this stored page stands in, with the
    /// request headers it is served for.
    Stale(Arc<Entry>, HeaderMap, Option<ProxyError>),
}

/// Stages 7 to 9, for a visitor and a background refresh alike: the request as the origin gets
/// it, the answer as the client gets it, and the cache entry `store` filled as it streams. With
/// a `stale` page, an origin failure or 5xx gives that page back instead.
async fn fetch_render(
    cache: &Arc<PageCache>,
    req: Request<Body>,
    ctx: &RequestCtx,
    limit: u64,
    head_only: bool,
    store: Option<Filling>,
    stale: Option<(Arc<Entry>, HeaderMap)>,
) -> Result<Fetched, ProxyError> {
    let upstream_req = forward_request(req, ctx, ctx.coding, limit);
    let resp = match (ctx.site.upstream.send(upstream_req).await, stale) {
        (Err(err), Some((entry, headers))) => return Ok(Fetched::Stale(entry, headers, Some(err))),
        (Ok(resp), Some((entry, headers))) if resp.status().is_server_error() => {
            return Ok(Fetched::Stale(entry, headers, None));
        }
        (result, _) => result?,
    };
    let (resp, rewritten) = respond(resp, ctx, head_only);
    let (resp, status) = fill(cache, resp, rewritten, ctx, store);
    Ok(Fetched::Rendered(resp, status))
}

/// Stage 9, store: a cacheable response fills the entry while it streams to the client.
fn fill(
    cache: &Arc<PageCache>,
    mut resp: Response<Body>,
    rewritten: bool,
    ctx: &RequestCtx,
    store: Option<Filling>,
) -> (Response<Body>, CacheStatus) {
    let store = store.filter(|f| !f.public_only || cache::policy::is_public(resp.headers()));
    let status = match &store {
        Some(_) => CacheStatus::Miss,
        None => CacheStatus::Bypass,
    };
    resp.headers_mut()
        .insert(cache::STATUS_HEADER, status.header());
    let Some(Filling { key, guard, .. }) = store else {
        return (resp, status);
    };
    let Some(lifetime) = entry_lifetime(&resp, rewritten, ctx) else {
        return (resp, status);
    };
    // A page rewritten for a locale is that locale's; anything else is shared by all.
    let key = if rewritten { key } else { key.shared() };
    let (parts, body) = resp.into_parts();
    let store = cache::Store {
        cache: cache.clone(),
        key,
        status: parts.status,
        headers: parts.headers.clone(),
        lifetime,
        max: ctx.site.config.cache.max_entry_size,
        guard,
    };
    (Response::from_parts(parts, cache::tee(body, store)), status)
}

/// Stage 8, respond: the origin's response as the client gets it. HTML pages of localized sites are
/// rewritten as they stream; other text is compressed where the origin did not; everything else
/// passes byte for byte. Also says whether the body was rewritten for the request's locale.
fn respond(resp: Response<Incoming>, ctx: &RequestCtx, head_only: bool) -> (Response<Body>, bool) {
    let (mut parts, incoming) = resp.into_parts();
    forward::response_headers(&mut parts.headers, parts.version);
    // The status is long gone to the client (and to the access log): say what happened.
    let site = ctx.site.name.clone();
    let path = ctx.page.as_ref().map(|p| p.origin_path.clone());
    let body = body::boxed(incoming.map_err(move |e| {
        tracing::warn!(%site, ?path, error = %e, "origin response cut off mid-stream");
        e
    }));
    match &ctx.page {
        Some(page) => match rewrite_page(&mut parts, body, page, ctx, head_only) {
            Ok(body) => (Response::from_parts(parts, body), true),
            Err(body) => (compress(Response::from_parts(parts, body), ctx), false),
        },
        None => (compress(Response::from_parts(parts, body), ctx), false),
    }
}

/// Compression at the edge, where the site wants it.
fn compress(resp: Response<Body>, ctx: &RequestCtx) -> Response<Body> {
    let settings = &ctx.site.config.compress;
    if !settings.enabled {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let body = codec::encode_response(
        parts.status,
        &mut parts.headers,
        body,
        ctx.coding,
        settings.min_size,
    );
    Response::from_parts(parts, body)
}

/// A localized page's body rewritten as it streams (decoded from the origin's coding, encoded in
/// the client's); gives the body back untouched when it is not a page edgeseo can rewrite.
fn rewrite_page(
    parts: &mut http::response::Parts,
    body: Body,
    page: &Page,
    ctx: &RequestCtx,
    head_only: bool,
) -> Result<Body, Body> {
    if page.locale != Locale::En
        && let Some(location) = parts
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
        && let Some(localized) =
            crate::rewrite::links::localize(location, page.locale, own_host(ctx))
        && let Ok(value) = HeaderValue::from_str(&localized)
    {
        parts.headers.insert(header::LOCATION, value);
    }

    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let media = crate::headers::media_type_of(&content_type);
    let is_html = media == "text/html" || media == "application/xhtml+xml";
    let charset = rewrite::charset_of(&content_type);
    let coding = codec::Coding::from_header(parts.headers.get(header::CONTENT_ENCODING));
    let rewritable = parts.status == StatusCode::OK && is_html && rewrite::can_rewrite(charset);
    let (Some(coding), true) = (coding, rewritable) else {
        return Err(body);
    };
    let output = if ctx.site.config.compress.enabled {
        ctx.coding
    } else {
        coding
    };
    parts.headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(page.locale.tag()),
    );
    codec::mark_encoded(&mut parts.headers, output);
    if head_only {
        return Ok(body);
    }
    let plan = HeadPlan::build(
        &page.seo,
        PageRequest {
            locale: page.locale,
            origin_path: &page.origin_path,
            base: &page.base,
        },
    );
    let site = ctx.site.clone();
    let body = rewrite::rewrite(
        body,
        RewriteOptions {
            plan: Arc::new(plan),
            charset,
            coding,
            output,
            max_memory: page.seo.rewrite.max_memory,
            own_host: Arc::new(move |host: &str| site.owns_host(host)),
            body_end: Some(body_end_scripts(&ctx.site, page.locale)),
            translations: page.seo.translations.get(&page.locale).cloned(),
        },
    );
    Ok(body)
}

/// What a localized page gets before `</body>`: the locale switcher, and the chat widget where
/// the site has one.
fn body_end_scripts(site: &SiteState, locale: Locale) -> String {
    let mut html = edge::LOCALE_SCRIPT_TAG.to_string();
    if let Some(chat) = site.chat.as_ref().filter(|c| c.widget()) {
        html.push_str(&edge::widget_tag(chat.path(), locale));
    }
    html
}

fn own_host(ctx: &RequestCtx) -> impl Fn(&str) -> bool + '_ {
    move |host| ctx.site.owns_host(host)
}

/// The base URL a localized site's `/robots.txt` announces its sitemap under; `None` for any
/// other request.
fn robots_base(req: &Request<Incoming>, ctx: &RequestCtx) -> Option<String> {
    let page = ctx.page.as_ref()?;
    (page.locale == Locale::En && page.origin_path == "/robots.txt" && req.method() == Method::GET)
        .then(|| page.base.clone())
}

/// Stage 3, edge, `/robots.txt` of a localized site: the origin's, read as plain text, with the
/// sitemap announced; never cached (it follows the rules, which a reload changes).
async fn robots(
    req: Request<Incoming>,
    ctx: &RequestCtx,
    base: &str,
) -> Result<Response<Body>, ProxyError> {
    let limit = ctx.site.config.limits.max_request_body;
    let upstream_req = forward_request(req.map(body::boxed), ctx, Coding::Identity, limit);
    let resp = ctx.site.upstream.send(upstream_req).await?;
    let ok =
        resp.status() == StatusCode::OK && !resp.headers().contains_key(header::CONTENT_ENCODING);
    if !ok {
        return Ok(if resp.status() == StatusCode::NOT_FOUND {
            edge::robots(None, base)
        } else {
            respond(resp, ctx, false).0
        });
    }
    Ok(
        match Limited::new(resp.into_body(), MAX_ROBOTS).collect().await {
            Ok(text) => edge::robots(Some(&text.to_bytes()), base),
            Err(e) => {
                tracing::warn!(error = %e, "origin robots.txt unreadable; serving a default one");
                edge::robots(None, base)
            }
        },
    )
}

/// The cache key of a request: site, locale, normalized target and content-coding variant.
fn cache_key(req: &Request<Incoming>, ctx: &RequestCtx) -> Key {
    let (locale, path) = match &ctx.page {
        Some(page) => (Some(page.locale), page.origin_path.as_str()),
        None => (None, req.uri().path()),
    };
    Key {
        site: ctx.site.name.clone(),
        locale,
        target: cache::normalize_target(path, req.uri().query()),
        coding: ctx.coding,
        base: ctx
            .page
            .as_ref()
            .filter(|page| page.seo.public_origin.is_none())
            .map(|page| page.base.as_str().into()),
    }
}

/// How long a response may be kept: the origin's word, or a page rule's `cache_ttl` for pages.
fn entry_lifetime(
    resp: &Response<Body>,
    rewritten: bool,
    ctx: &RequestCtx,
) -> Option<cache::Lifetime> {
    let ttl_override = match &ctx.page {
        Some(page) if rewritten => page
            .seo
            .page_rule(&page.origin_path)
            .and_then(|r| r.cache_ttl),
        _ => None,
    };
    cache::policy::lifetime(
        resp.status(),
        resp.headers(),
        &ctx.site.config.cache,
        ttl_override,
        SystemTime::now(),
    )
}

/// stale-while-revalidate: fetches the page again in the background, exactly as a visitor's
/// request would (`fetch_render`), and the new response replaces the entry if it may be
/// stored. The stale entry keeps serving meanwhile, and stays if the origin fails.
fn spawn_refresh(
    ctx: RequestCtx,
    req: &Request<Incoming>,
    key: Key,
    stale: Arc<Entry>,
    cache: Arc<PageCache>,
) {
    let mut headers = req.headers().clone();
    for conditional in [
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::RANGE,
    ] {
        headers.remove(conditional);
    }
    let mut refresh = Request::new(body::empty());
    *refresh.uri_mut() = req.uri().clone();
    *refresh.headers_mut() = headers;
    *refresh.version_mut() = req.version();
    tokio::spawn(async move {
        // A request already filling the entry makes this refresh unnecessary.
        if let Fill::Leader(guard) = cache.begin_fill(&key) {
            let store = Filling {
                key,
                guard,
                public_only: false,
            };
            let fallback = Some((stale.clone(), HeaderMap::new()));
            let refreshed =
                match fetch_render(&cache, refresh, &ctx, 0, false, Some(store), fallback).await {
                    // Reading the body to its end is what fills the entry.
                    Ok(Fetched::Rendered(resp, _)) => drain(resp.into_body()).await,
                    _ => false,
                };
            if !refreshed {
                tracing::warn!("background refresh failed; the stale page keeps serving");
            }
        }
        stale.end_refresh();
    });
}

/// Reads a body to its end; false if it fails.
async fn drain(mut body: Body) -> bool {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return false;
        }
    }
    true
}
