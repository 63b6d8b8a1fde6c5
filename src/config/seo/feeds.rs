//! The site's CSV feeds: the product feed (`products.csv`, names and prices per locale) and the
//! marketplace keyword database (`keywords/<locale>.csv`), checked row by row with file:line:col.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use super::super::diag::{Diagnostic, SourceFile, file_diagnostic};
use super::super::read_source;
use super::{Keyword, Keywords, Localized, Memory, Product, Products};
use crate::locale::Locale;

pub(super) const AVAILABILITY: [&str; 10] = [
    "InStock",
    "OutOfStock",
    "PreOrder",
    "BackOrder",
    "Discontinued",
    "LimitedAvailability",
    "SoldOut",
    "OnlineOnly",
    "InStoreOnly",
    "PreSale",
];

pub(super) const MARKETPLACES: [&str; 5] = ["lazada", "shopee", "tokopedia", "tiki", "other"];

/// A CSV file read with headers; each record keeps its line for diagnostics.
pub(super) struct Csv {
    src: SourceFile,
    headers: Vec<String>,
    records: Vec<(csv::StringRecord, usize)>,
}

impl Csv {
    pub(super) fn read(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<Csv> {
        let src = read_source(path, diags)?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(src.text.as_bytes());
        let headers = match reader.headers() {
            Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
            Err(e) => {
                diags.push(src.diagnostic(0..0, format!("cannot read CSV header: {e}")));
                return None;
            }
        };
        let mut records = Vec::new();
        for result in reader.records() {
            match result {
                Ok(record) => {
                    let offset = record.position().map_or(0, |p| p.byte() as usize);
                    records.push((record, offset));
                }
                Err(e) => {
                    let offset = e.position().map_or(0, |p| p.byte() as usize);
                    diags.push(src.diagnostic(offset..offset, format!("invalid CSV: {e}")));
                    return None;
                }
            }
        }
        Some(Csv {
            src,
            headers,
            records,
        })
    }

    pub(super) fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// Diagnostic pointing at field `col` of the record starting at `offset`.
    pub(super) fn at(
        &self,
        offset: usize,
        record: &csv::StringRecord,
        col: usize,
        message: String,
    ) -> Diagnostic {
        let field = record.get(col).unwrap_or("");
        let line_end = self.src.text[offset..]
            .find('\n')
            .map_or(self.src.text.len(), |i| offset + i);
        let line = &self.src.text[offset..line_end];
        let within = if field.is_empty() {
            0
        } else {
            line.find(field).unwrap_or(0)
        };
        self.src
            .diagnostic(offset + within..offset + within, message)
    }
}

pub(super) fn load_keywords(
    site_dir: &Path,
    locales: &[Locale],
    diags: &mut Vec<Diagnostic>,
) -> Option<Keywords> {
    let before = diags.len();
    let mut keywords = Keywords::default();
    for &locale in locales {
        let path = site_dir
            .join("keywords")
            .join(format!("{}.csv", locale.code()));
        // English pages may go without: the supplier's own English copy is the baseline.
        if locale == Locale::En && !path.exists() {
            continue;
        }
        if !path.exists() {
            diags.push(file_diagnostic(
                &path,
                format!("missing: locale {locale} is enabled and needs its keyword database"),
            ));
            continue;
        }
        let Some(csv) = Csv::read(&path, diags) else {
            continue;
        };
        let cols: Option<Vec<usize>> = ["keyword", "volume", "category", "marketplace"]
            .iter()
            .map(|c| csv.column(c))
            .collect();
        let Some(cols) = cols else {
            diags.push(
                csv.src
                    .diagnostic(0..0, "header must be keyword,volume,category,marketplace"),
            );
            continue;
        };
        let mut by_category: HashMap<String, Vec<Keyword>> = HashMap::new();
        for (record, offset) in &csv.records {
            let field = |i: usize| record.get(cols[i]).unwrap_or("").trim();
            let volume = match field(1).parse::<u64>() {
                Ok(v) => v,
                Err(_) => {
                    diags.push(csv.at(
                        *offset,
                        record,
                        cols[1],
                        format!("volume `{}` is not a whole number", field(1)),
                    ));
                    continue;
                }
            };
            if field(0).is_empty() || field(2).is_empty() {
                diags.push(csv.at(
                    *offset,
                    record,
                    cols[0],
                    "keyword and category must not be empty".into(),
                ));
                continue;
            }
            if !MARKETPLACES.contains(&field(3)) {
                diags.push(csv.at(
                    *offset,
                    record,
                    cols[3],
                    format!(
                        "unknown marketplace `{}`; known: {}",
                        field(3),
                        MARKETPLACES.join(", ")
                    ),
                ));
                continue;
            }
            by_category
                .entry(field(2).to_string())
                .or_default()
                .push(Keyword {
                    text: field(0).to_string(),
                    volume,
                    marketplace: field(3).to_string(),
                });
        }
        for list in by_category.values_mut() {
            list.sort_by(|a, b| b.volume.cmp(&a.volume).then_with(|| a.text.cmp(&b.text)));
            list.dedup_by(|a, b| a.text == b.text);
        }
        keywords.by_locale.set(locale, by_category);
    }
    (diags.len() == before).then_some(keywords)
}

/// `products.csv`. A product's name (and optional description) at a locale other than English
/// may be left out where that locale's translation memory translates the English one.
pub(super) fn load_products(
    path: &Path,
    locales: &[Locale],
    translations: &HashMap<Locale, Arc<Memory>>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Products> {
    if !path.exists() {
        return Some(Products::default());
    }
    let before = diags.len();
    let csv = Csv::read(path, diags)?;
    let required = ["sku", "path", "availability", "image", "brand", "category"];
    let mut missing: Vec<String> = required
        .iter()
        .filter(|c| csv.column(c).is_none())
        .map(|c| c.to_string())
        .collect();
    let translated = |locale: Locale, english: &str| {
        translations
            .get(&locale)
            .and_then(|m| m.get(None, english))
            .map(str::to_owned)
    };
    for &locale in locales {
        let mut needed = vec![format!("price_{}", locale.currency().to_lowercase())];
        if locale == Locale::En || !translations.contains_key(&locale) {
            needed.push(format!("name_{}", locale.code()));
        }
        for col in needed {
            if csv.column(&col).is_none() {
                missing.push(col);
            }
        }
    }
    if !missing.is_empty() {
        diags.push(
            csv.src
                .diagnostic(0..0, format!("missing columns: {}", missing.join(", "))),
        );
        return None;
    }
    let col = |name: &str| csv.column(name).expect("checked above");
    let mut products = Products::default();
    for (record, offset) in &csv.records {
        let get = |name: &str| {
            csv.column(name)
                .and_then(|c| record.get(c))
                .unwrap_or("")
                .trim()
                .to_string()
        };
        let sku = get("sku");
        let page = get("path");
        if sku.is_empty() || products.by_sku.contains_key(&sku) {
            diags.push(csv.at(
                *offset,
                record,
                col("sku"),
                format!("sku `{sku}` is empty or repeated"),
            ));
            continue;
        }
        if !page.starts_with('/') || products.by_path.contains_key(page.trim_end_matches('/')) {
            diags.push(csv.at(
                *offset,
                record,
                col("path"),
                format!("path `{page}` must start with `/` and be unique"),
            ));
            continue;
        }
        let availability = get("availability");
        if !AVAILABILITY.contains(&availability.as_str()) {
            diags.push(csv.at(
                *offset,
                record,
                col("availability"),
                format!(
                    "availability `{availability}` is not one of {}",
                    AVAILABILITY.join(", ")
                ),
            ));
        }
        let mut name: Localized<String> = Localized::default();
        let mut description: Localized<String> = Localized::default();
        let mut price = Localized::default();
        for &locale in locales {
            let name_col = format!("name_{}", locale.code());
            let price_col = format!("price_{}", locale.currency().to_lowercase());
            let english = name.get(Locale::En).clone();
            let mut text = get(&name_col);
            if text.is_empty() && locale != Locale::En {
                text = translated(locale, &english).unwrap_or_default();
            }
            let mut about = get(&format!("description_{}", locale.code()));
            if about.is_empty() && locale != Locale::En {
                about = translated(locale, description.get(Locale::En)).unwrap_or_default();
            }
            description.set(locale, about);
            if text.is_empty() {
                let message = match translations.get(&locale) {
                    Some(_) if locale != Locale::En => format!(
                        "{name_col} is empty and translations/{}.po does not translate `{english}`",
                        locale.code()
                    ),
                    _ => format!("{name_col} is empty"),
                };
                diags.push(csv.at(
                    *offset,
                    record,
                    csv.column(&name_col).unwrap_or_else(|| col("sku")),
                    message,
                ));
            }
            name.set(locale, text);
            let amount = get(&price_col);
            if !is_decimal(&amount) {
                diags.push(csv.at(
                    *offset,
                    record,
                    col(&price_col),
                    format!(
                        "{price_col} `{amount}` must be a plain decimal like 24.90 (no separators)"
                    ),
                ));
            }
            price.set(locale, amount);
        }
        let product = Arc::new(Product {
            sku: sku.clone(),
            path: page.trim_end_matches('/').to_string(),
            name,
            description,
            price,
            availability,
            image: get("image"),
            brand: get("brand"),
            category: get("category"),
        });
        products.by_sku.insert(sku, product.clone());
        products
            .by_path
            .insert(product.path.clone(), product.clone());
        products.list.push(product);
    }
    (diags.len() == before).then_some(products)
}

pub(super) fn is_decimal(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    !int.is_empty()
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.chars().all(|c| c.is_ascii_digit())
        && frac.is_empty() != s.contains('.')
}
