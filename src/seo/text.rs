//! Text that goes into HTML: escaping, width budgets measured as a results page draws the text
//! (font advances, so Thai vowel and tone marks take no room and never split from their
//! consonant), and prices and quantities in each locale's own notation.

use std::sync::LazyLock;

use unicode_segmentation::UnicodeSegmentation;

use crate::locale::Locale;

/// What a results page shows of a title or a description: a width in pixels at the size it
/// draws the text in (Google: titles at 20 px in Arial, about 600 px wide; descriptions at 14 px,
/// two lines of about 920 px). Thai is drawn in the platform's Thai font; Noto Sans Thai stands
/// for it.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    pub max_px: f32,
    pub size_px: f32,
}

pub const TITLE: Budget = Budget {
    max_px: 600.0,
    size_px: 20.0,
};

pub const DESCRIPTION: Budget = Budget {
    max_px: 920.0,
    size_px: 14.0,
};

/// Per code point, the advance in thousandths of an em (`advances.txt`, measured from the fonts
/// by `advances.py`); `None` where the font has no glyph.
static ADVANCES: LazyLock<Vec<(u32, Vec<Option<u16>>)>> = LazyLock::new(|| {
    include_str!("advances.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|line| {
            let mut fields = line.split(' ');
            let start = u32::from_str_radix(fields.next().unwrap_or_default(), 16)
                .expect("advances.txt: hex code point");
            (start, fields.map(|w| w.parse().ok()).collect())
        })
        .collect()
});

/// Advance of `c` in thousandths of an em: the font's, else an em for wide (CJK, emoji)
/// characters and an average letter for the rest.
fn advance(c: char) -> u32 {
    let cp = u32::from(c);
    let table = &*ADVANCES;
    let at = table.partition_point(|(start, _)| *start <= cp);
    let known = at.checked_sub(1).and_then(|i| {
        table[i]
            .1
            .get((cp - table[i].0) as usize)
            .copied()
            .flatten()
    });
    match known {
        Some(w) => u32::from(w),
        None if cp >= 0x1100 => 1000,
        None => 556,
    }
}

/// Width of `text` in pixels when drawn at `size_px`.
pub fn width_px(text: &str, size_px: f32) -> f32 {
    text.chars().map(advance).sum::<u32>() as f32 * size_px / 1000.0
}

/// Where a text may end without reading cut off: the end of a sentence, else of a clause.
const SENTENCE_ENDS: [&str; 3] = [". ", "! ", "? "];
const CLAUSE_ENDS: [&str; 5] = [", ", "; ", ": ", " – ", " - "];

/// `text` if it fits `budget`, else its longest beginning that ends a sentence, or else a clause
/// (before a comma or a dash; in Thai, before a space), and fits, so that nothing reads cut off; only a text without such a
/// place is cut at a word (at a cluster for Thai without spaces) and ends with `…`. A brand
/// after a final ` | ` stays.
pub fn fit(text: &str, budget: Budget) -> String {
    let width = |s: &str| width_px(s, budget.size_px);
    if width(text) <= budget.max_px {
        return text.to_string();
    }
    let (head, brand) = match text.rfind(" | ") {
        Some(at) if width(&text[at..]) < budget.max_px / 3.0 => text.split_at(at),
        _ => (text, ""),
    };
    let room = budget.max_px - width(brand);
    let trim = |s: &str| {
        s.trim_end_matches([' ', ',', ';', ':', '–', '-'])
            .to_string()
    };
    // A phrase end is kept only if it leaves more than a third of the room used: a stub loses
    // more than a cut word. A sentence keeps its full stop; a clause loses its comma or dash.
    // Thai separates phrases with a space (it has none between words).
    let longest = |ends: &[&str], keep_mark: usize| {
        ends.iter()
            .flat_map(|end| {
                head.match_indices(end)
                    .map(|(at, _)| &head[..at + keep_mark])
            })
            .filter(|p| width(p) <= room && width(p) > room / 3.0)
            .max_by_key(|p| p.len())
    };
    let thai = head.chars().any(|c| ('\u{0E00}'..='\u{0E7F}').contains(&c));
    let sentence = longest(&SENTENCE_ENDS, 1);
    let clause = longest(&CLAUSE_ENDS, 0).or_else(|| longest(if thai { &[" "] } else { &[] }, 0));
    // A whole sentence reads best, unless a clause end keeps much more of the text.
    let phrase = match (sentence, clause) {
        (Some(s), Some(c)) if width(s) < 0.75 * width(c) => Some(c),
        (s, c) => s.or(c),
    };
    if let Some(p) = phrase {
        return format!("{}{brand}", trim(p));
    }
    let ellipsis = width("…");
    let clusters: Vec<(usize, &str)> = head.grapheme_indices(true).collect();
    let spaces: Vec<usize> = clusters
        .iter()
        .filter(|(_, g)| g.trim().is_empty())
        .map(|&(at, _)| at)
        .collect();
    let candidates: Vec<usize> = if spaces.is_empty() {
        clusters.iter().map(|&(at, _)| at).collect()
    } else {
        spaces
    };
    let cut = candidates
        .iter()
        .rev()
        .find(|&&at| width(&head[..at]) + ellipsis <= room)
        .copied()
        .unwrap_or(0);
    format!("{}…{brand}", trim(&head[..cut]))
}

pub fn escape_text(s: &str) -> String {
    escape(s, false)
}

pub fn escape_attr(s: &str) -> String {
    escape(s, true)
}

fn escape(s: &str, attr: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' if attr => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// A feed price (`408400`, `24.90`) as shoppers of the locale write it:
/// `USD 24.90`, `Rp 408.400`, `645.000 ₫`, `฿1,419.60`.
pub fn format_price(locale: Locale, amount: &str) -> String {
    let (int, frac) = amount.split_once('.').unwrap_or((amount, ""));
    let decimal = match locale {
        Locale::Id | Locale::Vi => ',',
        Locale::En | Locale::Th => '.',
    };
    let mut grouped = group_digits(locale, int);
    // Rupiah and dong have no minor unit in use: `.00` is dropped, other fractions are kept.
    let drop_frac = frac.is_empty()
        || frac.chars().all(|c| c == '0') && matches!(locale, Locale::Id | Locale::Vi);
    if !drop_frac {
        grouped.push(decimal);
        grouped.push_str(frac);
    }
    match locale {
        Locale::En => format!("USD {grouped}"),
        Locale::Id => format!("Rp {grouped}"),
        Locale::Vi => format!("{grouped} ₫"),
        Locale::Th => format!("฿{grouped}"),
    }
}

/// Digits in groups of three, with the locale's separator (`1,000`, `1.000`).
fn group_digits(locale: Locale, int: &str) -> String {
    let group = match locale {
        Locale::Id | Locale::Vi => '.',
        Locale::En | Locale::Th => ',',
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(group);
        }
        grouped.push(c);
    }
    grouped
}

/// A quantity in a UN/CEFACT unit, as a buyer in `locale` writes it (`1.000 pcs`, `300 bộ`).
pub fn format_quantity(locale: Locale, n: u64, unit: &str) -> String {
    let words: Option<[&str; 4]> = match unit {
        "H87" => Some(["pcs", "pcs", "chiếc", "ชิ้น"]),
        "SET" => Some(["sets", "set", "bộ", "ชุด"]),
        "CT" => Some(["cartons", "karton", "thùng", "กล่อง"]),
        _ => None,
    };
    let unit = words.map_or(unit, |w| w[locale as usize]);
    format!("{} {unit}", group_digits(locale, &n.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_in_the_buyers_notation() {
        assert_eq!(format_quantity(Locale::En, 1000, "H87"), "1,000 pcs");
        assert_eq!(format_quantity(Locale::Id, 1000, "SET"), "1.000 set");
        assert_eq!(format_quantity(Locale::Vi, 300, "SET"), "300 bộ");
        assert_eq!(format_quantity(Locale::Th, 3000, "H87"), "3,000 ชิ้น");
        assert_eq!(format_quantity(Locale::En, 5, "KGM"), "5 KGM");
    }

    #[test]
    fn prices_in_local_notation() {
        assert_eq!(format_price(Locale::En, "24.90"), "USD 24.90");
        assert_eq!(format_price(Locale::Id, "408400"), "Rp 408.400");
        assert_eq!(format_price(Locale::Vi, "1088000"), "1.088.000 ₫");
        assert_eq!(format_price(Locale::Th, "1419.60"), "฿1,419.60");
        assert_eq!(format_price(Locale::Th, "99.71"), "฿99.71");
    }

    #[test]
    fn widths_are_the_fonts_advances() {
        // Liberation Sans (Arial's metrics): "A" 1366 and "a" 1139 of 2048 units.
        assert!((width_px("A", 20.0) - 1366.0 / 2048.0 * 20.0).abs() < 0.02);
        assert!((width_px("aaaa", 20.0) - 4.0 * 1139.0 / 2048.0 * 20.0).abs() < 0.05);
        // Thai vowel and tone marks above and below take no room of their own.
        assert_eq!(width_px("ก่", 20.0), width_px("ก", 20.0));
        // Precomposed Vietnamese letters are as wide as their base letter.
        assert_eq!(width_px("ạ", 14.0), width_px("a", 14.0));
        assert_eq!(width_px("漢", 10.0), 10.0);
    }

    #[test]
    fn fit_keeps_the_brand_and_ends_at_a_phrase() {
        let title = "Nồi chiên không dầu 4.5L giá sỉ tận xưởng – nồi chiên không dầu giá rẻ cho đại lý và shop online | LIANHE";
        assert!(width_px(title, 20.0) > 600.0);
        let fitted = fit(title, TITLE);
        assert_eq!(fitted, "Nồi chiên không dầu 4.5L giá sỉ tận xưởng | LIANHE");
        assert!(width_px(&fitted, 20.0) <= 600.0);
        let short = "Air Fryer 4.5L | LIANHE";
        assert_eq!(fit(short, TITLE), short);
        // A sentence keeps its full stop; nothing reads cut off.
        let description = "Factory-direct air fryers from Foshan. OEM logo, 220 V plugs and samples for importers in Indonesia, Vietnam and Thailand, with SNI and TISI certification support for every model we make and ship.";
        let fitted = fit(
            description,
            Budget {
                max_px: 400.0,
                size_px: 14.0,
            },
        );
        assert_eq!(fitted, "Factory-direct air fryers from Foshan.");
    }

    #[test]
    fn fit_cuts_a_text_without_phrases_at_a_word_or_a_thai_cluster() {
        let words = "Rice cooker digital lima liter murah grosir pabrik";
        let fitted = fit(
            words,
            Budget {
                max_px: 150.0,
                size_px: 14.0,
            },
        );
        assert!(fitted.ends_with('…') && words.starts_with(fitted.trim_end_matches('…')));
        assert!(!fitted.trim_end_matches('…').ends_with(' '));
        assert!(width_px(&fitted, 14.0) <= 150.0);
        let thai = "ที่นี่ร้านค้าขายส่งหม้อหุงข้าวไฟฟ้าราคาโรงงาน";
        let fitted = fit(
            thai,
            Budget {
                max_px: 100.0,
                size_px: 14.0,
            },
        );
        let body = fitted.trim_end_matches('…');
        assert!(thai.starts_with(body) && !body.is_empty());
        // No combining mark is left without its base.
        let last = body.graphemes(true).next_back().unwrap();
        assert!(thai.graphemes(true).any(|g| g == last));
        assert!(width_px(&fitted, 14.0) <= 100.0);
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape_attr(r#"a "b" <c> & d"#),
            "a &quot;b&quot; &lt;c&gt; &amp; d"
        );
        assert_eq!(escape_text(r#"a "b""#), r#"a "b""#);
    }
}
