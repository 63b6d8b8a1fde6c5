//! Stages 6 to 8: what goes to the origin and how its answer reaches the client (rewritten for
//! the locale, compressed), run by `fetch_render` with the store of stage 9.

use super::caching::{Filling, fill};
use super::*;

/// Stage 6, admit: refuse a body declared larger than the site allows before reading any of it.
pub(super) fn admit(req: &Request<Incoming>, limit: u64) -> Result<(), ProxyError> {
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
pub(super) fn forward_request(
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
pub(super) enum Fetched {
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
pub(super) async fn fetch_render(
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

/// Stage 8, respond: the origin's response as the client gets it. HTML pages of localized sites are
/// rewritten as they stream; other text is compressed where the origin did not; everything else
/// passes byte for byte. Also says whether the body was rewritten for the request's locale.
pub(super) fn respond(
    resp: Response<Incoming>,
    ctx: &RequestCtx,
    head_only: bool,
) -> (Response<Body>, bool) {
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
pub(super) fn compress(resp: Response<Body>, ctx: &RequestCtx) -> Response<Body> {
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
pub(super) fn rewrite_page(
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
pub(super) fn body_end_scripts(site: &SiteState, locale: Locale) -> String {
    let mut html = edge::LOCALE_SCRIPT_TAG.to_string();
    if let Some(chat) = site.chat.as_ref().filter(|c| c.widget()) {
        html.push_str(&edge::widget_tag(chat.path(), locale));
    }
    html
}

pub(super) fn own_host(ctx: &RequestCtx) -> impl Fn(&str) -> bool + '_ {
    move |host| ctx.site.owns_host(host)
}

/// The client side of a request, for the X-Forwarded-* and Via headers sent upstream.
pub(super) fn client_side(ctx: &RequestCtx, version: http::Version) -> ClientSide<'_> {
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
