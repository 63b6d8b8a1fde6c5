//! Regulatory answers: ranks the knowledge base's entries for a buyer's message with BM25 over
//! language-aware words (Latin diacritics folded, so "hop quy" finds "hợp quy"; Thai split at
//! ICU's dictionary word boundaries), weighs them by the market the message is about, and
//! composes the answer from the entries it used, citing their sources and saying it is
//! guidance, not legal advice.
//!
//! Must never: say anything but the entries' own text, the citation and the disclaimer; answer
//! from the knowledge base when nothing in it matches well (the intent's answer stays).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use serde::Deserialize;

use super::features::{begins_word, folded_words, is_thai, thai_word_starts};
use super::intent::{Example, IntentModel, TrainParams};
use crate::config::{Market, RegEntry};
use crate::locale::Locale;

/// BM25's term-frequency saturation and length normalisation, the usual values.
const K1: f32 = 1.2;
const B: f32 = 0.75;

/// How much an entry of another market counts against one of the market the message is about:
/// it can still win when the message matches it far better ("SNI" asked in Thai).
const OTHER_MARKET: f32 = 0.3;

/// How much an entry about labels counts over others for a question about what a label must
/// say: "energy drink, can the label be English only?" asks the label rule, not the drink's.
const LABEL_TOPIC: f32 = 1.5;

/// How much an entry about other products counts when the message names a product: "serum to
/// Vietnam, which approval?" asks the cosmetics rule, not the food rule whose topic says
/// "approval". Entries about no product in particular (HS codes, Form E) are not weighed.
const OTHER_PRODUCT: f32 = 0.5;

/// An answer states at most this many entries: the best, and those scoring at least `OTHERS`
/// of it (a question often touches two rules, e.g. the approval and the label).
const MAX_ENTRIES: usize = 3;
const OTHERS: f32 = 0.4;

/// Words of a question about import rules, in the four languages (Latin diacritics folded, as
/// messages are; `*` ends a prefix), and the acronyms of the authorities, marks and documents:
/// with one of them, a message is answered from the knowledge base whatever its intent (buyers
/// ask "who registers it?" in as many ways as there are intents). Thai ones are found where a
/// word begins, since Thai is not split into words the same way everywhere. Words that also ask
/// about a product ("heat treated", "EMC", "tara pangan") are left out: they would take a
/// product question away from its intent.
#[rustfmt::skip]
const CUES: &[&str] = &[
    // en
    "permit*", "licen*", "regist*", "certif*", "mandatory", "compulsory", "required",
    "requirement*", "regulat*", "approval", "authority", "customs", "import", "imports",
    "imported", "importing", "importer", "importers", "declar*", "notif*", "halal", "stamp",
    "stamps", "excise", "origin", "import duty", "tariff", "hs", "fumigat*", "conformity",
    "ministry", "mark", "quarantine", "marketing authorisation",
    "marketing authorization", "market authorisation", "market authorization",
    // acronyms
    "bpom", "sni", "sppt", "bpjph", "akl", "akd", "pkrt", "nib", "lartas", "pertek", "tkdn",
    "sdppi", "postel", "komdigi", "kominfo", "kemenkes", "kemendag", "qcvn", "tcvn", "cr mark",
    "dav", "moit", "stameq", "tisi", "nbtc", "msds", "sds", "coa", "cfs", "gmp", "haccp", "ispm*",
    "form e", "forme", "rcep", "acfta", "lspro", "npb", "ghs", "pif", "rvc*", "b3", "ska", "ippc",
    "dumping", "anti-dumping", "antidumping", "hscode*", "wood packaging", "energy label",
    "form d", "atiga",
    // id
    "izin edar", "izin impor", "perlu izin", "izin apa", "izinnya", "perizinan", "ijin edar",
    "perlu ijin", "wajib", "pendaftaran", "registrasi", "sertifik*", "diimpor",
    "mengimpor", "bea masuk", "bea cukai", "cukai", "impor", "importir", "notifikasi", "edar",
    "kementerian", "pabean", "kepabeanan", "syarat", "persyaratan", "fumigasi", "karantina",
    "babi", "bmad", "daftar ke", "daftar di", "didaftar*", "nomor ml", "nomor md", "hemat energi",
    "insw", "daftar ml", "daftar md", "izin ml", "izin md",
    // vi (folded)
    "giay phep", "cong bo", "hop quy", "dang ky", "chung nhan", "bat buoc", "nhan phu",
    "nhap khau", "hai quan", "ma hs", "quy chuan", "dan tem", "luu hanh", "bo y te", "thu tuc",
    "ho so", "hun trung", "kiem dich", "nhap ve", "khai bao",
    "kiem tra nha nuoc", "chong ban pha gia", "trang thiet bi y te", "giay to", "nhan nang luong",
    "co cq", "chat luong nha nuoc",
    // th
    "นำเข้า", "อนุญาต", "ทะเบียน", "จดแจ้ง", "มาตรฐาน", "บังคับ", "ฉลากภาษาไทย", "พิกัดศุลกากร",
    "ศุลกากร", "ฮาลาล", "แสตมป์", "สรรพสามิต", "อย.", "มอก", "สมอ.", "กสทช", "สคบ", "รมยา",
    "สารบบ", "ถิ่นกำเนิด", "ควบคุมฉลาก", "ทุ่มตลาด", "ผู้นำเข้า", "ฟอร์มอี", "พิกัด",
    "ฟอร์มดี", "ฉลากประหยัดไฟ",
];

/// Words asking what something needs or must have, in the four languages (folded), and the
/// question words that make them a question ("butuh apa aja?", not "saya butuh 50 unit").
#[rustfmt::skip]
const NEEDS: &[(&str, usize)] = &[
    ("need", 0), ("needs", 0), ("needed", 0), ("must", 0), ("butuh", 0), ("perlu", 0),
    ("harus", 0), ("can gi", 0), ("co can", 0), ("can phai", 0), ("phai co", 0), ("phai lam", 0),
    ("ต้อง", 0),
    ("what", 1), ("which", 1), ("anything", 1), ("apa", 1), ("apakah", 1), ("gi", 1),
    ("nhung gi", 1), ("nao", 1), ("khong", 1), ("ko", 1), ("อะไร", 1), ("ไร", 1), ("บ้าง", 1),
    ("ไหม", 1), ("who", 1), ("siapa", 1), ("ai", 1), ("ใคร", 1),
];

/// A label named with a language or the origin ("labels in Thai?", "label cuma bhs inggris?",
/// "nhãn ghi xuất xứ") asks what the law wants on the label: label words are numbered 0, the
/// others 1. Folded Vietnamese needs phrases: "nhan" is also nhận (receive) and nhân (staff),
/// "ghi nhan" also ghi nhận (record), "tieng" also hours, "thai" also trạng thái (status).
#[rustfmt::skip]
const LABEL_LANGUAGE: &[(&str, usize)] = &[
    ("label*", 0), ("nhan phu", 0), ("nhan mac", 0), ("nhan hang", 0), ("nhan san pham", 0),
    ("tren nhan", 0), ("dan nhan", 0), ("in nhan", 0), ("ฉลาก", 0),
    ("manual*", 0),
    ("in thai", 1), ("bahasa", 1), ("bhs", 1), ("inggris", 1), ("mandarin", 1), ("english", 1),
    ("indonesian", 1), ("vietnamese", 1), ("tieng viet", 1), ("tieng anh", 1), ("tieng trung", 1),
    ("ภาษา", 1), ("origin", 1), ("made in", 1), ("xuat xu", 1), ("negara asal", 1),
    ("ถิ่นกำเนิด", 1), ("ประเทศผู้ผลิต", 1),
];

/// A label named with what it must state ("label hrs ada batas usia?", "nhãn đồ chơi phải ghi
/// gì", "ฉลากต้องมีอะไรบ้าง") asks the same: label words 0, duty words 1. Here folded "nhan" may
/// stand alone, since its other senses (receive, staff) rarely meet "phải ghi" (must state).
#[rustfmt::skip]
const LABEL_DUTY: &[(&str, usize)] = &[
    ("label*", 0), ("nhan", 0), ("ฉลาก", 0),
    ("must", 1), ("have to", 1), ("has to", 1), ("need to", 1), ("harus", 1), ("hrs", 1),
    ("mesti", 1), ("wajib", 1), ("phai ghi", 1), ("can ghi", 1), ("ghi gi", 1),
    ("ghi nhung gi", 1), ("bat buoc", 1), ("ต้อง", 1), ("บังคับ", 1),
];

/// Least BM25 score of the best entry for a message with a cue: below it the entries share only
/// common words with the message.
const MIN_SCORE: f32 = 3.0;
/// A certification question without a cue is answered from the knowledge base only when an
/// entry matches it this well (above what nine in ten messages of other intents reach in the
/// base corpus); "do you have CE?" keeps the site's own certification answer.
const STRONG_SCORE: f32 = 10.0;

/// Least confidence of the learned gate (`RULE_GATE`) for a message naming a product or a rule's
/// keyword to be a regulatory question, whatever its intent. The confidences run low, being
/// calibrated on a corpus where one message in 25 asks a rule: 0.3 lets through as few of
/// the chat's blind intent set (4 of its 1,012 messages of other intents than certification) as
/// 0.5 does, while 2.3 points more of the regulatory questions written blind pass it.
const GATE: f32 = 0.3;

/// The learned half of the gate: the intent model's learner and features trained on buyer
/// messages labelled as asking about import rules or not (`base/rule-questions.csv`, with hard
/// commercial cases in the same words: "print the label in Vietnamese for us"), and the base
/// corpus's messages of every intent but certification as more of the latter. It takes the
/// wordings no list of cues foresees ("label hrs ada batas usia?", "เราเตอร์WiFiต้องขอใคร").
/// Trained once per process, as it depends on no site.
static RULE_GATE: LazyLock<Result<IntentModel, String>> = LazyLock::new(|| {
    let base = crate::config::base_chat().map_err(|d| d[0].to_string())?;
    let labelled = base
        .rule_questions
        .iter()
        .map(|e| Example::new(e.text.clone(), e.intent.clone(), e.lang));
    let commercial = base
        .examples
        .iter()
        .filter(|e| e.intent != "certification")
        .map(|e| Example::new(e.text.clone(), "trade", e.lang));
    let examples: Vec<Example> = labelled.chain(commercial).collect();
    let params = TrainParams {
        balance_classes: true,
        ..TrainParams::default()
    };
    IntentModel::train(&examples, &params).map_err(|e| e.to_string())
});

/// Intents under which a message that names a market and a product category (or a rule's
/// keyword) is a regulatory question even without a cue ("kipas angin buat pasar indonesia,
/// manualnya harus bahasa indonesia?"). Not the commercial intents: "air fryer price to
/// Jakarta?" wants the price. Asking what a product needs (`NEEDS`) takes no place ("saus sambal
/// mau masuk alfamart, butuh apa aja?"); chat about food or phones alone is not a question about
/// rules.
const RULE_INTENTS: &[&str] = &[
    "unknown",
    "product_specs",
    "after_sales",
    "customization",
    "company_info",
];

/// Intents besides `RULE_INTENTS` under which a message asking what a product needs (`NEEDS`)
/// is a regulatory question: shipping, where what must travel with the goods is often a rule
/// ("lithium batteries by sea, what documents must we have?"), and asking for a person, which
/// buyers add to any question. A product must still be named, so "ship to Jakarta, what do you
/// need from me?" keeps the shipping answer.
const NEEDS_INTENTS: &[&str] = &["shipping", "contact_human"];

/// Words of any buyer's chat, in the four languages (folded): pronouns, particles, question
/// words, but not "who" (who applies is a rule's subject). They are left out of the ranking,
/// where rare ones would count for much: the formal text of the entries has "itu" or "gì" in a
/// few places only, so "CFS itu apa?" matched an entry on transit for its "itu". The index drops
/// them once when it is built, so no query is filtered. Chosen among the words most frequent in
/// the base chat corpus; "a" is English and Vietnamese (ạ).
#[rustfmt::skip]
const CHAT_WORDS: &[&str] = &[
    // en
    "my", "u", "you", "your", "we", "our", "i", "me", "do", "does", "this", "that", "it", "is",
    "are", "the", "a", "an", "pls", "please", "hi", "hello",
    // id
    "bisa", "ga", "gak", "nggak", "mau", "apa", "apakah", "sama", "mana", "sudah", "udah", "dulu",
    "lagi", "dong", "belum", "itu", "ini", "kan", "yg", "yang", "ya", "kak", "gan", "min",
    "sy", "saya", "aja", "buat", "minta", "kalian", "kami", "pak", "bu", "sih", "deh", "kok",
    "tuh", "gimana", "gmn", "dgn", "kalo", "klo", "kalau", "tapi", "juga", "brp", "berapa",
    // vi
    "em", "anh", "chi", "shop", "ben", "chua", "nao", "roi", "toi", "vay", "minh", "sao",
    "xin", "gi", "nhe", "nha", "oi", "ko", "k", "khong", "dc", "thi", "la", "cho", "voi",
    "ah", "nhi",
    // th
    "ครับ", "คับ", "ค่ะ", "คะ", "นะ", "จ้า", "ไหม", "มั้ย", "บ้าง", "อะไร", "ยังไง", "อย่างไร",
    "หน่อย", "ไร", "ผม", "เรา", "คุณ", "ป่าว", "เหรอ",
];

/// Countries, cities and ports a buyer names when asking about a market. Not retail chains:
/// "is your fan sold at Indomaret?" asks about the product.
const PLACES: [(&str, Market); 24] = [
    ("indonesia", Market::Id),
    ("indonesian", Market::Id),
    ("indo", Market::Id),
    ("jakarta", Market::Id),
    ("surabaya", Market::Id),
    ("อินโดนีเซีย", Market::Id),
    ("vietnam", Market::Vn),
    ("vietnamese", Market::Vn),
    ("viet", Market::Vn),
    ("vn", Market::Vn),
    ("hanoi", Market::Vn),
    ("saigon", Market::Vn),
    ("hcm", Market::Vn),
    ("hcmc", Market::Vn),
    ("haiphong", Market::Vn),
    ("เวียดนาม", Market::Vn),
    ("thailand", Market::Th),
    ("thai", Market::Th),
    ("bangkok", Market::Th),
    ("ไทย", Market::Th),
    ("ประเทศไทย", Market::Th),
    ("กรุงเทพ", Market::Th),
    ("priok", Market::Id),
    ("chabang", Market::Th),
];

const SOURCES: [&str; 4] = ["Sources", "Sumber", "Nguồn", "แหล่งอ้างอิง"];
const REVIEWED: [&str; 4] = ["reviewed", "ditinjau", "cập nhật", "ตรวจสอบเมื่อ"];
const DISCLAIMER: [&str; 4] = [
    "This is guidance, not legal advice: rules change, so please confirm with the authority or your customs broker before shipping.",
    "Ini panduan, bukan nasihat hukum: aturan dapat berubah, jadi mohon konfirmasi ke instansi terkait atau PPJK sebelum pengiriman.",
    "Đây là thông tin tham khảo, không phải tư vấn pháp lý: quy định có thể thay đổi, anh/chị vui lòng xác nhận với cơ quan có thẩm quyền hoặc đại lý hải quan trước khi giao hàng.",
    "ข้อมูลนี้เป็นคำแนะนำ ไม่ใช่คำปรึกษาทางกฎหมาย ข้อกำหนดอาจเปลี่ยนแปลงได้ กรุณายืนยันกับหน่วยงานที่เกี่ยวข้องหรือตัวแทนออกของก่อนส่งสินค้า",
];

/// Product words by category (`src/chat/base/categories.toml`), compiled in.
static CATEGORIES: LazyLock<Categories> = LazyLock::new(|| {
    Categories::parse(include_str!("base/categories.toml"))
        .expect("src/chat/base/categories.toml parses (a test checks it)")
});

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCategory {
    kb: Vec<String>,
    en: Vec<String>,
    id: Vec<String>,
    vi: Vec<String>,
    th: Vec<String>,
}

/// Finds which of a list of words and phrases a message contains: Latin-script ones as whole
/// words (diacritics folded; a last word ending in `*` is a prefix), Thai ones where a word
/// begins, ending anywhere, since Thai is not split into words the same way in every context.
struct Phrases {
    /// Folded phrases by their first word: (the other words, phrase number).
    latin: HashMap<String, Vec<(Vec<String>, usize)>>,
    /// One-word prefixes (`import*`): (prefix, phrase number).
    prefixes: Vec<(String, usize)>,
    thai: aho_corasick::AhoCorasick,
    thai_number: Vec<usize>,
}

impl Phrases {
    fn new<'a>(phrases: impl IntoIterator<Item = (&'a str, usize)>) -> Result<Phrases, String> {
        let mut latin: HashMap<String, Vec<(Vec<String>, usize)>> = HashMap::new();
        let mut prefixes = Vec::new();
        let (mut thai, mut thai_number) = (Vec::new(), Vec::new());
        for (phrase, n) in phrases {
            if phrase.chars().any(is_thai) {
                thai.push(phrase.to_lowercase());
                thai_number.push(n);
            } else if let Some(prefix) = phrase.strip_suffix('*') {
                prefixes.extend(folded_words(prefix).into_iter().map(|p| (p, n)));
            } else {
                let words = folded_words(phrase);
                let plural = phrase.is_ascii().then(|| english_plural(&words)).flatten();
                for words in std::iter::once(words).chain(plural) {
                    if let Some((first, rest)) = words.split_first() {
                        latin
                            .entry(first.clone())
                            .or_default()
                            .push((rest.to_vec(), n));
                    }
                }
            }
        }
        let thai = aho_corasick::AhoCorasick::new(&thai).map_err(|e| e.to_string())?;
        Ok(Phrases {
            latin,
            prefixes,
            thai,
            thai_number,
        })
    }

    /// The numbers of the phrases `message` (lowercased, with words `words`) contains, each once.
    fn find(&self, message: &str, words: &[String]) -> Vec<usize> {
        let thai: Vec<_> = self.thai.find_overlapping_iter(message).collect();
        let starts = if thai.is_empty() {
            Vec::new()
        } else {
            thai_word_starts(message)
        };
        let mut found: Vec<usize> = thai
            .iter()
            .filter(|m| begins_word(message, m.start(), &starts))
            .map(|m| self.thai_number[m.pattern().as_usize()])
            .collect();
        for (at, word) in words.iter().enumerate() {
            for (rest, n) in self.latin.get(word).into_iter().flatten() {
                if words[at + 1..].starts_with(rest) {
                    found.push(*n);
                }
            }
            for (prefix, n) in &self.prefixes {
                if word.starts_with(prefix.as_str()) {
                    found.push(*n);
                }
            }
        }
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// The phrase with its last word in the English plural, as buyers write it ("air conditioner":
/// "air conditioners"); `None` for short words (acronyms) and words already ending in s. Words of
/// the other languages get a form no message has, which costs nothing.
fn english_plural(words: &[String]) -> Option<Vec<String>> {
    let last = words.last()?;
    if last.len() < 4 || !last.bytes().all(|b| b.is_ascii_lowercase()) || last.ends_with('s') {
        return None;
    }
    let consonant_y = last.ends_with('y')
        && !matches!(
            last.as_bytes()[last.len() - 2],
            b'a' | b'e' | b'i' | b'o' | b'u'
        );
    let plural = if last.ends_with("ch") || last.ends_with("sh") || last.ends_with('x') {
        format!("{last}es")
    } else if consonant_y {
        format!("{}ies", &last[..last.len() - 1])
    } else {
        format!("{last}s")
    };
    let mut words = words.to_vec();
    *words.last_mut()? = plural;
    Some(words)
}

/// Recognises the product categories a message names, in English and the message's language:
/// Vietnamese "bạn" (you) is not Indonesian "ban" (tyre).
struct Categories {
    /// The knowledge base's category names of each category.
    kb: Vec<Vec<String>>,
    /// By locale: the English words and that language's.
    words: [Phrases; 4],
}

impl Categories {
    fn parse(text: &str) -> Result<Categories, String> {
        let raw: std::collections::BTreeMap<String, RawCategory> =
            toml::from_str(text).map_err(|e| e.to_string())?;
        let raw: Vec<RawCategory> = raw.into_values().collect();
        let words = |locale: Locale| {
            Phrases::new(raw.iter().enumerate().flat_map(move |(i, c)| {
                let own = match locale {
                    Locale::En => &[][..],
                    Locale::Id => &c.id,
                    Locale::Vi => &c.vi,
                    Locale::Th => &c.th,
                };
                c.en.iter().chain(own).map(move |w| (w.as_str(), i))
            }))
        };
        let [en, id, vi, th] = Locale::ALL.map(words);
        Ok(Categories {
            words: [en?, id?, vi?, th?],
            kb: raw.into_iter().map(|c| c.kb).collect(),
        })
    }

    /// The categories (numbered as in the table) of the products `message` (lowercased, with
    /// words `words`, in `locale`) names.
    fn found(&self, message: &str, words: &[String], locale: Locale) -> Vec<usize> {
        self.words[locale as usize].find(message, words)
    }

    /// The categories (numbered as in the table) an entry of knowledge-base `names` is about.
    fn of_entry(&self, names: &[String]) -> Vec<usize> {
        (0..self.kb.len())
            .filter(|&c| {
                self.kb[c]
                    .iter()
                    .any(|k| names.iter().any(|n| n.eq_ignore_ascii_case(k)))
            })
            .collect()
    }
}

/// An entry ranked for a message.
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    pub entry: &'a RegEntry,
    /// The entry's BM25 score, weighed by market and, for a question about labels, topic.
    pub score: f32,
}

/// The answer composed from the knowledge base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub text: String,
    /// The end of `text` that cites the entries and marks the answer as guidance.
    pub citation: String,
    /// Ids of the entries the answer states.
    pub entries: Vec<String>,
}

/// A site's regulatory knowledge base with its search index, one per language.
pub struct Knowledge {
    entries: Vec<Arc<RegEntry>>,
    index: [Bm25; 4],
    /// The entries' keywords: a message using one gets it as a word of its own, which only the
    /// entries listing it have ("izin edar", "เลขสารบบ", "hợp quy" count as one term each).
    keywords: Phrases,
    cues: Phrases,
    label_language: Phrases,
    label_duty: Phrases,
    /// Per entry: whether its topic is labels.
    about_labels: Vec<bool>,
    /// Per entry: the product categories it concerns (numbered as in the category table).
    categories: Vec<Vec<usize>>,
    needs: Phrases,
    gate: &'static IntentModel,
    /// Words of the entries' keywords and authorities that belong to one market alone ("bpom",
    /// "qcvn", "มอก"): a message using them is about that market.
    markers: HashMap<String, Market>,
}

impl Knowledge {
    /// The knowledge base of `entries`; `None` when there are none.
    pub fn new(entries: Vec<Arc<RegEntry>>) -> Result<Option<Knowledge>, String> {
        if entries.is_empty() {
            return Ok(None);
        }
        // A keyword of one Latin-script word is a word of the text already.
        let phrase = |k: &String| k.chars().any(is_thai) || folded_words(k).len() > 1;
        let mut names: Vec<String> = entries
            .iter()
            .flat_map(|e| e.keywords.iter().filter(|k| phrase(k)))
            .map(|k| k.to_lowercase())
            .collect();
        names.sort();
        names.dedup();
        let keywords = Phrases::new(names.iter().enumerate().map(|(i, k)| (k.as_str(), i)))?;
        let categories: Vec<Vec<usize>> = entries
            .iter()
            .map(|e| CATEGORIES.of_entry(&e.categories))
            .collect();
        let index = Locale::ALL.map(|locale| {
            Bm25::new(entries.iter().zip(&categories).map(|(e, concerns)| {
                // What a buyer's words can match: the text in their language, and the names,
                // acronyms and keywords any language uses.
                let mut doc = without_nya(folded_words(&e.text[locale as usize]), locale);
                // The topic's words twice: an entry is about what its topic names more than
                // about what its text mentions on the way ("CFS" is in a dozen entries' lists
                // of documents, and the topic of one).
                doc.extend(folded_words(&e.topic));
                for extra in [&e.authority, &e.topic]
                    .into_iter()
                    .chain(&e.keywords)
                    .chain(&e.categories)
                {
                    doc.extend(folded_words(extra));
                }
                doc.extend(e.keywords.iter().filter_map(|k| {
                    names
                        .binary_search(&k.to_lowercase())
                        .ok()
                        .map(keyword_term)
                }));
                doc.extend(concerns.iter().copied().map(category_term));
                doc
            }))
            .without(CHAT_WORDS)
        });
        let cues = Phrases::new(CUES.iter().map(|c| (*c, 0)))?;
        let label_language = Phrases::new(LABEL_LANGUAGE.iter().copied())?;
        let label_duty = Phrases::new(LABEL_DUTY.iter().copied())?;
        let needs = Phrases::new(NEEDS.iter().copied())?;
        let about_labels = entries
            .iter()
            .map(|e| e.topic.to_lowercase().contains("label"))
            .collect();
        let gate = RULE_GATE.as_ref().map_err(Clone::clone)?;
        Ok(Some(Knowledge {
            gate,
            markers: markers(&entries),
            about_labels,
            categories,
            entries,
            keywords,
            cues,
            label_language,
            label_duty,
            needs,
            index,
        }))
    }

    /// The learned gate's confidence that `message` asks about import rules.
    fn rule_confidence(&self, message: &str) -> f32 {
        let p = self.gate.classify(message);
        if p.intent == "rule" {
            p.confidence
        } else {
            p.runner_up_confidence
        }
    }

    /// Whether `message` (lowercased, with words `words`) has a cue of a regulatory question.
    fn has_cue(&self, message: &str, words: &[String]) -> bool {
        !self.cues.find(message, words).is_empty()
    }

    /// Whether `message` asks about what a label says: a label named with a language, the
    /// origin or a duty.
    fn about_labels(&self, message: &str, words: &[String]) -> bool {
        self.label_language.find(message, words) == [0, 1]
            || self.label_duty.find(message, words) == [0, 1]
    }

    /// The market `words` (a message's, in `locale`) are about: a place named decides, else the
    /// words only one market's rules use, else the buyer's language. `None` when nothing points
    /// to one market, or two point equally.
    pub fn market(&self, words: &[String], locale: Locale) -> Option<Market> {
        let mut votes = [0u32; 3];
        let mut vote = |m: Market, n: u32| match m {
            Market::Id => votes[0] += n,
            Market::Vn => votes[1] += n,
            Market::Th => votes[2] += n,
            Market::Asean => {}
        };
        for w in words {
            if let Some(m) = place(w, locale) {
                vote(m, 100);
            } else if let Some(m) = self.markers.get(w) {
                vote(*m, 10);
            }
        }
        match locale {
            Locale::Id => vote(Market::Id, 1),
            Locale::Vi => vote(Market::Vn, 1),
            Locale::Th => vote(Market::Th, 1),
            Locale::En => {}
        }
        let best = *votes.iter().max()?;
        let mut winners = votes.iter().enumerate().filter(|(_, v)| **v == best);
        let (first, _) = winners.next()?;
        if best == 0 || winners.next().is_some() {
            return None;
        }
        Some([Market::Id, Market::Vn, Market::Th][first])
    }

    /// The knowledge base's answer to `message` recognised as `intent`, in `locale`; `None` when
    /// it is not a regulatory question or no entry matches it well enough.
    pub fn answer(&self, message: &str, locale: Locale, intent: &str) -> Option<Reply> {
        // Most messages are not regulatory questions: that is settled before anything is ranked.
        let lower = message.to_lowercase();
        let raw = folded_words(message);
        let words = without_nya(raw.clone(), locale);
        // A question about labels asks what the law wants on them, unless the buyer is ordering
        // one (`customization`: "can you print the manual in Bahasa Indonesia?") or asking for
        // a price or an order ("MOQ for private label?").
        let labels = self.about_labels(&lower, &words);
        let rule_label = labels && intent != "customization" && RULE_INTENTS.contains(&intent);
        // Cues are matched before "-nya" is dropped too: "izinnya" is a cue, "izin" is not.
        let cue = self.has_cue(&lower, &words) || raw != words && self.has_cue(&lower, &raw);
        let asked = rule_label
            || cue
            || intent == "certification"
            || (RULE_INTENTS.contains(&intent) || NEEDS_INTENTS.contains(&intent))
                && self.needs.find(&lower, &words) == [0, 1]
            || RULE_INTENTS.contains(&intent) && words.iter().any(|w| place(w, locale).is_some());
        // What the message names, found once for the gate and the ranking.
        let categories = CATEGORIES.found(&lower, &words, locale);
        let phrases = self.keywords.find(&lower, &words);
        let names = !categories.is_empty() || !phrases.is_empty();
        let learned = names && !asked && self.rule_confidence(message) >= GATE;
        let least = if rule_label || cue || learned {
            MIN_SCORE
        } else if intent == "certification" {
            STRONG_SCORE
        } else if asked && names {
            MIN_SCORE
        } else {
            return None;
        };
        let hits = self.ranked(words, locale, labels, categories, phrases);
        let first = hits.first().filter(|h| h.score >= least)?;
        let used: Vec<&RegEntry> = hits
            .iter()
            .take(MAX_ENTRIES)
            .filter(|h| h.score >= first.score * OTHERS)
            .map(|h| h.entry)
            .collect();
        Some(compose(&used, locale))
    }

    /// The entries matching a message with words `words`, naming the product `categories` and
    /// rule keywords `phrases`, best first: scored in the index of `locale` (categories and
    /// keywords as terms of their own), weighed by the market it is about and, for a question
    /// about `labels`, by the entry's topic.
    fn ranked(
        &self,
        mut words: Vec<String>,
        locale: Locale,
        labels: bool,
        categories: Vec<usize>,
        phrases: Vec<usize>,
    ) -> Vec<Hit<'_>> {
        let market = self.market(&words, locale);
        words.extend(phrases.into_iter().map(keyword_term));
        // "saus sambal" shares no word with the entry on processed food, but its category. One
        // term a category, not one a name: "biscuits" is food, not the rarest of its names
        // ("medical foods").
        words.extend(categories.iter().copied().map(category_term));
        let mut hits: Vec<Hit<'_>> = self.index[locale as usize]
            .scores(&words)
            .into_iter()
            .filter(|(_, s)| *s > 0.0)
            .map(|(doc, s)| {
                let entry = &*self.entries[doc];
                let fits =
                    market.is_none_or(|m| entry.market == m || entry.market == Market::Asean);
                let s = if labels && self.about_labels[doc] {
                    s * LABEL_TOPIC
                } else {
                    s
                };
                let concerns = &self.categories[doc];
                let s = if categories.is_empty()
                    || concerns.is_empty()
                    || concerns.iter().any(|c| categories.contains(c))
                {
                    s
                } else {
                    s * OTHER_PRODUCT
                };
                Hit {
                    entry,
                    score: if fits { s } else { s * OTHER_MARKET },
                }
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.entry.id.cmp(&b.entry.id))
        });
        hits
    }
}

/// The market a word names as a place. Folded Vietnamese has "thai" of its own ("trạng thái",
/// "thái độ"); English buyers write "to TH", where in the other languages "th" is an
/// abbreviation of anything.
fn place(word: &str, locale: Locale) -> Option<Market> {
    if word == "th" && locale == Locale::En {
        return Some(Market::Th);
    }
    PLACES
        .iter()
        .find(|(p, _)| *p == word && !(locale == Locale::Vi && *p == "thai"))
        .map(|(_, m)| *m)
}

/// Indonesian attaches "-nya" (its, the) to nouns: to the entries and the cues, "izin edarnya"
/// and "labelnya" are "izin edar" and "label". Short words keep it ("hanya", "punya").
fn without_nya(mut words: Vec<String>, locale: Locale) -> Vec<String> {
    if locale == Locale::Id {
        for w in words
            .iter_mut()
            .filter(|w| w.len() >= 6 && w.ends_with("nya"))
        {
            w.truncate(w.len() - 3);
        }
    }
    words
}

/// Words of the entries' keywords and authorities that no other market's entries use in any
/// field ("permit" is every market's word, "bpom" Indonesia's; ASEAN-wide entries count for no
/// market). Short words and numbers are left out: "12" or "ce" say nothing about a market.
fn markers(entries: &[Arc<RegEntry>]) -> HashMap<String, Market> {
    let mut seen: HashMap<String, Option<Market>> = HashMap::new();
    let mut note = |word: String, market: Market| {
        seen.entry(word)
            .and_modify(|m| {
                if *m != Some(market) {
                    *m = None;
                }
            })
            .or_insert(Some(market));
    };
    for e in entries.iter().filter(|e| e.market != Market::Asean) {
        let fields = e.text.iter().chain(&e.keywords).chain([&e.authority]);
        for word in fields.flat_map(|f| folded_words(f)) {
            note(word, e.market);
        }
    }
    // A keyword's words name its market when the keyword is one word or they are acronyms
    // ("QCVN 4:2009/BKHCN"): "TikTok Shop" names no market, since "shop" is how Vietnamese
    // buyers address the seller.
    let acronym =
        |w: &&str| w.len() >= 2 && w.chars().all(|c| c.is_uppercase() || c.is_ascii_digit());
    let named: std::collections::HashSet<String> = entries
        .iter()
        .flat_map(|e| {
            let keywords = e.keywords.iter().flat_map(|k| {
                let spaced: Vec<&str> = k.split_whitespace().collect();
                match spaced.as_slice() {
                    [one] => vec![*one],
                    many => many
                        .iter()
                        .flat_map(|w| w.split(|c: char| !c.is_alphanumeric()))
                        .filter(acronym)
                        .collect(),
                }
            });
            keywords.chain([e.authority.as_str()])
        })
        .flat_map(folded_words)
        .filter(|w| w.chars().count() >= 3 && !w.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    seen.into_iter()
        .filter(|(w, _)| named.contains(w))
        .filter_map(|(w, m)| Some((w, m?)))
        .collect()
}

/// The entries' text in the buyer's language, then where it comes from and that it is guidance.
fn compose(entries: &[&RegEntry], locale: Locale) -> Reply {
    let at = locale as usize;
    let mut text = String::new();
    for e in entries {
        text.push_str(&e.text[at]);
        text.push_str("\n\n");
    }
    let cited: Vec<String> = entries
        .iter()
        .map(|e| format!("{} ({} {})", e.source, REVIEWED[at], e.reviewed))
        .collect();
    let citation = format!("{}: {}\n{}", SOURCES[at], cited.join("; "), DISCLAIMER[at]);
    text.push_str(&citation);
    Reply {
        text,
        citation,
        entries: entries.iter().map(|e| e.id.clone()).collect(),
    }
}

/// The term standing for keyword number `n` of the knowledge base: a character no word has.
fn keyword_term(n: usize) -> String {
    format!("\u{1}{n}")
}

/// The term standing for product category number `n` of the category table.
fn category_term(n: usize) -> String {
    format!("\u{2}{n}")
}

/// Okapi BM25 over one language's documents.
struct Bm25 {
    /// Word -> (document, occurrences in it).
    postings: HashMap<String, Vec<(usize, f32)>>,
    /// Document length relative to the average.
    relative_len: Vec<f32>,
}

impl Bm25 {
    fn new(docs: impl Iterator<Item = Vec<String>>) -> Bm25 {
        let mut postings: HashMap<String, Vec<(usize, f32)>> = HashMap::new();
        let mut lens = Vec::new();
        for (d, words) in docs.enumerate() {
            lens.push(words.len() as f32);
            for w in words {
                let list = postings.entry(w).or_default();
                match list.last_mut() {
                    Some((doc, n)) if *doc == d => *n += 1.0,
                    _ => list.push((d, 1.0)),
                }
            }
        }
        let avg = (lens.iter().sum::<f32>() / lens.len().max(1) as f32).max(1.0);
        Bm25 {
            postings,
            relative_len: lens.iter().map(|l| l / avg).collect(),
        }
    }

    /// The index with `words` unsearchable: a query word of them then matches nothing, while
    /// documents keep their lengths.
    fn without(mut self, words: &[&str]) -> Bm25 {
        for w in words {
            self.postings.remove(*w);
        }
        self
    }

    fn idf(&self, word: &str) -> f32 {
        let n = self.relative_len.len() as f32;
        let df = self.postings.get(word).map_or(0, Vec::len) as f32;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The distinct words of a query that some document has.
    fn known<'a>(&self, words: &'a [String]) -> Vec<&'a String> {
        let mut out: Vec<&String> = words
            .iter()
            .filter(|w| self.postings.contains_key(*w))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// BM25 score of every document sharing a word with the query.
    fn scores(&self, words: &[String]) -> HashMap<usize, f32> {
        let mut out: HashMap<usize, f32> = HashMap::new();
        for w in self.known(words) {
            let idf = self.idf(w);
            for &(doc, tf) in &self.postings[w.as_str()] {
                let norm = K1 * (1.0 - B + B * self.relative_len[doc]);
                *out.entry(doc).or_default() += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_phrases_match_in_the_plural() {
        let words = |p: &str| folded_words(p);
        for (phrase, plural) in [
            ("air conditioner", Some("air conditioners")),
            ("battery", Some("batteries")),
            ("tray", Some("trays")),
            ("toy", None),
            ("wrench", Some("wrenches")),
            ("glass", None),
            ("sni", None),
        ] {
            assert_eq!(
                english_plural(&words(phrase)),
                plural.map(words),
                "{phrase}"
            );
        }
        let phrases = Phrases::new([("air conditioner", 0), ("rice cooker", 1)]).unwrap();
        let message = "air conditioners into vietnam, is an energy label needed?";
        assert_eq!(phrases.find(message, &folded_words(message)), [0]);
    }
    use crate::config::base_regulations;

    fn kb() -> Knowledge {
        Knowledge::new(base_regulations().unwrap().to_vec())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn the_shipped_categories_parse_and_recognise_products_in_four_languages() {
        let c = Categories::parse(include_str!("base/categories.toml")).unwrap();
        let of = |m: &str, l| -> Vec<&str> {
            c.found(m, &folded_words(m), l)
                .into_iter()
                .flat_map(|n| c.kb[n].iter().map(String::as_str))
                .collect()
        };
        assert!(of("kem chong nang nhap khau", Locale::Vi).contains(&"cosmetics"));
        assert!(of("spuit disposable izin apa", Locale::Id).contains(&"medical devices"));
        assert!(of("หมวกกันน็อคต้องมีมอก.ไหม", Locale::Th).contains(&"helmets"));
        assert!(of("what do I need for the meeting", Locale::En).is_empty());
        // Indonesian "ban" is a tyre, Vietnamese "bạn" is "you".
        assert!(of("ban mobil", Locale::Id).contains(&"tyres"));
        assert!(of("bạn bao nhiêu tuổi", Locale::Vi).is_empty());
    }

    #[test]
    fn the_market_comes_from_places_then_rules_then_language() {
        let kb = kb();
        let m = |text: &str, l| kb.market(&folded_words(text), l);
        assert_eq!(m("do I need BPOM for serum?", Locale::En), Some(Market::Id));
        assert_eq!(
            m("shipping to Vietnam, which permit", Locale::En),
            Some(Market::Vn)
        );
        assert_eq!(m("izin impor ke vietnam apa", Locale::Id), Some(Market::Vn));
        assert_eq!(m("cần giấy phép gì", Locale::Vi), Some(Market::Vn));
        assert_eq!(m("what permit do I need", Locale::En), None);
        // "shop" is how a Vietnamese buyer addresses the seller, not a word of Indonesia's rules.
        assert_eq!(
            m("xe do choi nhap khau can hop quy ko shop", Locale::Vi),
            Some(Market::Vn)
        );
    }

    #[test]
    fn thai_phrases_match_where_a_word_begins() {
        let phrases = Phrases::new([("อย", 0), ("ฉลาก", 1)]).unwrap();
        let find = |m: &str| phrases.find(m, &folded_words(m));
        // "อย" ends "หน่อย" (please) and "น้อย" (little).
        assert!(find("ช่วยแนะนำหน่อย สั่งน้อยได้ไหม").is_empty());
        assert_eq!(find("ต้องขออย.ไหม"), [0]);
        assert_eq!(find("ติดฉลากภาษาไทย"), [1]);
    }

    #[test]
    fn indonesian_nya_and_label_languages_make_a_question_about_rules() {
        let kb = kb();
        let entries = |text: &str, intent: &str| {
            kb.answer(text, Locale::Id, intent)
                .map(|r| r.entries)
                .unwrap_or_default()
        };
        // "izin edarnya" is "izin edar", a cue.
        let r = entries(
            "vitamin c effervescent dari china, izin edarnya ke mana?",
            "unknown",
        );
        assert!(r.iter().any(|e| e == "id-health-supplements"), "{r:?}");
        // A label and a language: the law on labels, unless the buyer orders a label.
        let r = entries("boleh gak labelnya cuma bahasa inggris?", "unknown");
        assert!(
            r.iter()
                .take(2)
                .any(|e| e.starts_with("id-") && e.contains("label")),
            "{r:?}"
        );
        // Not in a commercial question: the price or the order comes first.
        let unanswered = |text: &str, intent: &str| {
            assert_eq!(entries(text, intent), Vec::<String>::new(), "{text}")
        };
        unanswered(
            "MOQ untuk private label berapa? kami distributor Indonesian",
            "moq",
        );
        // ... and the label rule leads, not the product's.
        let r = entries(
            "sirup botol kaca, labelnya boleh pakai bahasa inggris saja?",
            "unknown",
        );
        let first = kb.entries.iter().find(|e| e.id == r[0]).unwrap();
        assert!(first.topic.to_lowercase().contains("label"), "{r:?}");
        unanswered(
            "bisa cetak labelnya bahasa inggris dengan logo kami?",
            "customization",
        );
        // A message no intent fits: about rules when it asks what a product needs.
        let r = entries(
            "kecap asin botolan dari pabrik kami, untuk dijual di sana perlu apa aja?",
            "unknown",
        );
        assert!(r.iter().any(|e| e.starts_with("id-food")), "{r:?}");
        unanswered("resep kecap asin buatan rumah dong", "unknown");
        unanswered("saya butuh rice cooker 50 unit buat kantor", "unknown");
    }

    #[test]
    fn a_shipping_question_about_what_goods_need_is_about_rules() {
        let kb = kb();
        let entries = |text: &str, locale: Locale| {
            kb.answer(text, locale, "shipping")
                .map(|r| r.entries)
                .unwrap_or_default()
        };
        let r = entries("แบตเตอรี่ลิเธียมส่งทางเรือมาไทยต้องมีเอกสารอะไรบ้างครับ", Locale::Th);
        assert!(
            r.iter()
                .any(|e| e == "asean-lithium-batteries-dangerous-goods"),
            "{r:?}"
        );
        let r = entries(
            "export furniture on wooden pallets to Thailand, what's needed for the pallets?",
            Locale::En,
        );
        assert!(
            r.iter()
                .any(|e| e.contains("pallets") || e.contains("ispm15")),
            "{r:?}"
        );
        // What the buyer must send, or when the goods arrive, is the shipping answer's.
        for text in [
            "ship to Jakarta, what do you need from me?",
            "air fryer ship to Jakarta by sea, how many days?",
        ] {
            assert_eq!(entries(text, Locale::En), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn a_label_named_with_a_duty_asks_the_rule() {
        let kb = kb();
        for (text, locale) in [
            ("boneka anak, labelnya hrs ada peringatan usia?", Locale::Id),
            ("nhãn mỹ phẩm phải ghi gì vậy shop", Locale::Vi),
            ("ฉลากขนมต้องมีอะไรบ้างครับ", Locale::Th),
        ] {
            let r = kb.answer(text, locale, "product_specs");
            assert!(r.is_some_and(|r| !r.entries.is_empty()), "{text}");
        }
        // Ordering a label is not asking what the law wants on it.
        assert_eq!(
            kb.answer("label hrs pakai logo kami ya", Locale::Id, "customization"),
            None
        );
    }

    #[test]
    fn the_learned_gate_takes_rule_questions_in_any_words_and_leaves_trade() {
        let kb = kb();
        for (text, locale, intent) in [
            (
                "kalau mau jual helm di indonesia ada aturannya gak?",
                Locale::Id,
                "product_specs",
            ),
            ("router wifi ban sang VN co bi cam gi ko", Locale::Vi, "moq"),
        ] {
            assert!(kb.rule_confidence(text) >= GATE, "{text}");
            assert!(kb.answer(text, locale, intent).is_some(), "{text}");
        }
        for (text, locale, intent) in [
            (
                "helm full face harga grosir brp gan?",
                Locale::Id,
                "price_quote",
            ),
            (
                "please print our logo on the cosmetic box, MOQ?",
                Locale::En,
                "customization",
            ),
            ("ขอใบเสนอราคาเราเตอร์ 200 ตัวครับ", Locale::Th, "price_quote"),
        ] {
            assert!(kb.rule_confidence(text) < GATE, "{text}");
            assert_eq!(kb.answer(text, locale, intent), None, "{text}");
        }
    }

    #[test]
    fn a_regulatory_question_is_answered_from_the_entry_it_names() {
        let kb = kb();
        let r = kb
            .answer(
                "do cosmetics need BPOM notification in Indonesia?",
                Locale::En,
                "certification",
            )
            .unwrap();
        assert!(r.entries.iter().any(|e| e == "id-bpom-cosmetics"), "{r:?}");
        assert!(r.text.contains("Sources: "), "{}", r.text);
        assert!(r.text.contains("not legal advice"), "{}", r.text);
        // Unaccented Vietnamese finds the accented text.
        let r = kb
            .answer(
                "my pham nhap khau can cong bo o dau",
                Locale::Vi,
                "certification",
            )
            .unwrap();
        assert!(r.entries[0].starts_with("vn-"), "{r:?}");
        assert!(r.text.contains("không phải tư vấn pháp lý"), "{}", r.text);
    }

    #[test]
    fn a_message_about_something_else_gets_no_regulatory_answer() {
        let kb = kb();
        assert_eq!(
            kb.answer("how much for 500 pieces?", Locale::En, "price_quote"),
            None
        );
        assert_eq!(kb.answer("hello", Locale::En, "unknown"), None);
    }
}
