//! The schema.org vocabulary (release 30.0, compiled in from `schemaorg.tsv`): which types exist,
//! their supertypes, and which types each property belongs to. The audit judges any site's JSON-LD
//! with it, as Google's Rich Results Test would flag unknown terms.

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use serde_json::Value;

pub struct Vocabulary {
    /// Type → its direct supertypes.
    types: HashMap<&'static str, Vec<&'static str>>,
    /// Property → the types it is a property of.
    properties: HashMap<&'static str, Vec<&'static str>>,
}

static SCHEMA_ORG: LazyLock<Vocabulary> =
    LazyLock::new(|| Vocabulary::parse(include_str!("schemaorg.tsv")));

impl Vocabulary {
    pub fn schema_org() -> &'static Vocabulary {
        &SCHEMA_ORG
    }

    fn parse(text: &'static str) -> Vocabulary {
        let mut types = HashMap::new();
        let mut properties = HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut fields = line.split('\t');
            let (Some(kind), Some(name)) = (fields.next(), fields.next()) else {
                continue;
            };
            let related = fields.next().unwrap_or("").split_whitespace().collect();
            match kind {
                "C" => types.insert(name, related),
                _ => properties.insert(name, related),
            };
        }
        Vocabulary { types, properties }
    }

    /// A type and all its supertypes.
    fn lineage<'a>(&'a self, ty: &'a str) -> HashSet<&'a str> {
        let mut seen = HashSet::new();
        let mut todo = vec![ty];
        while let Some(t) = todo.pop() {
            if seen.insert(t) {
                todo.extend(self.types.get(t).into_iter().flatten().copied());
            }
        }
        seen
    }

    /// What in a JSON-LD block is not schema.org: unknown types, and properties used on a type
    /// they do not belong to. One line per problem, each named once.
    pub fn problems(&self, block: &Value) -> Vec<String> {
        let mut out = Vec::new();
        self.walk(block, &mut out);
        out
    }

    fn walk(&self, node: &Value, out: &mut Vec<String>) {
        match node {
            Value::Array(items) => items.iter().for_each(|i| self.walk(i, out)),
            Value::Object(map) => {
                let types: Vec<&str> = match map.get("@type") {
                    Some(Value::String(t)) => vec![t.as_str()],
                    Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
                    _ => Vec::new(),
                };
                let types: Vec<&str> = types.into_iter().map(short_name).collect();
                let mut lineage = HashSet::new();
                for ty in &types {
                    if self.types.contains_key(ty) {
                        lineage.extend(self.lineage(ty));
                    } else {
                        push_once(out, format!("type {ty} is not in schema.org"));
                    }
                }
                for (key, value) in map {
                    // Keywords, and terms of other vocabularies (prefixed or absolute IRIs).
                    let own = !key.starts_with('@') && !key.contains(':');
                    if own && !types.is_empty() && !lineage.is_empty() {
                        match self.properties.get(key.as_str()) {
                            None => push_once(out, format!("{key} is not a schema.org property")),
                            Some(domains) if !domains.iter().any(|d| lineage.contains(d)) => {
                                push_once(
                                    out,
                                    format!("{key} is not a property of {}", types.join("/")),
                                )
                            }
                            Some(_) => {}
                        }
                    }
                    self.walk(value, out);
                }
            }
            _ => {}
        }
    }
}

/// `https://schema.org/Product` and `schema:Product` are `Product`.
fn short_name(ty: &str) -> &str {
    ["https://schema.org/", "http://schema.org/", "schema:"]
        .iter()
        .find_map(|p| ty.strip_prefix(p))
        .unwrap_or(ty)
}

fn push_once(out: &mut Vec<String>, line: String) {
    if !out.contains(&line) {
        out.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_types_and_where_properties_belong() {
        let v = Vocabulary::schema_org();
        let good = serde_json::json!({
            "@context": "https://schema.org",
            "@graph": [
                {"@type": "Product", "name": "Kettle", "sku": "K1",
                 "offers": {"@type": "Offer", "price": "9.90", "priceCurrency": "USD"}},
                {"@type": "BreadcrumbList", "itemListElement": [
                    {"@type": "ListItem", "position": 1, "name": "Home", "item": "https://x/"}]},
                {"@type": ["Organization", "schema:LocalBusiness"], "name": "Lianhe", "url": "https://x/"}
            ]
        });
        assert_eq!(v.problems(&good), Vec::<String>::new());
        let bad = serde_json::json!({
            "@type": "Product",
            "colour": "red",
            "price": "9.90",
            "offers": {"@type": "Ofer", "price": "1"}
        });
        let mut problems = v.problems(&bad);
        problems.sort();
        assert_eq!(
            problems,
            [
                "colour is not a schema.org property",
                "price is not a property of Product",
                "type Ofer is not in schema.org"
            ]
        );
    }
}
