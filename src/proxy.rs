//! The request pipeline, top to bottom. Every request passes these stages in this order:
//!
//! ```text
//! request ─► 1. route:    Host/:authority → site          (unknown → 421, never forwarded)
//!         ─► 2. localize: /id/… /vi/… /th/… → locale + origin path   (sites with pages.toml)
//!         ─► 3. edge:     /sitemap.xml, /__edgeseo/… answered here
//!         ─► 4. suggest:  English page, human, site wants redirects → 302 to the locale URL
//!         ─► 5. admit:    body size limit                  (declared too large → 413)
//!         ─► 6. forward:  origin path, hop-by-hop stripped, X-Forwarded-*/Via, body streamed
//!         ─► 7. respond:  hop-by-hop stripped, Via; localized pages rewritten as they stream
//! failure at any stage ─► ProxyError::into_response (the one place errors become statuses)
//! ```

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::config::{SiteSeo, SuggestMode};
use crate::edge;
use crate::error::ProxyError;
use crate::forward::{self, ClientSide};
use crate::locale::Locale;
use crate::rewrite::{self, RewriteOptions, codec};
use crate::seo::{HeadPlan, PageRequest};
use crate::server::{ConnInfo, Handler};
use crate::sites::{Runtime, SiteState, normalize_host};
use crate::suggest;

pub struct Proxy {
    runtime: Arc<ArcSwap<Runtime>>,
}

/// What the stages learn about one request and hand to the next.
struct RequestCtx<'a> {
    conn: &'a ConnInfo,
    runtime: Arc<Runtime>,
    /// The host as the client sent it (port included).
    host: String,
    site: Arc<SiteState>,
    /// Set for sites with localized SEO.
    page: Option<Page>,
}

/// A request for a localized site, after stage 2.
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
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Self {
        Self { runtime }
    }

    async fn pipeline(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Result<Response<Body>, ProxyError> {
        let mut ctx = self.route(&req, conn)?;
        ctx.page = localize(&req, &ctx);
        if let Some(resp) = edge_response(&req, &ctx) {
            return Ok(resp);
        }
        if let Some(resp) = suggest_redirect(&req, &ctx).await {
            return Ok(resp);
        }
        let limit = ctx.site.config.limits.max_request_body;
        admit(&req, limit)?;
        let wants_robots = ctx.page.as_ref().is_some_and(|p| {
            p.locale == Locale::En && p.origin_path == "/robots.txt" && req.method() == Method::GET
        });
        if wants_robots {
            // Read as plain text so the Sitemap line can be added.
            req.headers_mut().remove(header::ACCEPT_ENCODING);
        }
        let head_only = req.method() == Method::HEAD;
        let upstream_req = forward_request(req, &ctx, limit);
        let resp = ctx.site.upstream.send(upstream_req).await?;
        if wants_robots {
            return Ok(robots(resp, &ctx).await);
        }
        Ok(respond(resp, &ctx, head_only))
    }

    /// Stage 1: pick the site by the requested host; with TLS the host must belong to the same
    /// site as the server name the certificate was chosen for.
    fn route<'a>(
        &self,
        req: &Request<Incoming>,
        conn: &'a ConnInfo,
    ) -> Result<RequestCtx<'a>, ProxyError> {
        let host = request_host(req).ok_or(ProxyError::MissingHost)?;
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
        Ok(RequestCtx {
            conn,
            runtime,
            host,
            site,
            page: None,
        })
    }
}

impl Handler for Proxy {
    async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let version = req.version();
        let resp = match self.pipeline(req, conn).await {
            Ok(resp) => resp,
            Err(err) => {
                tracing::warn!(peer = %conn.peer, %method, %uri, error = %err, "request failed");
                err.into_response()
            }
        };
        tracing::info!(
            target: "edgeseo::access",
            peer = %conn.peer,
            %method,
            %uri,
            ?version,
            status = resp.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
        );
        resp
    }
}

/// The requested host: `:authority` (HTTP/2, absolute-form) or else the Host header.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_string());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// Stage 2: the locale of the URL and the origin path behind it.
fn localize(req: &Request<Incoming>, ctx: &RequestCtx<'_>) -> Option<Page> {
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
fn base_url(seo: &SiteSeo, req: &Request<Incoming>, ctx: &RequestCtx<'_>) -> String {
    if let Some(origin) = &seo.public_origin {
        return origin.clone();
    }
    let forwarded_https = seo.is_trusted_proxy(ctx.conn.peer.ip())
        && req
            .headers()
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let scheme = if ctx.conn.tls || forwarded_https {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{}", ctx.host.to_ascii_lowercase())
}

/// Stage 3: what edgeseo answers itself.
fn edge_response(req: &Request<Incoming>, ctx: &RequestCtx<'_>) -> Option<Response<Body>> {
    let page = ctx.page.as_ref()?;
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return None;
    }
    let path = req.uri().path();
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
                let visitor = visitor(req, ctx, &page.seo, crawler);
                suggest::decide(&page.seo, ctx.runtime.geoip(&ctx.site), &visitor)
            } else {
                None
            };
            edge::suggestion(offer, origin_path)
        }
        _ => return None,
    })
}

fn visitor(
    req: &Request<Incoming>,
    ctx: &RequestCtx<'_>,
    seo: &SiteSeo,
    crawler: bool,
) -> suggest::Visitor {
    suggest::Visitor {
        ip: suggest::client_ip(ctx.conn.peer.ip(), req.headers(), seo),
        crawler,
        chosen: suggest::chosen_locale(req.headers(), suggest::COOKIE),
        languages: suggest::languages(req.headers()),
    }
}

/// Stage 4: on sites that redirect, a human on an English page goes to their locale's URL.
/// Crawlers never do; with `verify_crawlers`, a claim that reverse DNS does not confirm counts
/// as a human.
async fn suggest_redirect(req: &Request<Incoming>, ctx: &RequestCtx<'_>) -> Option<Response<Body>> {
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
        suggest::Agent::Verifiable(claim) => {
            !page.seo.verify_crawlers
                || suggest::verify_crawler(
                    suggest::client_ip(ctx.conn.peer.ip(), req.headers(), &page.seo),
                    &claim,
                )
                .await
        }
    };
    let visitor = visitor(req, ctx, &page.seo, crawler);
    let target = suggest::decide(&page.seo, ctx.runtime.geoip(&ctx.site), &visitor)?;
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

/// Stage 5: refuse a body declared larger than the site allows before reading any of it.
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

/// Stage 6: the request as the origin gets it. The body streams through a size limit, so an
/// undeclared (chunked) body that grows too large fails the upstream request with 413.
fn forward_request(req: Request<Incoming>, ctx: &RequestCtx<'_>, limit: u64) -> Request<Body> {
    let (mut parts, incoming) = req.into_parts();
    let client = ClientSide {
        ip: ctx.conn.peer.ip(),
        proto: if ctx.conn.tls { "https" } else { "http" },
        host: &ctx.host,
        version: parts.version,
    };
    forward::request_headers(&mut parts.headers, &client);
    if let Some(page) = &ctx.page {
        let mut path = page.origin_path.clone();
        if let Some(q) = parts.uri.query() {
            path.push('?');
            path.push_str(q);
        }
        if let Ok(uri) = path.parse() {
            parts.uri = uri;
        }
        // Ask only for codings the rewriter can read.
        let accepted = parts
            .headers
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .and_then(codec::decodable_accept_encoding);
        match accepted {
            Some(v) => parts.headers.insert(header::ACCEPT_ENCODING, v),
            None => parts.headers.remove(header::ACCEPT_ENCODING),
        };
    }
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Request::from_parts(parts, body::boxed(Limited::new(incoming, limit)))
}

/// Stage 7: the origin's response as the client gets it. HTML pages of localized sites are
/// rewritten as they stream; everything else passes byte for byte.
fn respond(resp: Response<Incoming>, ctx: &RequestCtx<'_>, head_only: bool) -> Response<Body> {
    let (mut parts, incoming) = resp.into_parts();
    forward::response_headers(&mut parts.headers, parts.version);
    let body = body::boxed(incoming);
    let Some(page) = &ctx.page else {
        return Response::from_parts(parts, body);
    };
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
    let is_html =
        content_type.starts_with("text/html") || content_type.starts_with("application/xhtml+xml");
    let charset = rewrite::charset_of(&content_type);
    let coding = codec::Coding::from_header(parts.headers.get(header::CONTENT_ENCODING));
    let rewritable = parts.status == StatusCode::OK && is_html && rewrite::can_rewrite(charset);
    let (Some(coding), true) = (coding, rewritable) else {
        return Response::from_parts(parts, body);
    };

    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(page.locale.tag()),
    );
    // The body differs from the origin's: its validator can only be weak.
    if let Some(etag) = parts
        .headers
        .get(header::ETAG)
        .and_then(|v| v.to_str().ok())
        && !etag.starts_with("W/")
        && let Ok(weak) = HeaderValue::from_str(&format!("W/{etag}"))
    {
        parts.headers.insert(header::ETAG, weak);
    }
    if head_only {
        return Response::from_parts(parts, body);
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
            max_memory: page.seo.rewrite.max_memory,
            own_host: Arc::new(move |host: &str| site_owns_host(&site, host)),
            body_end: Some(edge::LOCALE_SCRIPT_TAG.to_string()),
        },
    );
    Response::from_parts(parts, body)
}

fn own_host<'a>(ctx: &'a RequestCtx<'_>) -> impl Fn(&str) -> bool + 'a {
    move |host| site_owns_host(&ctx.site, host)
}

fn site_owns_host(site: &SiteState, host: &str) -> bool {
    let host = normalize_host(host);
    let public = site
        .config
        .seo
        .as_ref()
        .and_then(|s| s.public_origin.as_deref())
        .and_then(|o| o.split("://").nth(1))
        .map(normalize_host);
    public.as_deref() == Some(host.as_str())
        || site.config.hosts.iter().any(|h| match h.strip_prefix('*') {
            Some(suffix) => host.ends_with(suffix),
            None => *h == host,
        })
}

/// `/robots.txt` of a localized site: the origin's, with the sitemap announced.
async fn robots(resp: Response<Incoming>, ctx: &RequestCtx<'_>) -> Response<Body> {
    let page = ctx
        .page
        .as_ref()
        .expect("robots is only asked for localized sites");
    let ok =
        resp.status() == StatusCode::OK && !resp.headers().contains_key(header::CONTENT_ENCODING);
    if !ok {
        return if resp.status() == StatusCode::NOT_FOUND {
            edge::robots(None, &page.base)
        } else {
            respond(resp, ctx, false)
        };
    }
    match Limited::new(resp.into_body(), MAX_ROBOTS).collect().await {
        Ok(text) => edge::robots(Some(&text.to_bytes()), &page.base),
        Err(e) => {
            tracing::warn!(error = %e, "origin robots.txt unreadable; serving a default one");
            edge::robots(None, &page.base)
        }
    }
}
