//! `[reviews]`: where the origin's pages show buyer reviews. The rewriter reads them as a page
//! streams by and states them as the product's `review` in its structured data; nothing is
//! invented (a review without an author or a rating on the page is left out).

use lol_html::Selector;
use toml::Spanned;

use super::super::Validator;
use super::super::raw::RawReviews;

/// The selectors of one review's parts are matched inside an element of `item`.
#[derive(Debug, Clone)]
pub struct ReviewRules {
    pub item: Selector,
    pub author: Selector,
    /// An element whose `aria-label`, `content` or text holds the rating (its first number, or
    /// else its count of ★).
    pub rating: Selector,
    pub body: Option<Selector>,
    /// An element whose `datetime` or text is the date (ISO 8601).
    pub date: Option<Selector>,
    /// The best rating of the site's scale (the worst is 1).
    pub best: u8,
    /// Reviews stated per page, the first ones shown.
    pub max: usize,
}

pub(super) fn review_rules(raw: &RawReviews, v: &mut Validator<'_>) -> Option<ReviewRules> {
    let item = single(&raw.item, v).and_then(|_| v.selector(&raw.item));
    let mut inside = |field: &Spanned<String>| -> Option<Selector> {
        single(field, v)?;
        v.selector(field)?;
        let item = raw.item.get_ref().trim();
        match format!("{item} {}", field.get_ref().trim()).parse() {
            Ok(selector) => Some(selector),
            Err(e) => {
                v.error(
                    field.span(),
                    format!("invalid CSS selector inside `{item}`: {e}"),
                );
                None
            }
        }
    };
    let author = inside(&raw.author);
    let rating = inside(&raw.rating);
    let body = raw.body.as_ref().map(&mut inside);
    let date = raw.date.as_ref().map(&mut inside);
    let best = v.count_or(&raw.best, 5, 2..=100, |_| {
        "best is the top of the rating scale, from 2 to 100".into()
    }) as u8;
    let max = v.count_or(&raw.max, 20, 1..=100, |_| {
        "max is a number of reviews from 1 to 100".into()
    }) as usize;
    Some(ReviewRules {
        item: item?,
        author: author?,
        rating: rating?,
        body: body.flatten(),
        date: date.flatten(),
        best,
        max,
    })
}

/// One selector, not a list: a review's parts are looked for inside its item, and `a, b`
/// inside `li` cannot be written as one selector.
fn single(value: &Spanned<String>, v: &mut Validator<'_>) -> Option<()> {
    if value.get_ref().contains(',') {
        v.error(value.span(), "one selector here, not a list");
        return None;
    }
    Some(())
}
