//! Same-site links keep the visitor's locale: `/products/x` on an Indonesian page becomes
//! `/id/products/x`. Used for `a[href]`, `form[action]` and `Location` headers.

use crate::locale::Locale;

/// The localized form of `href`, or `None` when it stays as it is (English, other sites,
/// relative links that already resolve under the prefix, links already carrying a locale).
pub fn localize(href: &str, locale: Locale, is_own_host: impl Fn(&str) -> bool) -> Option<String> {
    if locale == Locale::En {
        return None;
    }
    let href_trim = href.trim();
    if let Some(path) = href_trim.strip_prefix('/') {
        if path.starts_with('/') {
            // Protocol-relative: `//host/path`.
            let (host, rest) = split_authority(path.trim_start_matches('/'))?;
            return is_own_host(host)
                .then(|| localize_path(rest, locale).map(|p| format!("//{host}{p}")))
                .flatten();
        }
        return localize_path(href_trim, locale);
    }
    for scheme in ["https://", "http://"] {
        if let Some(after) = href_trim.strip_prefix(scheme) {
            let (host, rest) = split_authority(after)?;
            if !is_own_host(host) {
                return None;
            }
            return localize_path(rest, locale).map(|p| format!("{scheme}{host}{p}"));
        }
    }
    None
}

/// `host[:port]` and the rest (`/path?q`), for an absolute URL without its scheme.
fn split_authority(s: &str) -> Option<(&str, &str)> {
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    let (host, rest) = s.split_at(end);
    (!host.is_empty()).then_some((host, if rest.is_empty() { "/" } else { rest }))
}

fn localize_path(path_and_more: &str, locale: Locale) -> Option<String> {
    if !path_and_more.starts_with('/') {
        // `?q` or `#frag` on the same page: relative, already under the prefix.
        return None;
    }
    let path_end = path_and_more
        .find(['?', '#'])
        .unwrap_or(path_and_more.len());
    let (path, tail) = path_and_more.split_at(path_end);
    if Locale::split_path(path).0 != Locale::En || path.starts_with("/__edgeseo/") {
        return None;
    }
    Some(format!("{}{tail}", locale.localize_path(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own(host: &str) -> bool {
        crate::sites::normalize_host(host) == "shop.example"
    }

    #[test]
    fn same_site_links_gain_the_prefix() {
        let l = |h| localize(h, Locale::Id, own);
        assert_eq!(l("/products/x").as_deref(), Some("/id/products/x"));
        assert_eq!(l("/").as_deref(), Some("/id/"));
        assert_eq!(l("/faq?x=1#a").as_deref(), Some("/id/faq?x=1#a"));
        assert_eq!(
            l("https://shop.example/about").as_deref(),
            Some("https://shop.example/id/about")
        );
        assert_eq!(
            l("http://SHOP.example:8080").as_deref(),
            Some("http://SHOP.example:8080/id/")
        );
        assert_eq!(
            l("//shop.example/a").as_deref(),
            Some("//shop.example/id/a")
        );
    }

    #[test]
    fn other_links_stay() {
        let l = |h| localize(h, Locale::Vi, own);
        for href in [
            "/vi/products/x",
            "/th/products/x",
            "https://other.example/a",
            "//cdn.example/x.js",
            "relative/page",
            "#top",
            "?page=2",
            "mailto:sales@shop.example",
            "javascript:void(0)",
            "/__edgeseo/widget.js",
        ] {
            assert_eq!(l(href), None, "{href}");
        }
        assert_eq!(localize("/products", Locale::En, own), None);
    }
}
