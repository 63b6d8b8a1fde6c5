//! What a request must be before any stage reads it: one unambiguous host, a method a reverse
//! proxy serves, and a path without dot segments (RFC 3986 section 5.2.4), so that routing,
//! localizing, caching and the origin all see the same resource.
//!
//! Must never: forward `..` upstream, or pick one of two conflicting hosts (the cache and the
//! router could then disagree about which site a page belongs to).

use std::borrow::Cow;

use http::uri::{Authority, PathAndQuery};
use http::{Method, Request, Uri, Version, header};

use crate::error::ProxyError;

/// Checks `req` and normalizes its path in place; returns the requested host (port included).
pub fn admit<B>(req: &mut Request<B>) -> Result<String, ProxyError> {
    // No tunnels: the origin would be asked to open one on the client's behalf. HTTP/2's
    // extended CONNECT (RFC 8441, `:protocol`) is no tunnel to elsewhere: it asks this site for
    // a WebSocket, which the pipeline proxies as an upgrade.
    if req.method() == Method::CONNECT && req.extensions().get::<hyper::ext::Protocol>().is_none() {
        return Err(ProxyError::MethodNotAllowed(Method::CONNECT));
    }
    let host = host(req)?;
    if let Some(uri) = without_dot_segments(req.uri()) {
        *req.uri_mut() = uri;
    }
    Ok(host)
}

/// The requested host: `:authority` (HTTP/2, absolute-form) or else the one Host header.
fn host<B>(req: &Request<B>) -> Result<String, ProxyError> {
    let mut values = req.headers().get_all(header::HOST).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ProxyError::BadRequest("more than one Host header"));
    }
    let header_host = match first {
        None => None,
        Some(v) if v.is_empty() => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|s| s.parse::<Authority>().ok())
                .filter(|a| !a.as_str().contains('@'))
                .ok_or(ProxyError::BadRequest("invalid Host header"))?,
        ),
    };
    match (req.uri().authority(), header_host) {
        // HTTP/1.1's absolute form overrides Host (RFC 9112 section 3.2.2); HTTP/2 must agree.
        (Some(authority), Some(host))
            if req.version() == Version::HTTP_2
                && !authority.as_str().eq_ignore_ascii_case(host.as_str()) =>
        {
            Err(ProxyError::BadRequest(":authority and Host disagree"))
        }
        (Some(authority), _) => Ok(authority.as_str().to_string()),
        (None, Some(host)) => Ok(host.as_str().to_string()),
        (None, None) => Err(ProxyError::MissingHost),
    }
}

/// The URI with `.` and `..` segments resolved (also when written `%2E`), or `None` when the
/// path has none.
fn without_dot_segments(uri: &Uri) -> Option<Uri> {
    let path = uri.path();
    let normalized = remove_dot_segments(path);
    if normalized == path {
        return None;
    }
    let mut target = normalized.into_owned();
    if let Some(q) = uri.query() {
        target.push('?');
        target.push_str(q);
    }
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(PathAndQuery::try_from(target).ok()?);
    Uri::from_parts(parts).ok()
}

/// RFC 3986 section 5.2.4 on an absolute path. `%2E` is the unreserved `.` (section 6.2.2.2), so
/// it is decoded first; a path without dot segments comes back unchanged, escapes and all.
pub fn remove_dot_segments(path: &str) -> Cow<'_, str> {
    let decoded: Cow<'_, str> = if path
        .as_bytes()
        .windows(3)
        .any(|w| w.eq_ignore_ascii_case(b"%2e"))
    {
        Cow::Owned(path.replace("%2e", ".").replace("%2E", "."))
    } else {
        Cow::Borrowed(path)
    };
    let is_dot = |s: &str| s == "." || s == "..";
    if !decoded.split('/').any(is_dot) {
        return Cow::Borrowed(path);
    }
    let segments: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        // A path ending in a dot segment names a directory: keep its trailing slash.
        if i == last && is_dot(segment) {
            out.push("");
        }
    }
    Cow::Owned(format!("/{}", out.join("/")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_resolve_as_rfc_3986_says() {
        let cases = [
            ("/vi/../id/x", "/id/x"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/..", "/"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/a//b/../c", "/a//c"),
            ("/vi/%2e%2E/id/x", "/id/x"),
            ("/x/%2E%2e/", "/"),
            ("/file%2Ehtml", "/file%2Ehtml"),
            ("/a.b/..c/.d", "/a.b/..c/.d"),
            ("/", "/"),
        ];
        for (input, want) in cases {
            assert_eq!(remove_dot_segments(input), want, "{input}");
        }
    }

    fn request(version: Version, uri: &str, hosts: &[&str]) -> Request<()> {
        let mut req = Request::get(uri).version(version).body(()).unwrap();
        for h in hosts {
            req.headers_mut().append(header::HOST, h.parse().unwrap());
        }
        req
    }

    #[test]
    fn one_valid_host_or_400() {
        let status = |r: Result<String, ProxyError>| r.map_err(|e| e.status().as_u16());
        let mut ok = request(Version::HTTP_11, "/x", &["Shop.test:8080"]);
        assert_eq!(status(admit(&mut ok)), Ok("Shop.test:8080".into()));
        let mut two = request(Version::HTTP_11, "/", &["a.test", "b.test"]);
        assert_eq!(status(admit(&mut two)), Err(400));
        let mut bad = request(Version::HTTP_11, "/", &["a b"]);
        assert_eq!(status(admit(&mut bad)), Err(400));
        let mut userinfo = request(Version::HTTP_11, "/", &["evil@shop.test"]);
        assert_eq!(status(admit(&mut userinfo)), Err(400));
        let mut none = request(Version::HTTP_11, "/", &[]);
        assert_eq!(status(admit(&mut none)), Err(400));
        // Absolute form wins over Host in HTTP/1.1; in HTTP/2 the two must agree.
        let mut absolute = request(Version::HTTP_11, "http://a.test/", &["b.test"]);
        assert_eq!(status(admit(&mut absolute)), Ok("a.test".into()));
        let mut h2 = request(Version::HTTP_2, "http://a.test/", &["b.test"]);
        assert_eq!(status(admit(&mut h2)), Err(400));
        let mut h2_same = request(Version::HTTP_2, "http://a.test/", &["A.test"]);
        assert_eq!(status(admit(&mut h2_same)), Ok("a.test".into()));
    }

    #[test]
    fn connect_is_405_and_paths_are_normalized_in_place() {
        let mut connect = Request::connect("shop.test:443").body(()).unwrap();
        assert_eq!(admit(&mut connect).unwrap_err().status().as_u16(), 405);
        let mut req = request(Version::HTTP_11, "/vi/../id/x?q=1", &["shop.test"]);
        admit(&mut req).unwrap();
        assert_eq!(req.uri(), "/id/x?q=1");
    }
}
