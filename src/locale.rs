//! The locales edgeseo serves and how they appear in URLs: English at the root (also `x-default`),
//! every other locale under its own prefix (`/id/…`, `/vi/…`, `/th/…`). One URL, one language:
//! nothing here looks at cookies or IP addresses.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Locale {
    En,
    Id,
    Vi,
    Th,
}

impl Locale {
    pub const ALL: [Locale; 4] = [Locale::En, Locale::Id, Locale::Vi, Locale::Th];

    /// The short code used in rule files, cookies and chat: `en`, `id`, `vi`, `th`.
    pub fn code(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Id => "id",
            Locale::Vi => "vi",
            Locale::Th => "th",
        }
    }

    pub fn from_code(code: &str) -> Option<Locale> {
        Locale::ALL.into_iter().find(|l| l.code() == code)
    }

    /// The locale that serves a language named loosely, as clients do: "en", "EN", "id-ID",
    /// "vi_VN". Malay ("ms") and the legacy Indonesian code "in" are served in Indonesian.
    pub fn from_language_tag(tag: &str) -> Option<Locale> {
        let primary = tag.split(['-', '_']).next().unwrap_or("");
        match primary.to_ascii_lowercase().as_str() {
            "in" | "ms" => Some(Locale::Id),
            code => Locale::from_code(code),
        }
    }

    /// BCP 47 tag for `<html lang>`, `hreflang` and `Content-Language`.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::En => "en",
            Locale::Id => "id-ID",
            Locale::Vi => "vi-VN",
            Locale::Th => "th-TH",
        }
    }

    /// The language named in itself, as a language switcher shows it.
    pub fn name(self) -> &'static str {
        match self {
            Locale::En => "English",
            Locale::Id => "Bahasa Indonesia",
            Locale::Vi => "Tiếng Việt",
            Locale::Th => "ไทย",
        }
    }

    /// Open Graph locale (`og:locale`).
    pub fn og(self) -> &'static str {
        match self {
            Locale::En => "en_US",
            Locale::Id => "id_ID",
            Locale::Vi => "vi_VN",
            Locale::Th => "th_TH",
        }
    }

    /// Currency of prices shown at this locale's URLs.
    pub fn currency(self) -> &'static str {
        match self {
            Locale::En => "USD",
            Locale::Id => "IDR",
            Locale::Vi => "VND",
            Locale::Th => "THB",
        }
    }

    /// The country whose visitors are offered this locale.
    pub fn country(self) -> Option<&'static str> {
        match self {
            Locale::En => None,
            Locale::Id => Some("ID"),
            Locale::Vi => Some("VN"),
            Locale::Th => Some("TH"),
        }
    }

    /// URL path prefix: empty for English.
    pub fn prefix(self) -> &'static str {
        match self {
            Locale::En => "",
            Locale::Id => "/id",
            Locale::Vi => "/vi",
            Locale::Th => "/th",
        }
    }

    /// Splits a request path into its locale and the path the origin knows:
    /// `/id/products/x` → (Id, `/products/x`); `/id` → (Id, `/`); `/products` → (En, `/products`).
    pub fn split_path(path: &str) -> (Locale, &str) {
        for locale in [Locale::Id, Locale::Vi, Locale::Th] {
            if let Some(rest) = path.strip_prefix(locale.prefix()) {
                if rest.is_empty() {
                    return (locale, "/");
                }
                if rest.starts_with('/') {
                    return (locale, rest);
                }
            }
        }
        (Locale::En, path)
    }

    /// The path of `origin_path` at this locale: `/products/x` → `/id/products/x`.
    pub fn localize_path(self, origin_path: &str) -> String {
        match (self, origin_path) {
            (Locale::En, p) => p.to_string(),
            (l, "/") => format!("{}/", l.prefix()),
            (l, p) => format!("{}{p}", l.prefix()),
        }
    }
}

impl fmt::Display for Locale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn language_tags_are_read_loosely() {
        for l in Locale::ALL {
            assert_eq!(Locale::from_language_tag(l.code()), Some(l));
            assert_eq!(Locale::from_language_tag(l.tag()), Some(l));
        }
        assert_eq!(Locale::from_language_tag("VI_vn"), Some(Locale::Vi));
        assert_eq!(Locale::from_language_tag("ms"), Some(Locale::Id));
        assert_eq!(Locale::from_language_tag("in"), Some(Locale::Id));
        assert_eq!(Locale::from_language_tag("fr"), None);
        assert_eq!(Locale::from_language_tag(""), None);
    }

    use super::*;

    #[test]
    fn paths_split_and_join() {
        assert_eq!(
            Locale::split_path("/id/products/x"),
            (Locale::Id, "/products/x")
        );
        assert_eq!(Locale::split_path("/th"), (Locale::Th, "/"));
        assert_eq!(Locale::split_path("/vi/"), (Locale::Vi, "/"));
        assert_eq!(Locale::split_path("/idea"), (Locale::En, "/idea"));
        assert_eq!(Locale::split_path("/"), (Locale::En, "/"));
        for locale in Locale::ALL {
            for path in ["/", "/products/x", "/a/b/"] {
                let localized = locale.localize_path(path);
                assert_eq!(Locale::split_path(&localized), (locale, path));
            }
        }
    }
}
