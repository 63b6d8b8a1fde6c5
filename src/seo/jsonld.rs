//! schema.org JSON-LD for a page, built with serde_json: Organization and WebSite everywhere,
//! Product with its Offer on product pages, BreadcrumbList below the home page. Every type and
//! property used here exists in the schema.org vocabulary (checked by a test against release 30.0),
//! and Google's required properties are present.

use serde_json::{Value, json};

use crate::config::{Product, SiteSeo};
use crate::locale::Locale;

/// Types this module describes. The origin's own JSON-LD blocks of these types are replaced.
pub const TYPES: &[&str] = &["Organization", "WebSite", "Product", "BreadcrumbList"];

pub struct PageFacts<'a> {
    pub seo: &'a SiteSeo,
    pub locale: Locale,
    pub base: &'a str,
    /// Absolute URL of this page at this locale.
    pub url: &'a str,
    pub description: Option<&'a str>,
    pub product: Option<&'a Product>,
    /// `(name, absolute URL)` from home to this page.
    pub breadcrumbs: &'a [(String, String)],
}

/// The serialized document: `{"@context": "https://schema.org", "@graph": [...]}`.
pub fn graph(facts: &PageFacts<'_>) -> String {
    let org_id = format!("{}/#organization", facts.base);
    let mut nodes = vec![organization(facts, &org_id), website(facts, &org_id)];
    if let Some(product) = facts.product {
        nodes.push(product_node(facts, product, &org_id));
    }
    if facts.breadcrumbs.len() > 1 {
        nodes.push(breadcrumb_list(facts.breadcrumbs));
    }
    json!({"@context": "https://schema.org", "@graph": nodes}).to_string()
}

fn absolute(base: &str, link: &str) -> String {
    if link.starts_with("http://") || link.starts_with("https://") {
        link.to_string()
    } else {
        format!("{base}/{}", link.trim_start_matches('/'))
    }
}

fn organization(facts: &PageFacts<'_>, id: &str) -> Value {
    let org = &facts.seo.organization;
    let mut node = json!({
        "@type": "Organization",
        "@id": id,
        "name": org.name,
        "url": format!("{}/", facts.base),
    });
    let fields = [
        ("legalName", org.legal_name.clone()),
        ("logo", org.logo.as_ref().map(|l| absolute(facts.base, l))),
        ("email", org.email.clone()),
        ("telephone", org.telephone.clone()),
        ("foundingDate", org.founding_date.clone()),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            node[key] = Value::String(value);
        }
    }
    let address = [
        ("streetAddress", &org.street_address),
        ("addressLocality", &org.address_locality),
        ("addressRegion", &org.address_region),
        ("postalCode", &org.postal_code),
        ("addressCountry", &org.address_country),
    ];
    if address.iter().any(|(_, v)| v.is_some()) {
        let mut postal = json!({"@type": "PostalAddress"});
        for (key, value) in address {
            if let Some(value) = value {
                postal[key] = Value::String(value.clone());
            }
        }
        node["address"] = postal;
    }
    if let Some(whatsapp) = &org.whatsapp {
        node["contactPoint"] = json!({
            "@type": "ContactPoint",
            "contactType": "sales",
            "telephone": whatsapp,
            "availableLanguage": ["en", "id", "vi", "th", "zh"],
        });
    }
    if !org.same_as.is_empty() {
        node["sameAs"] = json!(org.same_as);
    }
    node
}

fn website(facts: &PageFacts<'_>, org_id: &str) -> Value {
    json!({
        "@type": "WebSite",
        "@id": format!("{}{}#website", facts.base, facts.locale.localize_path("/")),
        "name": facts.seo.organization.name,
        "url": format!("{}{}", facts.base, facts.locale.localize_path("/")),
        "inLanguage": facts.locale.tag(),
        "publisher": {"@id": org_id},
    })
}

fn product_node(facts: &PageFacts<'_>, product: &Product, org_id: &str) -> Value {
    let mut node = json!({
        "@type": "Product",
        "@id": format!("{}#product", facts.url),
        "name": product.name.get(facts.locale),
        "sku": product.sku,
        "image": absolute(facts.base, &product.image),
        "brand": {"@type": "Brand", "name": product.brand},
        "category": product.category,
        "offers": {
            "@type": "Offer",
            "url": facts.url,
            "price": product.price.get(facts.locale),
            "priceCurrency": facts.locale.currency(),
            "availability": format!("https://schema.org/{}", product.availability),
            "itemCondition": "https://schema.org/NewCondition",
            "seller": {"@id": org_id},
        },
    });
    let own = Some(product.description.get(facts.locale).as_str()).filter(|d| !d.is_empty());
    if let Some(description) = own.or(facts.description) {
        node["description"] = Value::String(description.to_string());
    }
    node
}

fn breadcrumb_list(trail: &[(String, String)]) -> Value {
    let items: Vec<Value> = trail
        .iter()
        .enumerate()
        .map(|(i, (name, url))| {
            json!({"@type": "ListItem", "position": i + 1, "name": name, "item": url})
        })
        .collect();
    json!({"@type": "BreadcrumbList", "itemListElement": items})
}

/// Makes serialized JSON safe inside `<script>`: `</` and `<!--` cannot end or confuse the
/// element. With `ascii_only`, every non-ASCII character becomes a `\u` escape, so the block
/// survives pages in legacy encodings (windows-874, GBK) unchanged in meaning.
pub fn script_safe(json: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if ascii_only && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::script_safe;

    #[test]
    fn script_safe_escapes_markup_and_optionally_non_ascii() {
        let json = r#"{"name":"</script><!-- ฿"}"#;
        let safe = script_safe(json, false);
        assert!(!safe.contains("</"));
        assert!(!safe.contains("<!--"));
        assert!(safe.contains('฿'));
        let ascii = script_safe(json, true);
        assert!(ascii.is_ascii());
        let back: serde_json::Value = serde_json::from_str(&ascii).unwrap();
        assert_eq!(back["name"], "</script><!-- ฿");
    }
}
