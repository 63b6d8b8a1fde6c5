//! What edgeseo answers itself, without the origin's page: the chat (stage 1), the edge's files
//! and a localized site's robots.txt (stage 3), and the redirect to HTTPS.

use super::localize::visitor;
use super::origin::{client_side, forward_request, respond};
use super::*;

/// Largest origin robots.txt edgeseo will extend; a larger one passes through untouched.
pub(super) const MAX_ROBOTS: usize = 512 * 1024;

/// The chat endpoint: answered here, never forwarded (forward mode is the chat's own business).
pub(super) async fn chat_request(
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

/// Whether the visitor reached the site over HTTPS: on edgeseo's TLS listener, or through a
/// trusted proxy that terminated TLS and says so (`X-Forwarded-Proto: https`).
pub(super) fn is_https(req: &Request<Incoming>, ctx: &RequestCtx) -> bool {
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
pub(super) fn is_acme_challenge(path: &str) -> bool {
    path.starts_with(crate::acme::HTTP01_PREFIX)
}

/// The key authorization of an open HTTP-01 validation (RFC 8555 §8.3), never cached.
pub(super) fn acme_answer(key_authorization: String) -> Response<Body> {
    let mut resp = Response::new(body::full(key_authorization));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// 308 to the same URL over HTTPS (308 keeps the method and body, unlike 301).
pub(super) fn https_redirect(req: &Request<Incoming>, ctx: &RequestCtx) -> Response<Body> {
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
pub(super) fn edge_response(req: &Request<Incoming>, ctx: &RequestCtx) -> Option<Response<Body>> {
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

/// The base URL a localized site's `/robots.txt` announces its sitemap under; `None` for any
/// other request.
pub(super) fn robots_base(req: &Request<Incoming>, ctx: &RequestCtx) -> Option<String> {
    let page = ctx.page.as_ref()?;
    (page.locale == Locale::En && page.origin_path == "/robots.txt" && req.method() == Method::GET)
        .then(|| page.base.clone())
}

/// Stage 3, edge, `/robots.txt` of a localized site: the origin's, read as plain text, with the
/// sitemap announced; never cached (it follows the rules, which a reload changes).
pub(super) async fn robots(
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
