//! Text that goes into HTML: escaping, length limits that count what a reader sees (grapheme
//! clusters, so Thai vowel and tone marks never split from their consonant), and prices in each
//! locale's own notation.

use unicode_segmentation::UnicodeSegmentation;

use crate::locale::Locale;

/// Most characters Google shows of a title and a description in search results, per locale.
pub struct Limits {
    pub title: usize,
    pub description: usize,
}

pub fn limits(locale: Locale) -> Limits {
    match locale {
        // Thai clusters render wider than Latin letters on average: show fewer.
        Locale::Th => Limits {
            title: 60,
            description: 140,
        },
        _ => Limits {
            title: 70,
            description: 160,
        },
    }
}

/// Shortens `text` to at most `max` grapheme clusters, ending with `…`. Space-separated scripts are
/// cut at a word boundary; Thai, written without spaces between words, at a cluster boundary.
pub fn clamp(text: &str, max: usize) -> String {
    let graphemes: Vec<&str> = text.graphemes(true).collect();
    if graphemes.len() <= max {
        return text.to_string();
    }
    let keep = &graphemes[..max.saturating_sub(1)];
    let mut cut = keep.len();
    let at_word_end = graphemes[keep.len()].trim().is_empty();
    if !at_word_end
        && let Some(space) = keep.iter().rposition(|g| g.trim().is_empty())
        && space > keep.len() / 2
    {
        cut = space;
    }
    let mut out: String = keep[..cut].concat();
    out.truncate(
        out.trim_end_matches([' ', ',', ';', ':', '–', '-', '|'])
            .len(),
    );
    out.push('…');
    out
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
    fn clamp_counts_graphemes_and_keeps_thai_clusters_whole() {
        // 12 Thai characters but 9 grapheme clusters (tone marks and vowels combine).
        let thai = "ที่นี่ร้านค้าขายส่ง";
        assert_eq!(clamp(thai, 100), thai);
        let short = clamp(thai, 6);
        assert!(short.ends_with('…'));
        assert_eq!(short.graphemes(true).count(), 6);
        assert!(thai.starts_with(short.trim_end_matches('…')));
        // No combining mark is left without its base.
        let body = short.trim_end_matches('…');
        let last = body.graphemes(true).next_back().unwrap();
        assert!(thai.graphemes(true).any(|g| g == last));
    }

    #[test]
    fn clamp_cuts_latin_text_at_a_word() {
        let s = clamp("Rice cooker digital lima liter murah grosir", 20);
        assert_eq!(s, "Rice cooker digital…");
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
