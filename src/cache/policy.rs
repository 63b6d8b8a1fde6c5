//! Whether a request may be answered from the cache and whether a response may be stored, and for
//! how long (RFC 9111 as a shared cache reads it, plus the site's rules). A wrong answer here is
//! cache poisoning or a leak of one visitor's page to another, so every rule errs toward not
//! caching.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, Method, StatusCode, header};

use crate::config::CachePolicy;
use crate::headers;

/// How long a stored response may be served, fresh and stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub fresh: Duration,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
}

impl Lifetime {
    /// How long the entry must be kept at all.
    pub fn total(&self) -> Duration {
        self.fresh + self.stale_while_revalidate.max(self.stale_if_error)
    }
}

/// How a request may use the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestCaching {
    /// Answered from and stored in the cache.
    Full,
    /// The request carries cookies that may personalise the page: only responses the origin
    /// marked `public` are served to it or stored from it.
    PublicOnly,
    /// Never touches the cache: credentials, a listed session cookie, or not a GET/HEAD.
    Bypass,
}

/// What the cache may do for a request. A cookie that is neither edgeseo's own nor one of the
/// site's `ignore_cookies` (analytics, consent) could be echoed into the page, so by default it
/// keeps the request off shared entries unless the origin says the page is `public`.
pub fn request_caching(
    method: &Method,
    headers: &HeaderMap,
    policy: &CachePolicy,
) -> RequestCaching {
    if !policy.enabled || !(method == Method::GET || method == Method::HEAD) {
        return RequestCaching::Bypass;
    }
    if headers.contains_key(header::AUTHORIZATION) {
        return RequestCaching::Bypass;
    }
    let mut caching = RequestCaching::Full;
    for (name, _) in crate::headers::cookies(headers) {
        if policy.session_cookies.iter().any(|s| s == name) {
            return RequestCaching::Bypass;
        }
        if !policy.ignores_cookie(name) {
            caching = RequestCaching::PublicOnly;
        }
    }
    caching
}

/// Whether the response says any cache may store it (`Cache-Control: public`).
pub fn is_public(headers: &HeaderMap) -> bool {
    CacheControl::parse(headers).public
}

/// The lifetime of a response in the cache, or `None` when it must not be stored. `ttl_override`
/// is a page rule's `cache_ttl`: it replaces the origin's freshness (and its `no-cache`/`no-store`)
/// but never makes a personal response (`Set-Cookie`, `private`) shareable.
pub fn lifetime(
    status: StatusCode,
    headers: &HeaderMap,
    policy: &CachePolicy,
    ttl_override: Option<Duration>,
    now: SystemTime,
) -> Option<Lifetime> {
    if !policy.statuses.contains(&status.as_u16()) || headers.contains_key(header::SET_COOKIE) {
        return None;
    }
    let directives = CacheControl::parse(headers);
    if directives.private {
        return None;
    }
    if !vary_is_keyed(headers) {
        return None;
    }
    let fresh = match ttl_override {
        Some(ttl) => ttl,
        None => {
            if directives.no_store || directives.no_cache {
                return None;
            }
            let lifetime = directives
                .s_maxage
                .or(directives.max_age)
                .or_else(|| expires_lifetime(headers, now))?;
            lifetime.saturating_sub(age(headers))
        }
    };
    let cap = |asked: Option<Duration>, limit: Duration| asked.unwrap_or(limit).min(limit);
    let lifetime = Lifetime {
        fresh,
        stale_while_revalidate: cap(
            directives.stale_while_revalidate,
            policy.stale_while_revalidate,
        ),
        stale_if_error: cap(directives.stale_if_error, policy.stale_if_error),
    };
    (lifetime.total() > Duration::ZERO).then_some(lifetime)
}

/// The cache key covers the content coding; any other `Vary` header cannot be keyed.
fn vary_is_keyed(headers: &HeaderMap) -> bool {
    headers::list(headers, header::VARY).all(|v| v.eq_ignore_ascii_case("accept-encoding"))
}

/// The `Age` the origin (or a cache before it) reports.
pub fn age(headers: &HeaderMap) -> Duration {
    headers
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_secs)
}

fn expires_lifetime(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let expires = httpdate::parse_http_date(headers.get(header::EXPIRES)?.to_str().ok()?)
        // An invalid Expires (often "0" or "-1") means already expired.
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let date = headers
        .get(header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .unwrap_or(now);
    Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
}

#[derive(Debug, Default)]
struct CacheControl {
    no_store: bool,
    no_cache: bool,
    private: bool,
    public: bool,
    max_age: Option<Duration>,
    s_maxage: Option<Duration>,
    stale_while_revalidate: Option<Duration>,
    stale_if_error: Option<Duration>,
}

impl CacheControl {
    fn parse(headers: &HeaderMap) -> CacheControl {
        let mut cc = CacheControl::default();
        let seconds = |v: Option<&str>| {
            v.and_then(|v| v.trim().trim_matches('"').parse::<u64>().ok())
                .map(Duration::from_secs)
        };
        for directive in headers::list(headers, header::CACHE_CONTROL) {
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v)),
                None => (directive.trim(), None),
            };
            match name.to_ascii_lowercase().as_str() {
                "no-store" => cc.no_store = true,
                // `no-cache="field"` only restricts fields; bare no-cache forbids serving unvalidated.
                "no-cache" => cc.no_cache |= value.is_none(),
                "private" => cc.private = true,
                "public" => cc.public = true,
                "max-age" => cc.max_age = seconds(value).or(Some(Duration::ZERO)),
                "s-maxage" => cc.s_maxage = seconds(value).or(Some(Duration::ZERO)),
                "stale-while-revalidate" => cc.stale_while_revalidate = seconds(value),
                "stale-if-error" => cc.stale_if_error = seconds(value),
                _ => {}
            }
        }
        cc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    fn life(status: u16, pairs: &[(&str, &str)]) -> Option<Lifetime> {
        let policy = CachePolicy::default();
        lifetime(
            StatusCode::from_u16(status).unwrap(),
            &headers(pairs),
            &policy,
            None,
            SystemTime::now(),
        )
    }

    #[test]
    fn freshness_from_the_origin() {
        let l = life(200, &[("cache-control", "public, max-age=300")]).unwrap();
        assert_eq!(l.fresh, Duration::from_secs(300));
        let l = life(
            200,
            &[("cache-control", "max-age=300, s-maxage=60"), ("age", "10")],
        )
        .unwrap();
        assert_eq!(l.fresh, Duration::from_secs(50));
        let l = life(
            200,
            &[(
                "cache-control",
                "max-age=10, stale-while-revalidate=30, stale-if-error=99999",
            )],
        )
        .unwrap();
        assert_eq!(l.stale_while_revalidate, Duration::from_secs(30));
        assert_eq!(
            l.stale_if_error,
            Duration::from_secs(600),
            "capped by the site"
        );
        let l = life(
            200,
            &[
                ("date", "Sun, 29 Nov 2026 10:00:00 GMT"),
                ("expires", "Sun, 29 Nov 2026 10:02:00 GMT"),
            ],
        )
        .unwrap();
        assert_eq!(l.fresh, Duration::from_secs(120));
    }

    #[test]
    fn personal_or_unkeyable_responses_are_not_stored() {
        for pairs in [
            &[("cache-control", "max-age=60"), ("set-cookie", "sid=1")][..],
            &[("cache-control", "private, max-age=60")],
            &[("cache-control", "no-store")],
            &[("cache-control", "no-cache, max-age=60")],
            &[("cache-control", "max-age=60"), ("vary", "Cookie")],
            &[("cache-control", "max-age=60"), ("vary", "*")],
        ] {
            assert_eq!(life(200, pairs), None, "{pairs:?}");
        }
        assert!(
            life(
                200,
                &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")]
            )
            .is_some()
        );
        assert_eq!(life(500, &[("cache-control", "max-age=60")]), None);
        assert_eq!(
            life(200, &[("expires", "0")]).map(|l| l.fresh),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn page_rule_ttl_overrides_freshness_but_not_privacy() {
        let policy = CachePolicy::default();
        let ttl = Some(Duration::from_secs(90));
        let now = SystemTime::now();
        let l = lifetime(
            StatusCode::OK,
            &headers(&[("cache-control", "no-cache")]),
            &policy,
            ttl,
            now,
        );
        assert_eq!(l.unwrap().fresh, Duration::from_secs(90));
        let p = lifetime(
            StatusCode::OK,
            &headers(&[("set-cookie", "a=b")]),
            &policy,
            ttl,
            now,
        );
        assert_eq!(p, None);
    }

    #[test]
    fn credentials_and_unknown_cookies_keep_requests_off_shared_entries() {
        let policy = CachePolicy {
            session_cookies: vec!["PHPSESSID".into()],
            ..CachePolicy::default()
        };
        let get = Method::GET;
        let caching = |pairs: &[(&str, &str)]| request_caching(&get, &headers(pairs), &policy);
        assert_eq!(caching(&[]), RequestCaching::Full);
        assert_eq!(
            caching(&[(
                "cookie",
                "edgeseo_locale=id; _ga=GA1.2.3; _ga_XYZ=1; _gid=2"
            )]),
            RequestCaching::Full
        );
        assert_eq!(
            caching(&[("cookie", "_ga=1; cart=42")]),
            RequestCaching::PublicOnly
        );
        assert_eq!(
            caching(&[("cookie", "a=1; PHPSESSID=x")]),
            RequestCaching::Bypass
        );
        assert_eq!(
            caching(&[("authorization", "Bearer x")]),
            RequestCaching::Bypass
        );
        assert_eq!(
            request_caching(&Method::POST, &HeaderMap::new(), &policy),
            RequestCaching::Bypass
        );
        assert!(is_public(&headers(&[(
            "cache-control",
            "max-age=60, public"
        )])));
        assert!(!is_public(&headers(&[("cache-control", "max-age=60")])));
    }
}
