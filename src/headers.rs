//! Header values read one way everywhere: the comma-separated list form (RFC 9110 §5.6.1) and
//! its weighted kind, `token;q=0.5` (RFC 9110 §12.4.2), as in Accept-Encoding and Accept-Language,
//! and the `name=value` pairs of Cookie (RFC 6265 §4.2).

use http::HeaderMap;
use http::header::AsHeaderName;

/// The items of every `name` header, trimmed, empty ones skipped.
pub fn list(headers: &HeaderMap, name: impl AsHeaderName) -> impl Iterator<Item = &str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// The tokens of a weighted list with their q-values (1 when absent or unreadable), in order.
pub fn weighted(value: &str) -> impl Iterator<Item = (&str, f32)> {
    value.split(',').filter_map(|item| {
        let mut params = item.split(';');
        let token = params.next()?.trim();
        let q = params
            .filter_map(|p| {
                let p = p.trim();
                p.strip_prefix("q=").or_else(|| p.strip_prefix("Q="))
            })
            .find_map(|v| v.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        (!token.is_empty()).then_some((token, q))
    })
}

/// The media type of a Content-Type value (`text/html; charset=utf-8` → `text/html`), lowercased.
pub fn media_type_of(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The media type of the Content-Type header, if there is a readable one.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(http::header::CONTENT_TYPE)?.to_str().ok()?;
    Some(media_type_of(value))
}

/// The `(name, value)` pairs of every Cookie header, trimmed, in order; pairs without `=` are
/// skipped. Values are as sent (quotes and percent-encoding are the site's business).
pub fn cookies(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let name = name.trim();
            (!name.is_empty()).then(|| (name, value.trim()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn lists_span_repeated_headers_and_skip_empty_items() {
        let mut h = HeaderMap::new();
        h.append("vary", HeaderValue::from_static("Accept-Encoding, ,Origin"));
        h.append("vary", HeaderValue::from_static(" Cookie"));
        assert_eq!(
            list(&h, "vary").collect::<Vec<_>>(),
            ["Accept-Encoding", "Origin", "Cookie"]
        );
    }

    #[test]
    fn weights_default_to_one() {
        assert_eq!(
            weighted("br;q=0.5, gzip ,, id-ID;Q=0, x;q=oops").collect::<Vec<_>>(),
            [("br", 0.5), ("gzip", 1.0), ("id-ID", 0.0), ("x", 1.0)]
        );
    }

    #[test]
    fn media_types_drop_parameters_and_case() {
        assert_eq!(media_type_of("Text/HTML ; charset=UTF-8"), "text/html");
        let mut h = HeaderMap::new();
        assert_eq!(media_type(&h), None);
        h.insert(
            "content-type",
            HeaderValue::from_static("application/json;charset=utf-8"),
        );
        assert_eq!(media_type(&h).as_deref(), Some("application/json"));
    }

    #[test]
    fn cookies_span_repeated_headers_and_skip_broken_pairs() {
        let mut h = HeaderMap::new();
        h.append(
            "cookie",
            HeaderValue::from_static("a=1; edgeseo_locale=th ;junk; =x"),
        );
        h.append("cookie", HeaderValue::from_static("_ga=GA1.2=3"));
        assert_eq!(
            cookies(&h).collect::<Vec<_>>(),
            [("a", "1"), ("edgeseo_locale", "th"), ("_ga", "GA1.2=3")]
        );
    }
}
