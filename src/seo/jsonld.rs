//! schema.org JSON-LD for a page, built with serde_json: Organization and WebSite everywhere,
//! Product with its Offer on product pages, BreadcrumbList below the home page. Every type and
//! property used here exists in the schema.org vocabulary (checked by a test against release 30.0),
//! and Google's required properties are present.
//!
//! Also owns what becomes of the origin's own JSON-LD: nodes of a type the page's graph
//! describes are taken out (two Products for one page confuse search engines), except the
//! origin's organization, which is merged into the graph's (its fields win unless the rules say
//! `prefer = "rules"`), so a site never loses an address or a postal code by being proxied.

use serde_json::{Map, Value, json};

use crate::config::{Product, ReturnCategory, ReturnFees, SiteSeo};
use crate::locale::Locale;

/// An origin node of one of these types is the site's organization and is merged into ours.
const ORGANIZATION_TYPES: &[&str] = &[
    "Organization",
    "Corporation",
    "LocalBusiness",
    "OnlineBusiness",
    "OnlineStore",
    "Store",
];

pub struct PageFacts<'a> {
    pub seo: &'a SiteSeo,
    pub locale: Locale,
    pub base: &'a str,
    /// Absolute URL of this page at this locale.
    pub url: &'a str,
    /// The page's description whole (the meta description may be shortened to fit).
    pub description: Option<&'a str>,
    pub product: Option<&'a Product>,
    /// `(name, absolute URL)` from home to this page.
    pub breadcrumbs: &'a [(String, String)],
}

/// The page's graph: the Organization first, then WebSite, Product and BreadcrumbList.
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<Value>,
    /// Types of the nodes, which origin nodes of the same types give way to.
    types: Vec<&'static str>,
}

pub fn graph(facts: &PageFacts<'_>) -> Graph {
    let org_id = format!("{}/#organization", facts.base);
    let mut nodes = vec![organization(facts, &org_id), website(facts, &org_id)];
    let mut types = vec!["Organization", "WebSite"];
    if let Some(product) = facts.product {
        nodes.push(product_node(facts, product, &org_id));
        types.push("Product");
    }
    if facts.breadcrumbs.len() > 1 {
        nodes.push(breadcrumb_list(facts.breadcrumbs));
        types.push("BreadcrumbList");
    }
    Graph { nodes, types }
}

impl Graph {
    /// The serialized document, `{"@context": "https://schema.org", "@graph": [...]}`, with the
    /// origin's organization (read before the head was written) merged into ours.
    pub fn serialize(&self, origin_org: Option<&Value>, rules_win: bool) -> String {
        let merged = origin_org.map(|o| merge_organization(&self.nodes[0], o, rules_win));
        let first = merged.as_ref().unwrap_or(&self.nodes[0]);
        let nodes: Vec<&Value> = std::iter::once(first).chain(&self.nodes[1..]).collect();
        json!({"@context": "https://schema.org", "@graph": nodes}).to_string()
    }

    pub fn types(&self) -> &[&'static str] {
        &self.types
    }

    /// The `@id` of the page's Product, when the page is a product's.
    pub fn product_id(&self) -> Option<&str> {
        self.nodes
            .iter()
            .find(|n| n["@type"] == "Product")
            .and_then(|n| n["@id"].as_str())
    }

    /// What to write in place of an origin JSON-LD block: `None` keeps it as it came (it is not
    /// JSON, or holds nothing the graph describes), `Some("")` drops it. The origin's
    /// organization is handed to `held` while the head is still to be written (`head_written`
    /// false), to be merged there; after that it stays in the block, merged with ours and under
    /// our `@id`, the graph's values winning where both state one (search engines join nodes
    /// by `@id`, and the head already stated them).
    pub fn adopt_origin(
        &self,
        text: &str,
        head_written: bool,
        held: &mut Option<Value>,
    ) -> Option<String> {
        let org_id = self.nodes[0]["@id"].as_str().unwrap_or_default();
        let mut doc = OriginDoc::read(text, &self.types, org_id)?;
        let extra = match doc.organization.take() {
            Some(org) if !head_written && held.is_none() => {
                *held = Some(org);
                None
            }
            Some(org) => Some(merge_organization(&self.nodes[0], &org, true)),
            None => None,
        };
        Some(doc.render(extra))
    }
}

/// An origin JSON-LD document with the nodes the graph describes taken out.
struct OriginDoc {
    /// The document's top level: a node, an array of nodes, or an object with `@graph`.
    top: Value,
    kept: Vec<Value>,
    organization: Option<Value>,
}

impl OriginDoc {
    /// `None` when the text is not JSON-LD or holds nothing of the graph's types.
    fn read(text: &str, replaced: &[&str], org_id: &str) -> Option<Self> {
        let mut top: Value = serde_json::from_str(text).ok()?;
        let nodes = match &mut top {
            Value::Array(items) => std::mem::take(items),
            Value::Object(map) if map.get("@graph").is_some_and(Value::is_array) => {
                match map.get_mut("@graph").map(Value::take) {
                    Some(Value::Array(items)) => items,
                    _ => return None,
                }
            }
            Value::Object(_) => vec![top.take()],
            _ => return None,
        };
        let (mut kept, mut organization, mut old_ids) = (Vec::new(), None, Vec::new());
        let mut changed = false;
        for mut node in nodes {
            let types = type_names(&node);
            if organization.is_none() && types.iter().any(|t| ORGANIZATION_TYPES.contains(t)) {
                if let Some(id) = node.get("@id").and_then(Value::as_str) {
                    old_ids.push(id.to_string());
                }
                if let Some(map) = node.as_object_mut() {
                    map.remove("@context");
                }
                organization = Some(node);
                changed = true;
            } else if !types.is_empty() && types.iter().all(|t| replaced.contains(t)) {
                changed = true;
            } else {
                kept.push(node);
            }
        }
        if !changed {
            return None;
        }
        for node in &mut kept {
            point_ids_at(node, &old_ids, org_id);
        }
        Some(Self {
            top,
            kept,
            organization,
        })
    }

    /// The document again, with `extra` added; empty when nothing is left.
    fn render(self, extra: Option<Value>) -> String {
        // A document of one node (`top` null) is either the organization or a node the graph
        // describes, so it never has both `extra` and a kept node.
        let Self { mut top, kept, .. } = self;
        let mut nodes: Vec<Value> = extra.into_iter().collect();
        nodes.extend(kept);
        if nodes.is_empty() {
            return String::new();
        }
        match &mut top {
            Value::Array(items) => *items = nodes,
            Value::Object(map) => {
                map.insert("@graph".into(), Value::Array(nodes));
            }
            _ if nodes.len() == 1 => {
                let mut node = nodes.pop().unwrap_or_default();
                if let Some(map) = node.as_object_mut()
                    && !map.contains_key("@context")
                {
                    map.insert("@context".into(), json!("https://schema.org"));
                }
                top = node;
            }
            _ => top = json!({"@context": "https://schema.org", "@graph": nodes}),
        }
        top.to_string()
    }
}

/// A node's `@type`s without the schema.org prefix.
fn type_names(node: &Value) -> Vec<&str> {
    let names: Vec<&str> = match node.get("@type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    names
        .into_iter()
        .map(|t| {
            t.trim_start_matches("http://schema.org/")
                .trim_start_matches("https://schema.org/")
        })
        .collect()
}

/// Every `@id` reference to one of `old` made to point at `new`.
fn point_ids_at(value: &mut Value, old: &[String], new: &str) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "@id" && v.as_str().is_some_and(|id| old.iter().any(|o| o == id)) {
                    *v = Value::String(new.to_string());
                } else {
                    point_ids_at(v, old, new);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| point_ids_at(v, old, new)),
        _ => {}
    }
}

/// The origin's organization node with ours merged in, under our `@id`: the origin's fields win
/// unless `rules_win`, field by field, and so do the fields of the postal address.
fn merge_organization(ours: &Value, origin: &Value, rules_win: bool) -> Value {
    let mut merged = origin.as_object().cloned().unwrap_or_default();
    merged.remove("@context");
    if let Some(id) = ours.get("@id") {
        merged.insert("@id".into(), id.clone());
    }
    for (key, value) in ours.as_object().into_iter().flatten() {
        match (key.as_str(), merged.get_mut(key)) {
            ("@id", _) => {}
            ("@type", Some(_)) => {}
            ("address", Some(Value::Object(theirs))) if value.is_object() => {
                merge_fields(theirs, value, rules_win);
            }
            (_, Some(existing)) => {
                if rules_win {
                    *existing = value.clone();
                }
            }
            (_, None) => {
                merged.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(merged)
}

fn merge_fields(into: &mut Map<String, Value>, ours: &Value, rules_win: bool) {
    for (key, value) in ours.as_object().into_iter().flatten() {
        if rules_win || !into.contains_key(key) {
            into.insert(key.clone(), value.clone());
        }
    }
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
    if let Some(mpn) = &product.mpn {
        node["mpn"] = Value::String(mpn.clone());
    }
    if let Some(gtin) = &product.gtin {
        node["gtin"] = Value::String(gtin.clone());
    }
    if let Some(until) = &product.price_valid_until {
        node["offers"]["priceValidUntil"] = Value::String(until.clone());
    }
    if let Some((value, count)) = &product.rating {
        node["aggregateRating"] = json!({
            "@type": "AggregateRating",
            "ratingValue": value,
            "reviewCount": count,
            "bestRating": "5",
            "worstRating": "1",
        });
    }
    if let Some((moq, unit)) = &product.moq {
        node["offers"]["eligibleQuantity"] =
            json!({"@type": "QuantitativeValue", "minValue": moq, "unitCode": unit});
    }
    merchant_terms(&mut node["offers"], facts);
    node
}

/// One buyer review as the page shows it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Review {
    pub author: String,
    pub rating: f32,
    pub body: Option<String>,
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
}

/// A JSON-LD document stating `reviews` of the product `product_id` on a scale of 1 to `best`:
/// written after the reviews have streamed by, it joins the head's Product by `@id`.
pub fn reviews_document(product_id: &str, reviews: &[Review], best: u8) -> String {
    let reviews: Vec<Value> = reviews
        .iter()
        .map(|r| {
            let mut review = json!({
                "@type": "Review",
                "author": {"@type": "Person", "name": r.author},
                "reviewRating": {
                    "@type": "Rating",
                    "ratingValue": rating_value(r.rating),
                    "bestRating": best,
                    "worstRating": 1,
                },
            });
            if let Some(body) = &r.body {
                review["reviewBody"] = Value::String(body.clone());
            }
            if let Some(date) = &r.date {
                review["datePublished"] = Value::String(date.clone());
            }
            review
        })
        .collect();
    json!({
        "@context": "https://schema.org",
        "@graph": [{"@type": "Product", "@id": product_id, "review": reviews}],
    })
    .to_string()
}

/// `5` rather than `5.0`, as the page shows it; `4.5` stays.
fn rating_value(rating: f32) -> Value {
    if rating.fract() == 0.0 {
        json!(rating as u32)
    } else {
        json!(rating)
    }
}

/// Shipping and returns as the site's `[merchant]` states them, for the page's market (every
/// market on the English pages).
fn merchant_terms(offer: &mut Value, facts: &PageFacts<'_>) {
    let merchant = &facts.seo.merchant;
    let market = facts.locale.country();
    let days = |(min, max): (u32, u32)| json!({"@type": "QuantitativeValue", "minValue": min, "maxValue": max, "unitCode": "DAY"});
    let shipping: Vec<Value> = merchant
        .shipping
        .iter()
        .filter(|s| market.is_none_or(|m| m == s.country))
        .map(|s| {
            let mut delivery =
                json!({"@type": "ShippingDeliveryTime", "transitTime": days(s.transit_days)});
            if let Some(handling) = s.handling_days {
                delivery["handlingTime"] = days(handling);
            }
            json!({
                "@type": "OfferShippingDetails",
                "shippingDestination": {"@type": "DefinedRegion", "addressCountry": s.country},
                "deliveryTime": delivery,
            })
        })
        .collect();
    if let Some(details) = one_or_many(shipping) {
        offer["shippingDetails"] = details;
    }
    let Some(policy) = &merchant.returns else {
        return;
    };
    let countries: Vec<Value> = match market {
        Some(country) => vec![json!(country)],
        None => facts
            .seo
            .locales
            .iter()
            .filter_map(|l| l.country())
            .map(|c| json!(c))
            .collect(),
    };
    let category = match policy.category {
        ReturnCategory::NotPermitted => "MerchantReturnNotPermitted",
        ReturnCategory::FiniteWindow { .. } => "MerchantReturnFiniteReturnWindow",
        ReturnCategory::Unlimited => "MerchantReturnUnlimitedWindow",
    };
    let mut node = json!({
        "@type": "MerchantReturnPolicy",
        "returnPolicyCategory": format!("https://schema.org/{category}"),
    });
    if let Some(countries) = one_or_many(countries) {
        node["applicableCountry"] = countries;
    }
    if let ReturnCategory::FiniteWindow { days } = policy.category {
        node["merchantReturnDays"] = json!(days);
    }
    if let Some(fees) = policy.fees {
        let fees = match fees {
            ReturnFees::Free => "FreeReturn",
            ReturnFees::Customer => "ReturnFeesCustomerResponsibility",
        };
        node["returnFees"] = json!(format!("https://schema.org/{fees}"));
    }
    offer["hasMerchantReturnPolicy"] = node;
}

/// One value as itself, several as an array, none as nothing.
fn one_or_many(mut values: Vec<Value>) -> Option<Value> {
    match values.len() {
        0 => None,
        1 => values.pop(),
        _ => Some(Value::Array(values)),
    }
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
    use super::*;

    fn graph() -> Graph {
        Graph {
            nodes: vec![
                json!({"@type": "Organization", "@id": "https://s.test/#organization",
                       "name": "Rules Name", "url": "https://s.test/", "email": "sales@s.test",
                       "address": {"@type": "PostalAddress", "addressLocality": "Foshan",
                                   "streetAddress": "Shunde District"}}),
                json!({"@type": "WebSite", "publisher": {"@id": "https://s.test/#organization"}}),
            ],
            types: vec!["Organization", "WebSite"],
        }
    }

    const ORIGIN_ORG: &str = r#"{"@context":"https://schema.org","@type":"Corporation",
        "@id":"https://origin.test/#org","name":"Origin Name","legalName":"Origin Co., Ltd.",
        "address":{"@type":"PostalAddress","streetAddress":"No. 12 Xingye Road","postalCode":"528306"}}"#;

    fn adopt(g: &Graph, text: &str, head_written: bool) -> (Option<Value>, Option<Value>) {
        let mut held = None;
        let out = g.adopt_origin(text, head_written, &mut held);
        let out = out.map(|t| {
            if t.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&t).unwrap()
            }
        });
        (out, held)
    }

    #[test]
    fn origin_organization_in_the_head_is_merged_with_its_fields_winning() {
        let g = graph();
        let (out, held) = adopt(&g, ORIGIN_ORG, false);
        assert_eq!(out, Some(Value::Null), "the block itself goes");
        let doc: Value = serde_json::from_str(&g.serialize(held.as_ref(), false)).unwrap();
        let org = &doc["@graph"][0];
        assert_eq!(org["@id"], "https://s.test/#organization");
        assert_eq!(org["@type"], "Corporation");
        assert_eq!(org["name"], "Origin Name");
        assert_eq!(org["legalName"], "Origin Co., Ltd.");
        assert_eq!(
            org["email"], "sales@s.test",
            "the rules fill what the origin lacks"
        );
        assert_eq!(org["address"]["postalCode"], "528306");
        assert_eq!(org["address"]["streetAddress"], "No. 12 Xingye Road");
        assert_eq!(org["address"]["addressLocality"], "Foshan");
        assert!(org.get("@context").is_none());

        let doc: Value = serde_json::from_str(&g.serialize(held.as_ref(), true)).unwrap();
        let org = &doc["@graph"][0];
        assert_eq!(org["name"], "Rules Name");
        assert_eq!(org["address"]["streetAddress"], "Shunde District");
        assert_eq!(
            org["address"]["postalCode"], "528306",
            "nothing is lost either way"
        );
    }

    #[test]
    fn origin_organization_after_the_head_stays_in_place_under_our_id() {
        let g = graph();
        let (out, held) = adopt(&g, ORIGIN_ORG, true);
        assert!(held.is_none());
        let node = out.unwrap();
        assert_eq!(node["@context"], "https://schema.org");
        assert_eq!(node["@id"], "https://s.test/#organization");
        // The head already said these; the same node must not contradict it.
        assert_eq!(node["name"], "Rules Name");
        assert_eq!(node["address"]["postalCode"], "528306");
    }

    #[test]
    fn other_nodes_are_kept_and_point_at_our_organization() {
        let g = graph();
        let text = r#"{"@context":"https://schema.org","@graph":[
            {"@type":"Organization","@id":"https://origin.test/#org","name":"O"},
            {"@type":"WebSite","name":"dup"},
            {"@type":"Event","name":"Fair","organizer":{"@id":"https://origin.test/#org"}}]}"#;
        let (out, held) = adopt(&g, text, false);
        assert_eq!(held.unwrap()["name"], "O");
        let doc = out.unwrap();
        let nodes = doc["@graph"].as_array().unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0]["@type"], "Event");
        assert_eq!(nodes[0]["organizer"]["@id"], "https://s.test/#organization");
        assert_eq!(doc["@context"], "https://schema.org");
    }

    #[test]
    fn blocks_without_our_types_are_left_as_they_came() {
        let g = graph();
        for text in [
            "{not json",
            r#"{"@type":"NewsArticle","publisher":{"@type":"Organization"}}"#,
            r#"{"@type":"Product","name":"not described on this page"}"#,
            r#"[{"@type":"Event"},{"@type":"FAQPage"}]"#,
        ] {
            let mut held = None;
            assert_eq!(g.adopt_origin(text, false, &mut held), None, "{text}");
            assert!(held.is_none());
        }
        let (out, _) = adopt(
            &g,
            r#"[{"@type":"WebSite"},{"@type":"https://schema.org/WebSite"}]"#,
            false,
        );
        assert_eq!(out, Some(Value::Null));
    }

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
