//! Stages 5 and 9: the page cache in front of the origin, and the entry a response fills as it
//! streams; stale entries refreshed in the background through the visitor's own stages.

use super::*;

/// What the cache stage decided.
pub(super) enum CacheStep {
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
pub(super) struct Filling {
    key: Key,
    guard: FillGuard,
    /// Only a response the origin marks `public` may fill it (the request carries cookies).
    public_only: bool,
}

/// Stage 9, store: a cacheable response fills the entry while it streams to the client.
pub(super) fn fill(
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

/// The cache key of a request: site, locale, normalized target and content-coding variant.
pub(super) fn cache_key(req: &Request<Incoming>, ctx: &RequestCtx) -> Key {
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
pub(super) fn entry_lifetime(
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
pub(super) fn spawn_refresh(
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
pub(super) async fn drain(mut body: Body) -> bool {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            return false;
        }
    }
    true
}

impl Proxy {
    /// Stage 5, cache: answer from the cache, or say how to fetch: as the one request that fills
    /// the entry, or uncached; with a stale entry to fall back on if the origin fails.
    pub(super) async fn cache_lookup(
        &self,
        req: &Request<Incoming>,
        ctx: &RequestCtx,
    ) -> CacheStep {
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

    pub(super) fn serve(
        &self,
        entry: &Entry,
        status: CacheStatus,
        request: &HeaderMap,
        head_only: bool,
    ) -> Response<Body> {
        self.cache.counters.count(status);
        entry.respond(status, request, head_only)
    }
}
