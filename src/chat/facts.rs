//! A product's facts from the site's feed and `facts.toml`, said in the buyer's language: the
//! sentences that go before the intent's answer when a message names a product. Only what the
//! rules state is said; a fact they lack leaves its sentence out and the intent's answer covers
//! the rest.

use crate::config::Product;
use crate::locale::Locale;
use crate::seo::{format_price, format_quantity};

/// `{product}`, `{price}`, `{unit}`, `{valid}`.
const PRICE: [&str; 4] = [
    "{product}: {price} per {unit}{valid}.",
    "Harga {product}: {price} per {unit}{valid}.",
    "Giá {product}: {price}/{unit}{valid}.",
    "ราคา {product}: {price} ต่อ{unit}{valid}",
];
/// `{date}`: until when the feed's price holds.
const VALID: [&str; 4] = [
    " (valid until {date})",
    " (berlaku hingga {date})",
    " (áp dụng đến {date})",
    " (ราคานี้ใช้ได้ถึง {date})",
];
const MOQ: [&str; 4] = [
    "Minimum order: {moq}.",
    "Minimal order (MOQ): {moq}.",
    "Số lượng đặt tối thiểu (MOQ): {moq}.",
    "สั่งซื้อขั้นต่ำ (MOQ): {moq}",
];
const LEAD_TIME: [&str; 4] = [
    "Production takes {days} days after the order is confirmed.",
    "Waktu produksi {days} hari setelah pesanan dikonfirmasi.",
    "Thời gian sản xuất {days} ngày sau khi xác nhận đơn hàng.",
    "ระยะเวลาผลิต {days} วันหลังยืนยันคำสั่งซื้อ",
];
/// `{specs}`: the line of `facts.toml`.
const SPECS: [&str; 4] = [
    "{product} specifications: {specs}",
    "Spesifikasi {product}: {specs}",
    "Thông số {product}: {specs}",
    "สเปก {product}: {specs}",
];
/// `{samples}`: the line of `facts.toml`.
const SAMPLES: [&str; 4] = [
    "Samples of {product}: {samples}",
    "Sampel {product}: {samples}",
    "Hàng mẫu {product}: {samples}",
    "ตัวอย่าง {product}: {samples}",
];
const LINK: [&str; 4] = [
    "Product page: {link}",
    "Halaman produk: {link}",
    "Trang sản phẩm: {link}",
    "หน้าสินค้า: {link}",
];
/// The link when no other fact names the product.
const NAMED_LINK: [&str; 4] = [
    "Product page of {product}: {link}",
    "Halaman produk {product}: {link}",
    "Trang sản phẩm {product}: {link}",
    "หน้าสินค้า {product}: {link}",
];
/// The unit a price is per, by the feed's MOQ unit (UN/CEFACT).
const PIECE: [&str; 4] = ["piece", "pcs", "chiếc", "ชิ้น"];
const SET: [&str; 4] = ["set", "set", "bộ", "ชุด"];

/// Intents whose answers a named product's facts lead.
pub const INTENTS: [&str; 5] = [
    "price_quote",
    "moq",
    "lead_time",
    "product_specs",
    "samples",
];

/// The facts of `product` that answer `intent` in `locale`, ending with the link to its page
/// (`None` for intents its facts do not answer).
pub fn lead(intent: &str, product: &Product, locale: Locale, link: &str) -> Option<String> {
    let at = |t: [&'static str; 4]| t[locale as usize];
    let name = product.name.get(locale);
    let price = || {
        let unit = match product.moq.as_ref().map(|(_, u)| u.as_str()) {
            Some("SET") => at(SET),
            Some("H87") | None => at(PIECE),
            Some(other) => other,
        };
        let valid = product
            .price_valid_until
            .as_deref()
            .map(|d| at(VALID).replace("{date}", &format_date(locale, d)))
            .unwrap_or_default();
        at(PRICE)
            .replace("{product}", name)
            .replace("{price}", &format_price(locale, product.price.get(locale)))
            .replace("{unit}", unit)
            .replace("{valid}", &valid)
    };
    let moq = || {
        product
            .moq
            .as_ref()
            .map(|(n, unit)| at(MOQ).replace("{moq}", &format_quantity(locale, *n, unit)))
    };
    let mut sentences: Vec<String> = Vec::new();
    match intent {
        "price_quote" => {
            sentences.push(price());
            sentences.extend(moq());
        }
        "moq" => {
            sentences.extend(moq());
            sentences.push(price());
        }
        "lead_time" => sentences.extend(product.lead_time.map(|(lo, hi)| {
            let days = if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}–{hi}")
            };
            format!("{name}: {}", at(LEAD_TIME).replace("{days}", &days))
        })),
        "product_specs" => {
            let specs = product.specs.get(locale);
            let about = product.description.get(locale);
            if !specs.is_empty() {
                let line = at(SPECS)
                    .replace("{product}", name)
                    .replace("{specs}", specs);
                sentences.push(end_sentence(locale, line));
            } else if !about.is_empty() {
                sentences.push(format!("{name}: {about}"));
            }
        }
        "samples" => {
            let samples = product.samples.get(locale);
            if !samples.is_empty() {
                let line = at(SAMPLES)
                    .replace("{product}", name)
                    .replace("{samples}", samples);
                sentences.push(end_sentence(locale, line));
            }
        }
        _ => return None,
    }
    let link = if sentences.is_empty() {
        at(NAMED_LINK).replace("{product}", name)
    } else {
        at(LINK).to_string()
    }
    .replace("{link}", link);
    sentences.push(link);
    Some(sentences.join(" "))
}

/// A full stop after an operator's line, unless it has one (Thai ends sentences with a space).
fn end_sentence(locale: Locale, mut line: String) -> String {
    if locale != Locale::Th && !line.ends_with(['.', '!', '?', '…']) {
        line.push('.');
    }
    line
}

/// `2027-12-31` as the locale writes dates: `31 Dec 2027`, `31/12/2027`.
fn format_date(locale: Locale, iso: &str) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mut parts = iso.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return iso.to_string();
    };
    match locale {
        Locale::En => {
            let month = m
                .parse::<usize>()
                .ok()
                .and_then(|m| MONTHS.get(m.wrapping_sub(1)));
            match month {
                Some(month) => format!("{} {month} {y}", d.trim_start_matches('0')),
                None => iso.to_string(),
            }
        }
        _ => format!("{d}/{m}/{y}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_the_buyers_notation() {
        assert_eq!(format_date(Locale::En, "2027-12-31"), "31 Dec 2027");
        assert_eq!(format_date(Locale::En, "2027-03-05"), "5 Mar 2027");
        assert_eq!(format_date(Locale::Id, "2027-12-31"), "31/12/2027");
        assert_eq!(format_date(Locale::Th, "2027-12-31"), "31/12/2027");
    }
}
