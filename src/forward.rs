//! Header rules for forwarding between client and origin: what must not cross a hop (RFC 9110
//! section 7.6.1) and what a proxy adds (X-Forwarded-*, Via).

use std::net::IpAddr;

use http::Version;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection and never travel past it.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// What the proxy knows about the client side of a request.
pub struct ClientSide<'a> {
    pub ip: IpAddr,
    /// `http` or `https`: how the client reached the proxy.
    pub proto: &'static str,
    /// The host the client asked for, as it sent it (port included).
    pub host: &'a str,
    pub version: Version,
    /// The client is a proxy the site trusts: what it says in `Forwarded` is kept.
    pub trusted: bool,
}

/// Prepares a client's request headers for the origin.
pub fn request_headers(headers: &mut HeaderMap, client: &ClientSide<'_>) {
    strip_hop_by_hop(headers);
    headers.remove(header::UPGRADE);
    let xff_name = HeaderName::from_static("x-forwarded-for");
    let forwarded_for = match headers.get(&xff_name).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => format!("{prior}, {}", client.ip),
        _ => client.ip.to_string(),
    };
    set(headers, xff_name, &forwarded_for);
    set(
        headers,
        HeaderName::from_static("x-forwarded-proto"),
        client.proto,
    );
    set(
        headers,
        HeaderName::from_static("x-forwarded-host"),
        client.host,
    );
    forwarded(headers, client);
    append_via(headers, client.version);
}

/// RFC 7239: the client's element appended, after what a trusted proxy before it said; anything
/// else a client sends there is its own claim and is dropped.
fn forwarded(headers: &mut HeaderMap, client: &ClientSide<'_>) {
    let prior: Vec<String> = if client.trusted {
        crate::headers::list(headers, header::FORWARDED)
            .map(str::to_string)
            .collect()
    } else {
        Vec::new()
    };
    let node = match client.ip {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("\"[{ip}]\""),
    };
    // The host is quoted: a port's colon is not a token character.
    let host = client.host.replace(['"', '\\'], "");
    let own = format!("for={node};proto={};host=\"{host}\"", client.proto);
    let value = prior
        .into_iter()
        .chain([own])
        .collect::<Vec<_>>()
        .join(", ");
    headers.remove(header::FORWARDED);
    set(headers, header::FORWARDED, &value);
}

/// Prepares an origin's response headers for the client.
pub fn response_headers(headers: &mut HeaderMap, origin_version: Version) {
    strip_hop_by_hop(headers);
    append_via(headers, origin_version);
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Connection may name further hop-by-hop headers; collect them before removing it.
    let named: Vec<HeaderName> = crate::headers::list(headers, header::CONNECTION)
        .filter_map(|name| HeaderName::from_bytes(name.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn append_via(headers: &mut HeaderMap, version: Version) {
    let protocol = match version {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    };
    headers.append(
        header::VIA,
        HeaderValue::from_str(&format!("{protocol} edgeseo")).expect("static text"),
    );
}

fn set(headers: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> ClientSide<'static> {
        ClientSide {
            ip: "203.0.113.9".parse().unwrap(),
            proto: "https",
            host: "shop.example:8443",
            version: Version::HTTP_11,
            trusted: false,
        }
    }

    #[test]
    fn forwarded_is_kept_only_from_a_trusted_proxy() {
        let mut h = HeaderMap::new();
        h.insert("forwarded", "for=10.9.9.9;by=evil".parse().unwrap());
        request_headers(&mut h, &client());
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9;proto=https;host=\"shop.example:8443\""
        );
        let mut h = HeaderMap::new();
        h.insert("forwarded", "for=198.51.100.1".parse().unwrap());
        let trusted = ClientSide {
            ip: "2001:db8::1".parse().unwrap(),
            trusted: true,
            ..client()
        };
        request_headers(&mut h, &trusted);
        assert_eq!(
            h["forwarded"],
            "for=198.51.100.1, for=\"[2001:db8::1]\";proto=https;host=\"shop.example:8443\""
        );
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, X-Secret-Hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("upgrade", "websocket".parse().unwrap());
        h.insert("accept", "text/html".parse().unwrap());
        request_headers(&mut h, &client());
        for gone in ["connection", "x-secret-hop", "keep-alive", "te", "upgrade"] {
            assert!(!h.contains_key(gone), "{gone} must be removed");
        }
        assert_eq!(h["accept"], "text/html");
        assert_eq!(h["via"], "1.1 edgeseo");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "shop.example:8443");
    }

    #[test]
    fn appends_to_x_forwarded_for() {
        let mut h = HeaderMap::new();
        request_headers(&mut h, &client());
        assert_eq!(h["x-forwarded-for"], "203.0.113.9");
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", "198.51.100.1".parse().unwrap());
        request_headers(&mut h, &client());
        assert_eq!(h["x-forwarded-for"], "198.51.100.1, 203.0.113.9");
    }
}
