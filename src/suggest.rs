//! Locale suggestions for humans on the English pages. The visitor's explicit choice (the
//! switcher's cookie) wins, then the browser's language, then the country of their IP address.
//! Crawlers are never offered anything, so they index every URL as it is. Suggestions never change
//! what a URL serves: they become a banner drawn by a script, or (if the site asks) a 302.

use std::net::IpAddr;

use http::{HeaderMap, header};

use crate::config::{SiteSeo, SuggestMode};
use crate::geoip::GeoIp;
use crate::headers;
use crate::locale::Locale;

/// The cookie the language switcher sets (and the banner's "no thanks").
pub const COOKIE: &str = "edgeseo_locale";

/// The client's address: the socket peer, or, when the peer is a trusted proxy, the nearest
/// untrusted address it reports in `Forwarded` or `X-Forwarded-For`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, seo: &SiteSeo) -> IpAddr {
    if !seo.is_trusted_proxy(peer) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = headers::list(headers, header::FORWARDED)
        .filter_map(|element| {
            element.split(';').find_map(|pair| {
                let (key, value) = pair.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| parse_node(value.trim().trim_matches('"')))
                    .flatten()
            })
        })
        .collect();
    let chain = if forwarded.is_empty() {
        headers::list(headers, "x-forwarded-for")
            .filter_map(parse_node)
            .collect()
    } else {
        forwarded
    };
    chain
        .into_iter()
        .rev()
        .find(|ip| !seo.is_trusted_proxy(*ip))
        .unwrap_or(peer)
}

/// `203.0.113.9`, `[2001:db8::1]:443`, `203.0.113.9:1234`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    s.rsplit_once(':')?.0.parse().ok()
}

/// The locale a visitor chose with the switcher.
pub fn chosen_locale(headers: &HeaderMap, cookie_name: &str) -> Option<Locale> {
    headers::cookies(headers)
        .find(|(name, _)| *name == cookie_name)
        .and_then(|(_, value)| Locale::from_code(value))
}

/// Primary language subtags of `Accept-Language`, most preferred first (q=0 dropped).
pub fn languages(headers: &HeaderMap) -> Vec<String> {
    let Some(value) = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
    else {
        return Vec::new();
    };
    let mut items: Vec<(f32, usize, String)> = headers::weighted(value)
        .enumerate()
        .filter_map(|(i, (tag, q))| {
            let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
            (q > 0.0 && !primary.is_empty() && primary != "*").then_some((q, i, primary))
        })
        .collect();
    items.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    items.into_iter().map(|(_, _, tag)| tag).collect()
}

/// A crawler a User-Agent claims to be, with the reverse-DNS domains that prove the claim.
pub struct CrawlerClaim {
    pub name: &'static str,
    pub domains: &'static [&'static str],
}

const KNOWN_CRAWLERS: &[(&str, &str, &[&str])] = &[
    (
        "googlebot",
        "Googlebot",
        &["googlebot.com", "google.com", "googleusercontent.com"],
    ),
    (
        "google-inspectiontool",
        "Google",
        &["googlebot.com", "google.com"],
    ),
    ("adsbot-google", "Google", &["googlebot.com", "google.com"]),
    ("bingbot", "Bingbot", &["search.msn.com"]),
    ("applebot", "Applebot", &["applebot.apple.com"]),
    (
        "yandex",
        "Yandex",
        &["yandex.ru", "yandex.net", "yandex.com"],
    ),
    ("baiduspider", "Baidu", &["baidu.com", "baidu.jp"]),
    ("duckduckbot", "DuckDuckBot", &["duckduckgo.com"]),
    ("petalbot", "PetalBot", &["petalsearch.com"]),
];

/// Generic words that mark automated clients we cannot verify but must not redirect either.
const GENERIC_BOT_WORDS: &[&str] = &["bot", "crawler", "spider", "slurp", "facebookexternalhit"];

pub enum Agent {
    Human,
    /// Claims a search engine crawler that reverse DNS can verify.
    Verifiable(CrawlerClaim),
    /// Some other automated client.
    Bot,
}

pub fn classify_agent(headers: &HeaderMap) -> Agent {
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if let Some((_, name, domains)) = KNOWN_CRAWLERS.iter().find(|(key, _, _)| ua.contains(key)) {
        return Agent::Verifiable(CrawlerClaim { name, domains });
    }
    if GENERIC_BOT_WORDS.iter().any(|w| ua.contains(w)) {
        Agent::Bot
    } else {
        Agent::Human
    }
}

/// Reverse-and-forward DNS: `ip` must resolve to a name under one of the crawler's domains, and
/// that name must resolve back to `ip`.
pub async fn verify_crawler(ip: IpAddr, claim: &CrawlerClaim) -> bool {
    let reverse = tokio::task::spawn_blocking(move || dns_lookup::lookup_addr(&ip)).await;
    let Ok(Ok(name)) = reverse else { return false };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let under_domain = claim
        .domains
        .iter()
        .any(|d| name == *d || name.ends_with(&format!(".{d}")));
    if !under_domain {
        return false;
    }
    match tokio::net::lookup_host((name.as_str(), 0)).await {
        Ok(addrs) => addrs.map(|a| a.ip()).any(|a| a == ip),
        Err(_) => false,
    }
}

/// What edgeseo knows about the visitor when deciding.
pub struct Visitor {
    pub ip: IpAddr,
    /// A crawler (claimed, and verified where the site asks for verification).
    pub crawler: bool,
    pub chosen: Option<Locale>,
    pub languages: Vec<String>,
}

/// The locale to offer a visitor of the English page at `origin_path`, if any: only one the
/// page is published at (enabled, and translated enough to be advertised).
pub fn decide(seo: &SiteSeo, geo: &GeoIp, visitor: &Visitor, origin_path: &str) -> Option<Locale> {
    if seo.suggest == SuggestMode::Off || visitor.crawler {
        return None;
    }
    let origin_path = crate::seo::normalize_path(origin_path);
    let enabled =
        |l: Locale| l != Locale::En && seo.locales.contains(&l) && seo.advertised(l, &origin_path);
    if let Some(chosen) = visitor.chosen {
        return enabled(chosen).then_some(chosen);
    }
    for language in &visitor.languages {
        match Locale::from_language_tag(language) {
            Some(l) if enabled(l) => return Some(l),
            // An explicit preference for English: a redirect would fight it; a banner may still
            // offer the local language.
            Some(Locale::En) if seo.suggest == SuggestMode::Redirect => return None,
            Some(Locale::En) => break,
            _ => {}
        }
    }
    let country = geo.country(visitor.ip)?;
    Locale::ALL
        .into_iter()
        .find(|l| l.country() == Some(country.as_str()) && enabled(*l))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::headers;

    #[test]
    fn accept_language_order() {
        let h = headers(&[(
            "accept-language",
            "en-US;q=0.5, vi-VN, th;q=0.8, *;q=0.1, id;q=0",
        )]);
        assert_eq!(languages(&h), ["vi", "th", "en"]);
    }

    #[test]
    fn cookie_choice() {
        let h = headers(&[("cookie", "a=1; edgeseo_locale=th; b=2")]);
        assert_eq!(chosen_locale(&h, "edgeseo_locale"), Some(Locale::Th));
        assert_eq!(chosen_locale(&h, "other"), None);
    }

    #[test]
    fn agents() {
        let g = headers(&[(
            "user-agent",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        )]);
        assert!(matches!(classify_agent(&g), Agent::Verifiable(c) if c.name == "Googlebot"));
        let b = headers(&[("user-agent", "AhrefsBot/7.0")]);
        assert!(matches!(classify_agent(&b), Agent::Bot));
        let h = headers(&[(
            "user-agent",
            "Mozilla/5.0 (Linux; Android 14) Chrome/130 Mobile",
        )]);
        assert!(matches!(classify_agent(&h), Agent::Human));
    }

    #[test]
    fn forwarded_nodes() {
        assert_eq!(
            parse_node("[2001:db8::1]:443"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            parse_node("203.0.113.9:80"),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(parse_node("unknown"), None);
    }
}
