//! Buyer reviews read from the page as it streams by (the site's `[reviews]` selectors) and
//! stated after them, at the end of the body, in a JSON-LD block that joins the head's Product
//! by `@id`: the head is written before the reviews arrive.
//!
//! Owns: the reviews read so far and the block stating them.
//! Must never: state a review the page does not show (no author or no rating on the page, or a
//! rating outside the site's scale: left out), or hold more than `ReviewRules::max` of them.

use std::sync::{Arc, Mutex};

use crate::config::{ReviewRules, is_date};
use crate::seo::{Review, reviews_script};
use crate::translate::replace::Lookup;
use crate::translate::segment::{decode_entities, normalize_space_into};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Author,
    Rating,
    Body,
    Date,
}

/// The review whose item element is open.
#[derive(Default)]
struct Draft {
    review: Review,
    /// Set once the page gave a rating (the review's `rating` field has no "missing" value).
    rated: bool,
    /// Parts already read: the first element of each part counts.
    seen: [bool; 4],
    /// The part whose text is being read, and that text so far (as in the HTML source).
    reading: Option<(Part, String)>,
}

pub(super) struct Reviews {
    best: u8,
    max: usize,
    /// The page's translation memory: a review's text is stated as the page shows it.
    lookup: Option<Arc<dyn Lookup>>,
    done: Vec<Review>,
    current: Option<Draft>,
    written: bool,
}

pub(super) type Shared = Arc<Mutex<Reviews>>;

impl Reviews {
    pub(super) fn new(rules: &ReviewRules, lookup: Option<Arc<dyn Lookup>>) -> Shared {
        Arc::new(Mutex::new(Reviews {
            best: rules.best,
            max: rules.max,
            lookup,
            done: Vec::new(),
            current: None,
            written: false,
        }))
    }

    /// An item element starts (one that never ended is finished first).
    pub(super) fn start_item(&mut self) {
        self.end_item();
        if self.done.len() < self.max && !self.written {
            self.current = Some(Draft::default());
        }
    }

    /// The item ends: its review is kept if the page gave what a review needs.
    pub(super) fn end_item(&mut self) {
        let Some(mut draft) = self.current.take() else {
            return;
        };
        if let Some((part, _)) = draft.reading {
            self.finish_part(&mut draft, part);
        }
        let rating = draft.review.rating;
        if !draft.review.author.is_empty()
            && draft.rated
            && (1.0..=f32::from(self.best)).contains(&rating)
        {
            self.done.push(draft.review);
        }
    }

    /// An element of `part` starts inside the item; `attribute` is the value it carries (a
    /// rating's `aria-label` or `content`, a date's `datetime`), read instead of its text.
    /// Returns whether its text is now read (the caller then reports where it ends).
    pub(super) fn start_part(&mut self, part: Part, attribute: Option<String>) -> bool {
        let Some(draft) = &mut self.current else {
            return false;
        };
        if draft.seen[part as usize] || draft.reading.is_some() {
            return false;
        }
        draft.seen[part as usize] = true;
        let from_attribute = attribute.and_then(|value| match part {
            Part::Rating => rating_of(&value).map(|r| draft.set_rating(r)),
            Part::Date => date_of(&value).map(|d| draft.review.date = Some(d)),
            Part::Author | Part::Body => None,
        });
        if from_attribute.is_some() {
            return false;
        }
        draft.reading = Some((part, String::new()));
        true
    }

    pub(super) fn text(&mut self, part: Part, html: &str) {
        if let Some(Draft {
            reading: Some((reading, text)),
            ..
        }) = &mut self.current
            && *reading == part
        {
            text.push_str(html);
        }
    }

    pub(super) fn end_part(&mut self, part: Part) {
        if let Some(mut draft) = self.current.take() {
            if draft.reading.as_ref().is_some_and(|(p, _)| *p == part) {
                self.finish_part(&mut draft, part);
            }
            self.current = Some(draft);
        }
    }

    fn finish_part(&self, draft: &mut Draft, part: Part) {
        let Some((_, html)) = draft.reading.take() else {
            return;
        };
        let mut text = String::new();
        normalize_space_into(&decode_entities(&html), &mut text);
        if text.is_empty() {
            return;
        }
        match part {
            Part::Author => draft.review.author = self.as_shown(text),
            Part::Body => draft.review.body = Some(self.as_shown(text)),
            Part::Rating => {
                if let Some(r) = rating_of(&text) {
                    draft.set_rating(r);
                }
            }
            Part::Date => draft.review.date = date_of(&text),
        }
    }

    /// The text as the visitor reads it: its translation on a translated page.
    fn as_shown(&self, text: String) -> String {
        self.lookup
            .as_ref()
            .and_then(|l| l.translation(&text))
            .filter(|t| !t.contains('<'))
            .map_or(text, str::to_owned)
    }

    /// The JSON-LD block stating the reviews read, once, at the end of the body (`None` when
    /// there is none or it was written). `ascii_only` escapes what the page's encoding lacks.
    pub(super) fn take_script(&mut self, product_id: &str, ascii_only: bool) -> Option<String> {
        self.end_item();
        if std::mem::replace(&mut self.written, true) || self.done.is_empty() {
            return None;
        }
        Some(reviews_script(
            product_id, &self.done, self.best, ascii_only,
        ))
    }
}

impl Draft {
    fn set_rating(&mut self, rating: f32) {
        self.review.rating = rating;
        self.rated = true;
    }
}

/// The first number of `text` ("5 out of 5 stars", "4,5/5"), or else its count of stars.
fn rating_of(text: &str) -> Option<f32> {
    let start = text.find(|c: char| c.is_ascii_digit());
    let number = start.map(|at| {
        let rest = &text[at..];
        let end = rest
            .char_indices()
            .find(|&(i, c)| {
                !(c.is_ascii_digit()
                    || ((c == '.' || c == ',')
                        && rest[i + 1..].starts_with(|d: char| d.is_ascii_digit())))
            })
            .map_or(rest.len(), |(i, _)| i);
        rest[..end].replace(',', ".")
    });
    match number {
        Some(n) => n.parse().ok(),
        None => {
            let stars = text.chars().filter(|&c| c == '★').count();
            (stars > 0).then_some(stars as f32)
        }
    }
}

/// The date `YYYY-MM-DD` a `datetime` or a text starts with.
fn date_of(text: &str) -> Option<String> {
    text.trim()
        .get(..10)
        .filter(|d| is_date(d))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_from_labels_texts_and_stars() {
        assert_eq!(rating_of("5 out of 5 stars"), Some(5.0));
        assert_eq!(rating_of("Rated 4,5/5"), Some(4.5));
        assert_eq!(rating_of("4.0"), Some(4.0));
        assert_eq!(rating_of("★★★★☆"), Some(4.0));
        assert_eq!(rating_of("bintang 3."), Some(3.0));
        assert_eq!(rating_of("no rating"), None);
    }

    #[test]
    fn dates_are_iso_days() {
        assert_eq!(date_of("2024-09-03"), Some("2024-09-03".into()));
        assert_eq!(date_of(" 2024-09-03T10:00:00Z"), Some("2024-09-03".into()));
        assert_eq!(date_of("2024-13-03"), None);
        assert_eq!(date_of("3 Sept 2024"), None);
        assert_eq!(date_of("2024-09"), None);
    }
}
