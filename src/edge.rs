//! Responses edgeseo makes itself, for sites with localized SEO: `/sitemap.xml` with every locale
//! URL and its alternates, the `Sitemap:` line added to the origin's `/robots.txt`, and the small
//! `/__edgeseo/` API behind the language switcher and suggestion banner.

use std::fmt::Write as _;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};
use crate::config::SiteSeo;
use crate::locale::Locale;
use crate::seo::escape_attr;

/// Path prefix of everything edgeseo serves itself.
pub const PREFIX: &str = "/__edgeseo/";

/// `/sitemap.xml`: each listed page at every locale it is advertised at (see
/// `SiteSeo::advertised`), with `xhtml:link` alternates.
pub fn sitemap(seo: &SiteSeo, base: &str) -> Response<Body> {
    let mut paths: Vec<&str> = seo.pages.sitemap_paths.iter().map(String::as_str).collect();
    paths.extend(seo.products.list.iter().map(|p| p.path.as_str()));
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(*p));

    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\" \
         xmlns:xhtml=\"http://www.w3.org/1999/xhtml\">\n",
    );
    let url = |l: Locale, p: &str| escape_attr(&format!("{base}{}", l.localize_path(p)));
    for path in &paths {
        let locales = seo.advertised_locales(path);
        for &locale in &locales {
            let _ = writeln!(xml, "  <url>\n    <loc>{}</loc>", url(locale, path));
            for &alt in &locales {
                let _ = writeln!(
                    xml,
                    "    <xhtml:link rel=\"alternate\" hreflang=\"{}\" href=\"{}\"/>",
                    alt.tag(),
                    url(alt, path)
                );
            }
            let _ = writeln!(
                xml,
                "    <xhtml:link rel=\"alternate\" hreflang=\"x-default\" href=\"{}\"/>\n  </url>",
                url(Locale::En, path)
            );
        }
    }
    xml.push_str("</urlset>\n");
    respond(
        StatusCode::OK,
        "application/xml; charset=utf-8",
        "public, max-age=3600",
        xml,
    )
}

/// The origin's robots.txt with a `Sitemap:` line for edgeseo's sitemap; when the origin has none
/// (`origin` is `None`), one that allows everything.
pub fn robots(origin: Option<&[u8]>, base: &str) -> Response<Body> {
    let sitemap_line = format!("Sitemap: {base}/sitemap.xml");
    let mut text = match origin {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => "User-agent: *\nAllow: /\n".to_string(),
    };
    let present = text
        .lines()
        .any(|l| l.trim().eq_ignore_ascii_case(&sitemap_line));
    if !present {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push('\n');
        text.push_str(&sitemap_line);
        text.push('\n');
    }
    respond(
        StatusCode::OK,
        "text/plain; charset=utf-8",
        "public, max-age=3600",
        text,
    )
}

/// `/__edgeseo/suggest` answer: the locale to offer and the localized banner text, or nothing.
/// Private and uncached: it depends on the visitor.
pub fn suggestion(locale: Option<Locale>, origin_path: &str) -> Response<Body> {
    let value = match locale {
        Some(l) => serde_json::json!({
            "locale": l.code(),
            "url": l.localize_path(origin_path),
            "message": banner_text(l).0,
            "accept": banner_text(l).1,
            "dismiss": banner_text(l).2,
        }),
        None => serde_json::json!({"locale": null}),
    };
    let mut resp = respond(
        StatusCode::OK,
        "application/json",
        "private, no-store",
        value.to_string(),
    );
    resp.headers_mut().insert(
        header::VARY,
        HeaderValue::from_static("Accept-Language, Cookie, User-Agent"),
    );
    resp
}

fn banner_text(locale: Locale) -> (&'static str, &'static str, &'static str) {
    match locale {
        Locale::Id => (
            "Halaman ini tersedia dalam Bahasa Indonesia.",
            "Buka versi Indonesia",
            "Tetap dalam bahasa Inggris",
        ),
        Locale::Vi => (
            "Trang này có phiên bản tiếng Việt.",
            "Xem bằng tiếng Việt",
            "Giữ tiếng Anh",
        ),
        Locale::Th => ("หน้านี้มีฉบับภาษาไทย", "ดูเป็นภาษาไทย", "ใช้ภาษาอังกฤษต่อ"),
        Locale::En => ("", "", ""),
    }
}

/// `/__edgeseo/lang?l=id&next=/id/...`: remembers the visitor's choice and goes to `next`.
pub fn choose_locale(query: &str, cookie_name: &str) -> Response<Body> {
    let mut locale = None;
    let mut next = String::from("/");
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "l" => locale = Locale::from_code(&value),
            // Only same-site paths: this must not become an open redirect.
            "next"
                if value.starts_with('/') && !value.starts_with("//") && !value.contains('\\') =>
            {
                next = value.into_owned()
            }
            _ => {}
        }
    }
    let Some(locale) = locale else {
        return respond(
            StatusCode::BAD_REQUEST,
            "text/plain; charset=utf-8",
            "no-store",
            "unknown locale\n",
        );
    };
    let mut resp = respond(
        StatusCode::FOUND,
        "text/plain; charset=utf-8",
        "no-store",
        "",
    );
    let headers = resp.headers_mut();
    if let Ok(location) = HeaderValue::from_str(&next) {
        headers.insert(header::LOCATION, location);
    }
    let cookie = format!(
        "{cookie_name}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        locale.code()
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    resp
}

/// The switcher and banner script (no dependencies; reads the page's own hreflang links).
pub fn locale_script() -> Response<Body> {
    script(include_bytes!("edge/locale.js"))
}

/// The script tag that loads [`locale_script`].
pub const LOCALE_SCRIPT_TAG: &str = r#"<script src="/__edgeseo/locale.js" defer></script>"#;

/// The chat widget (no dependencies; talks to the site's chat endpoint).
pub fn widget_script() -> Response<Body> {
    script(include_bytes!("edge/widget.js"))
}

/// The script tag that loads [`widget_script`] on a page in `locale`, talking to `endpoint`.
pub fn widget_tag(endpoint: &str, locale: Locale) -> String {
    format!(
        r#"<script src="/__edgeseo/widget.js" data-endpoint="{}" data-locale="{}" defer></script>"#,
        escape_attr(endpoint),
        locale.code()
    )
}

fn script(source: &'static [u8]) -> Response<Body> {
    respond(
        StatusCode::OK,
        "text/javascript; charset=utf-8",
        "public, max-age=3600",
        Bytes::from_static(source),
    )
}

fn respond(
    status: StatusCode,
    content_type: &'static str,
    cache: &'static str,
    text: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(body::full(text));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn robots_gains_one_sitemap_line() {
        let resp = robots(
            Some(b"User-agent: *\nDisallow: /admin"),
            "https://x.example",
        );
        let (_, body) = resp.into_parts();
        let text = futures_text(body);
        assert_eq!(
            text,
            "User-agent: *\nDisallow: /admin\n\nSitemap: https://x.example/sitemap.xml\n"
        );
        let again = futures_text(robots(Some(text.as_bytes()), "https://x.example").into_body());
        assert_eq!(again, text);
    }

    #[test]
    fn choosing_a_locale_is_not_an_open_redirect() {
        let ok = choose_locale("l=id&next=%2Fid%2Fproducts", "c");
        assert_eq!(ok.status(), StatusCode::FOUND);
        assert_eq!(ok.headers()[header::LOCATION], "/id/products");
        assert!(
            ok.headers()[header::SET_COOKIE]
                .to_str()
                .unwrap()
                .starts_with("c=id;")
        );
        for evil in [
            "l=id&next=%2F%2Fevil.example",
            "l=id&next=https%3A%2F%2Fevil.example",
            "l=id&next=%2F%5Cevil.example",
        ] {
            assert_eq!(
                choose_locale(evil, "c").headers()[header::LOCATION],
                "/",
                "{evil}"
            );
        }
        assert_eq!(choose_locale("l=xx", "c").status(), StatusCode::BAD_REQUEST);
    }

    fn futures_text(body: Body) -> String {
        use http_body_util::BodyExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt.block_on(body.collect()).unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }
}
