//! `facts.toml`: what the chat states about a product beyond the feed's columns, per language.
//!
//! ```toml
//! ["LH-AF-45"]                 # a SKU of products.csv
//! specs.en = "4.5 L pot, 1400 W, 220-240 V~ 50/60 Hz, 80-200 °C"
//! specs.id = "Kapasitas panci 4.5 L, daya 1400 W, 220-240 V~ 50/60 Hz, 80-200 °C"
//! samples.en = "standard samples ship in 3 working days; with your logo 7-10 days"
//! ```
//!
//! A fact is said only in the languages it is written in: an Indonesian buyer never gets the
//! English line in an Indonesian answer.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use super::{Localized, Products};
use crate::config::diag::Diagnostic;
use crate::config::raw::RawLocalized;
use crate::config::{Validator, parse_toml, read_source};
use crate::locale::Locale;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFacts {
    specs: Option<RawLocalized>,
    samples: Option<RawLocalized>,
}

/// Adds the facts of `path` (if the file exists) to `products`; problems go to `diags` with
/// their position.
pub(super) fn load_facts(path: &Path, products: &mut Products, diags: &mut Vec<Diagnostic>) {
    if !path.exists() {
        return;
    }
    let Some(src) = read_source(path, diags) else {
        return;
    };
    let Some(raw) = parse_toml::<BTreeMap<Spanned<String>, RawFacts>>(&src, diags) else {
        return;
    };
    let mut v = Validator::new(&src, diags);
    let mut by_sku = BTreeMap::new();
    for (sku, facts) in raw {
        if products.by_sku(sku.get_ref()).is_none() {
            v.error(
                sku.span(),
                format!("no product with SKU `{}` in products.csv", sku.get_ref()),
            );
            continue;
        }
        let specs = facts.specs.as_ref().map(|t| texts(&mut v, t));
        let samples = facts.samples.as_ref().map(|t| texts(&mut v, t));
        by_sku.insert(sku.into_inner(), (specs, samples));
    }
    products.edit(|product| {
        if let Some((specs, samples)) = by_sku.remove(&product.sku) {
            product.specs = specs.unwrap_or_default();
            product.samples = samples.unwrap_or_default();
        }
    });
}

fn texts(v: &mut Validator<'_>, raw: &RawLocalized) -> Localized<String> {
    let mut out = Localized::default();
    for (locale, text) in [
        (Locale::En, &raw.en),
        (Locale::Id, &raw.id),
        (Locale::Vi, &raw.vi),
        (Locale::Th, &raw.th),
    ] {
        let Some(text) = text else { continue };
        let trimmed = text.get_ref().trim();
        if trimmed.is_empty() {
            v.error(text.span(), "empty text: leave the language out instead");
        } else {
            out.set(locale, trimmed.to_owned());
        }
    }
    out
}
