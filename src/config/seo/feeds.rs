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
    pub(super) fn at(&self, offset: usize, col: usize, message: String) -> Diagnostic {
        let within = field_start(&self.src.text[offset..], col);
        self.src
            .diagnostic(offset + within..offset + within, message)
    }
}

/// Byte offset of field `col` in the CSV record starting `text`: commas inside quotes (where a
/// doubled quote is a literal one) do not separate fields. The end of the record if it has fewer.
pub(super) fn field_start(text: &str, col: usize) -> usize {
    if col == 0 {
        return 0;
    }
    let (mut field, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                field += 1;
                if field == col {
                    return i + 1;
                }
            }
            '\n' if !quoted => return i,
            _ => {}
        }
    }
    text.len()
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
                        cols[1],
                        format!("volume `{}` is not a whole number", field(1)),
                    ));
                    continue;
                }
            };
            if field(0).is_empty() || field(2).is_empty() {
                diags.push(csv.at(
                    *offset,
                    cols[0],
                    "keyword and category must not be empty".into(),
                ));
                continue;
            }
            if !MARKETPLACES.contains(&field(3)) {
                diags.push(csv.at(
                    *offset,
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
                col("sku"),
                format!("sku `{sku}` is empty or repeated"),
            ));
            continue;
        }
        if !page.starts_with('/') || products.by_path.contains_key(page.trim_end_matches('/')) {
            diags.push(csv.at(
                *offset,
                col("path"),
                format!("path `{page}` must start with `/` and be unique"),
            ));
            continue;
        }
        let availability = get("availability");
        if !AVAILABILITY.contains(&availability.as_str()) {
            diags.push(csv.at(
                *offset,
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
                    csv.column(&name_col).unwrap_or_else(|| col("sku")),
                    message,
                ));
            }
            name.set(locale, text);
            let amount = get(&price_col);
            if !is_decimal(&amount) {
                diags.push(csv.at(
                    *offset,
                    col(&price_col),
                    format!(
                        "{price_col} `{amount}` must be a plain decimal like 24.90 (no separators)"
                    ),
                ));
            }
            price.set(locale, amount);
        }
        let optional =
            |name: &str, ok: fn(&str) -> bool, what: &str, diags: &mut Vec<Diagnostic>| {
                let value = get(name);
                if value.is_empty() {
                    return None;
                }
                if ok(&value) {
                    return Some(value);
                }
                diags.push(csv.at(*offset, col(name), format!("{name} `{value}` {what}")));
                None
            };
        let mpn = optional("mpn", |_| true, "", diags);
        let gtin = optional(
            "gtin",
            is_gtin,
            "is not a GTIN-8, -12, -13 or -14 with a valid check digit",
            diags,
        );
        let moq = optional(
            "moq",
            |v| v.parse::<u64>().is_ok_and(|n| n > 0),
            "must be a whole number of pieces above 0",
            diags,
        )
        .and_then(|v| v.parse().ok());
        let unit = optional(
            "moq_unit",
            |u| {
                (2..=3).contains(&u.len())
                    && u.chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            },
            "is not a UN/CEFACT unit code like H87 or SET",
            diags,
        );
        let moq = moq.map(|n| (n, unit.unwrap_or_else(|| "H87".to_string())));
        let price_valid_until = optional(
            "price_valid_until",
            is_date,
            "must be a date like 2027-06-30",
            diags,
        );
        let lead_time = optional(
            "lead_time",
            |v| parse_days(v).is_some(),
            "must be days like 15 or 15-25",
            diags,
        )
        .and_then(|v| parse_days(&v));
        let rating = optional(
            "rating",
            |v| is_decimal(v) && v.parse::<f64>().is_ok_and(|r| (1.0..=5.0).contains(&r)),
            "must be an average rating from 1 to 5, like 4.7",
            diags,
        );
        let reviews = optional(
            "review_count",
            |v| v.parse::<u64>().is_ok_and(|n| n > 0),
            "must be a whole number of reviews above 0",
            diags,
        )
        .and_then(|v| v.parse::<u64>().ok());
        let rating = match (rating, reviews) {
            (Some(value), Some(count)) => Some((value, count)),
            (None, None) => None,
            (value, _) => {
                let missing = if value.is_some() {
                    "review_count"
                } else {
                    "rating"
                };
                diags.push(csv.at(
                    *offset,
                    csv.column(missing).unwrap_or_else(|| col("sku")),
                    format!("rating and review_count go together: {missing} is missing"),
                ));
                None
            }
        };
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
            mpn,
            gtin,
            moq,
            price_valid_until,
            lead_time,
            specs: Localized::default(),
            samples: Localized::default(),
            rating,
        });
        products.by_sku.insert(sku, product.clone());
        products
            .by_path
            .insert(product.path.clone(), product.clone());
        products.list.push(product);
    }
    (diags.len() == before).then_some(products)
}

/// `15` → (15, 15), `15-25` → (15, 25); days above 0, the range in order.
fn parse_days(v: &str) -> Option<(u32, u32)> {
    let (lo, hi) = v.split_once('-').unwrap_or((v, v));
    let (lo, hi) = (
        lo.trim().parse::<u32>().ok()?,
        hi.trim().parse::<u32>().ok()?,
    );
    (lo > 0 && lo <= hi && hi <= 365).then_some((lo, hi))
}

/// GS1 check digit: weights 3 and 1 alternating from the digit before it, right to left.
pub(super) fn is_gtin(s: &str) -> bool {
    let digits: Vec<u32> = s.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != s.len() || ![8, 12, 13, 14].contains(&digits.len()) {
        return false;
    }
    let (check, body) = digits.split_last().unwrap_or((&0, &[]));
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| if i % 2 == 0 { d * 3 } else { *d })
        .sum();
    (10 - sum % 10) % 10 == *check
}

/// `YYYY-MM-DD` with a month and a day that exist (ISO 8601 calendar date, as schema.org's Date).
pub fn is_date(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts[..] else { return false };
    let num = |p: &str, len: usize| {
        (p.len() == len && p.chars().all(|c| c.is_ascii_digit()))
            .then(|| p.parse::<u32>().ok())
            .flatten()
    };
    let (Some(y), Some(m), Some(d)) = (num(y, 4), num(m, 2), num(d, 2)) else {
        return false;
    };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&d)
}

pub(super) fn is_decimal(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    !int.is_empty()
        && int.chars().all(|c| c.is_ascii_digit())
        && frac.chars().all(|c| c.is_ascii_digit())
        && frac.is_empty() != s.contains('.')
}
