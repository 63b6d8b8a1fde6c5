//! Stages 2 and 4: the locale a URL asks for, and the redirect a human on an English page may
//! get to their own.

use super::*;

/// Stage 2, localize: the locale of the URL and the origin path behind it.
pub(super) fn localize(req: &Request<Incoming>, ctx: &RequestCtx) -> Option<Page> {
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
pub(super) fn base_url(seo: &SiteSeo, req: &Request<Incoming>, ctx: &RequestCtx) -> String {
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

pub(super) fn visitor(
    req: &Request<Incoming>,
    ctx: &RequestCtx,
    crawler: bool,
) -> suggest::Visitor {
    let choices = ctx.choices(req.headers());
    suggest::Visitor {
        ip: ctx.client_ip,
        crawler,
        chosen: choices.chosen,
        languages: choices.languages.clone(),
    }
}

/// Stage 4, suggest: on sites that redirect, a human on an English page goes to their locale's URL.
/// Crawlers never do; with `verify_crawlers`, a claim that reverse DNS does not confirm counts
/// as a human.
pub(super) async fn suggest_redirect(
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
