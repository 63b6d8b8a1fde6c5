//! Language identification of chat messages for the four shop languages (en, id, vi, th).
//!
//! Owns: the `Locale` set, the decision of which language a customer wrote in, and the evidence
//! behind it (script, a small chat lexicon, the lingua n-gram model, or the page locale).
//! Order of evidence, strongest first:
//!   1. script: any Thai letter means Thai; a letter only Vietnamese uses (đ, ơ, ư, ă, ạ, ế, ...)
//!      means Vietnamese. Customers mix English product names into both, so script wins.
//!   2. lexicon: short hand-written lists of chat words, mainly for what the model misses
//!      (unaccented Vietnamese "bao nhieu", Indonesian chat shorthand "brp", "gak", "yg"), plus
//!      the words the base chat corpus shows to belong to one language.
//!   3. model: lingua restricted to the four languages, added to the lexicon scores.
//!   4. fallback: the caller's page locale, when there is nothing to go on (emoji, "ok", "1000")
//!      or the evidence does not clearly beat the locale.
//!
//! Malay is not a shop language: it is reported as Indonesian, which the customer can read.
//! Must never: panic, allocate without bound on long input (input is truncated), or load
//! anything at detect time (models are preloaded in `LanguageId::new`).

use std::collections::HashMap;
use std::fmt;

use lingua::{LanguageDetector, LanguageDetectorBuilder};

use super::features::{fold_latin_diacritics, is_thai, normalize};
use crate::locale::Locale;

fn to_lingua(locale: Locale) -> lingua::Language {
    match locale {
        Locale::En => lingua::Language::English,
        Locale::Id => lingua::Language::Indonesian,
        Locale::Vi => lingua::Language::Vietnamese,
        Locale::Th => lingua::Language::Thai,
    }
}

fn from_lingua(l: lingua::Language) -> Option<Locale> {
    Locale::ALL.into_iter().find(|x| to_lingua(*x) == l)
}

/// Which kind of evidence settled a detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DecidedBy {
    Script,
    Lexicon,
    Model,
    Fallback,
}

impl DecidedBy {
    /// Stable label for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Script => "script",
            DecidedBy::Lexicon => "lexicon",
            DecidedBy::Model => "model",
            DecidedBy::Fallback => "fallback",
        }
    }
}

impl fmt::Display for DecidedBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result of `LanguageId::detect`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    pub lang: Locale,
    /// Rough probability in [0, 1] that `lang` is right; 0.25 means "no idea, used the locale".
    pub confidence: f32,
    pub decided_by: DecidedBy,
}

/// Latin letters per Thai letter above which Thai script no longer decides alone.
const THAI_MENTION_RATIO: usize = 8;

/// Only the head of a message is examined: a customer's language is clear from its first few
/// hundred characters, and the cost of the model grows with length.
const MAX_CHARS: usize = 300;

/// How the kinds of evidence are weighed. `Default` holds the values chosen on the base
/// corpus's `lang` column (`cargo run --release --example chat_tune -- langid`); the blind test
/// set was not used.
#[derive(Debug, Clone, PartialEq)]
pub struct LangIdConfig {
    /// Lexicon points at or above this, with this margin over every other language, decide
    /// without consulting the model.
    pub lexicon_decides: f32,
    /// Weight of the model's confidence (0..1) against lexicon points.
    pub model_weight: f32,
    /// Latin letters from which the model counts at full weight; below, proportionally less,
    /// because its confidence on two or three letters is close to a guess.
    pub model_full_letters: f32,
    /// The page locale is kept unless another language leads it by this much evidence. Higher
    /// values trust the locale more: better for shoppers who code-mix, worse for tourists.
    pub locale_margin: f32,
    /// Below this much evidence for the leader the message says too little: use the locale.
    pub min_evidence: f32,
    /// Corpus words: a word in at least this many messages of the training corpus...
    pub corpus_min_messages: usize,
    /// ...of which at least this share are in one language...
    pub corpus_share: f32,
    /// ...counts this much for that language, like a lexicon word.
    pub corpus_weight: f32,
}

impl Default for LangIdConfig {
    fn default() -> Self {
        Self {
            lexicon_decides: 2.0,
            model_weight: 1.2,
            model_full_letters: 6.0,
            locale_margin: 0.6,
            min_evidence: 0.9,
            corpus_min_messages: 8,
            corpus_share: 0.97,
            corpus_weight: 1.0,
        }
    }
}

/// Language identifier. Build once with `new` (a few ms: the four lingua models are compiled
/// into the binary and paged in as used) and share it: it is `Send + Sync` and `detect` takes
/// `&self`.
pub struct LanguageId {
    detector: LanguageDetector,
    lexicon: HashMap<Box<str>, [f32; 4]>,
    config: LangIdConfig,
}

impl fmt::Debug for LanguageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LanguageId")
            .field("lexicon_entries", &self.lexicon.len())
            .finish_non_exhaustive()
    }
}

impl Default for LanguageId {
    fn default() -> Self {
        Self::new()
    }
}

impl LanguageId {
    /// With the default settings and the words of the base chat corpus (`crate::config::base_chat`).
    pub fn new() -> Self {
        let corpus = crate::config::base_chat()
            .map(|base| {
                base.examples
                    .iter()
                    .map(|e| (e.text.as_str(), e.lang))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        Self::with_corpus(LangIdConfig::default(), corpus)
    }

    /// The hand-written lexicons only.
    pub fn with_config(config: LangIdConfig) -> Self {
        Self::with_corpus(config, std::iter::empty())
    }

    /// The hand-written lexicons plus the words a labelled corpus shows to belong to one
    /// language: buyers' chat shorthand ("ad", "kak", "nha") is learnt from the messages
    /// rather than listed by hand.
    pub fn with_corpus<'a>(
        config: LangIdConfig,
        corpus: impl IntoIterator<Item = (&'a str, Locale)>,
    ) -> Self {
        let languages: Vec<lingua::Language> = Locale::ALL.iter().map(|l| to_lingua(*l)).collect();
        let detector = LanguageDetectorBuilder::from_languages(&languages)
            .with_preloaded_language_models()
            .build();
        // The first query initialises lingua's lazy tables; pay for it here, not on a customer.
        let _ = detector.compute_language_confidence_values("warm up");
        let mut lexicon: HashMap<Box<str>, [f32; 4]> = HashMap::new();
        for (lang, words) in [
            (Locale::En, EN_WORDS),
            (Locale::Id, ID_WORDS),
            (Locale::Vi, VI_WORDS),
        ] {
            for &(w, weight) in words {
                lexicon.entry(w.into()).or_insert([0.0; 4])[lang as usize] += weight;
            }
        }
        for w in VI_UNACCENTED
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            let weight = if w.contains(' ') { 1.0 } else { 0.7 };
            lexicon.entry(w.into()).or_insert([0.0; 4])[Locale::Vi as usize] += weight;
        }
        for (word, lang) in corpus_words(corpus, &config) {
            lexicon.entry(word.into()).or_insert([0.0; 4])[lang as usize] += config.corpus_weight;
        }
        Self {
            detector,
            lexicon,
            config,
        }
    }

    /// Detects the language of a customer message; `fallback` is the page locale, used when the
    /// message is too short or too ambiguous to tell.
    pub fn detect(&self, text: &str, fallback: Locale) -> Detection {
        let head = truncate_chars(text, MAX_CHARS);
        let norm = normalize(head);

        let counts = ScriptCounts::of(&norm);
        // A Thai particle ("ครับ", "ค่ะ") is enough: only Thai speakers type Thai script. Only a
        // Thai mark or name inside a long Latin message ("need TISI มอก. license") leaves the
        // decision to the rest of the evidence, where the Thai letters still count.
        let thai_mention = counts.thai > 0 && counts.thai * THAI_MENTION_RATIO < counts.latin;
        if counts.thai > 0 && !thai_mention {
            let confidence = if counts.thai >= counts.latin {
                0.99
            } else {
                0.9
            };
            return Detection {
                lang: Locale::Th,
                confidence,
                decided_by: DecidedBy::Script,
            };
        }
        if counts.vi_only > 0 {
            return Detection {
                lang: Locale::Vi,
                confidence: if counts.vi_only >= 2 { 0.99 } else { 0.95 },
                decided_by: DecidedBy::Script,
            };
        }
        if counts.latin == 0 {
            return fallback_detection(fallback);
        }

        let mut lex = self.lexicon_scores(&norm);
        // Accents that Vietnamese shares with French or Spanish (à, á, ê, ô, ...) lean Vietnamese
        // in this market but are not proof.
        lex[Locale::Vi as usize] += 0.7 * counts.vi_shared.min(3) as f32;
        if thai_mention {
            lex[Locale::Th as usize] += 1.0;
        }

        let cfg = &self.config;
        if let Some(d) = lexicon_decision(&lex, cfg.lexicon_decides) {
            return d;
        }

        let mut evidence = lex;
        // The model's confidence on two or three letters is close to a guess; let it count fully
        // only from about one real word up. Keyboard mashing and laughter ("jjjjj", "hsjdj",
        // "hehehe") are no language at all, yet the model names one: their letters do not count.
        let letters = wordlike_letters(&norm);
        let weight = cfg.model_weight * (letters as f32 / cfg.model_full_letters).min(1.0);
        for (l, c) in self.detector.compute_language_confidence_values(head) {
            if let Some(lang) = from_lingua(l) {
                evidence[lang as usize] += weight * c as f32;
            }
        }
        // Lingua may give Thai a sliver for Latin text; only a Thai mention counts for Thai.
        evidence[Locale::Th as usize] = lex[Locale::Th as usize];

        let (best, best_score, second_score) = top_two(&evidence);
        if best_score < cfg.min_evidence {
            return fallback_detection(fallback);
        }
        if best != fallback && best_score - evidence[fallback as usize] < cfg.locale_margin {
            return Detection {
                lang: fallback,
                confidence: 0.5,
                decided_by: DecidedBy::Fallback,
            };
        }
        let margin = best_score - second_score;
        Detection {
            lang: best,
            confidence: margin_confidence(margin),
            decided_by: DecidedBy::Model,
        }
    }

    /// Sums lexicon weights of the words and word pairs in `norm`, matched on the folded text so
    /// that "không" and "khong" count alike (accented Vietnamese rarely reaches here anyway).
    fn lexicon_scores(&self, norm: &str) -> [f32; 4] {
        let folded = fold_latin_diacritics(norm);
        let words: Vec<&str> = folded.split(' ').filter(|w| !w.is_empty()).collect();
        let mut scores = [0.0f32; 4];
        let mut pair = String::with_capacity(32);
        for (i, w) in words.iter().enumerate() {
            if let Some(s) = self.lexicon.get(*w) {
                add(&mut scores, s);
            } else if let Some(short) = squeeze_repeats(w)
                // One letter held down ("zzzzz") is mashing, not the chat word "z".
                && short.chars().nth(1).is_some()
                && let Some(s) = self.lexicon.get(short.as_str())
            {
                add(&mut scores, s);
            }
            if let Some(next) = words.get(i + 1) {
                pair.clear();
                pair.push_str(w);
                pair.push(' ');
                pair.push_str(next);
                if let Some(s) = self.lexicon.get(pair.as_str()) {
                    add(&mut scores, s);
                }
            }
        }
        scores
    }
}

/// Latin words found in at least `corpus_min_messages` messages of the corpus, at least
/// `corpus_share` of them in one language, in their folded form. Numbers and product codes
/// are left out (no letter or a digit inside).
fn corpus_words<'a>(
    corpus: impl IntoIterator<Item = (&'a str, Locale)>,
    config: &LangIdConfig,
) -> Vec<(String, Locale)> {
    let mut messages: HashMap<String, [usize; 4]> = HashMap::new();
    for (text, lang) in corpus {
        let folded = fold_latin_diacritics(&normalize(truncate_chars(text, MAX_CHARS)));
        let mut seen = std::collections::HashSet::new();
        for w in folded.split(' ') {
            let latin_word = !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase());
            if latin_word && seen.insert(w) {
                messages.entry(w.to_owned()).or_insert([0; 4])[lang as usize] += 1;
            }
        }
    }
    messages
        .into_iter()
        .filter_map(|(w, n)| {
            let total: usize = n.iter().sum();
            let (lang, top) = Locale::ALL
                .into_iter()
                .map(|l| (l, n[l as usize]))
                .max_by_key(|x| x.1)?;
            (total >= config.corpus_min_messages
                && top as f32 >= config.corpus_share * total as f32)
                .then_some((w, lang))
        })
        .collect()
}

/// Chat stretches words for warmth ("halooo", "hiii"); runs of three or more of the same letter
/// are squeezed to one. Returns None when nothing changes (the common case, no allocation).
fn squeeze_repeats(word: &str) -> Option<String> {
    let runs = || {
        let mut chars = word.chars().peekable();
        std::iter::from_fn(move || {
            let c = chars.next()?;
            let mut len = 1;
            while chars.next_if_eq(&c).is_some() {
                len += 1;
            }
            Some((c, len))
        })
    };
    if runs().all(|(_, len)| len < 3) {
        return None;
    }
    let mut out = String::with_capacity(word.len());
    for (c, len) in runs() {
        out.extend(std::iter::repeat_n(c, if len >= 3 { 1 } else { len }));
    }
    Some(out)
}

fn add(acc: &mut [f32; 4], s: &[f32; 4]) {
    for (a, b) in acc.iter_mut().zip(s) {
        *a += b;
    }
}

fn lexicon_decision(lex: &[f32; 4], decides: f32) -> Option<Detection> {
    let (best, best_score, second_score) = top_two(lex);
    let margin = best_score - second_score;
    (best_score >= decides && margin >= decides).then(|| Detection {
        lang: best,
        confidence: margin_confidence(margin),
        decided_by: DecidedBy::Lexicon,
    })
}

fn fallback_detection(fallback: Locale) -> Detection {
    Detection {
        lang: fallback,
        confidence: 0.25,
        decided_by: DecidedBy::Fallback,
    }
}

/// Maps an evidence margin to (0.5, 1): one lexicon point or half the model's weight is a fair
/// bet, three points is near certainty.
fn margin_confidence(margin: f32) -> f32 {
    1.0 - 0.5 * (-margin.max(0.0)).exp()
}

fn top_two(scores: &[f32; 4]) -> (Locale, f32, f32) {
    let mut best = Locale::En;
    let mut best_score = f32::MIN;
    let mut second = f32::MIN;
    for l in Locale::ALL {
        let s = scores[l as usize];
        if s > best_score {
            second = best_score;
            best_score = s;
            best = l;
        } else if s > second {
            second = s;
        }
    }
    (best, best_score, second)
}

fn truncate_chars(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[derive(Debug, Default)]
struct ScriptCounts {
    thai: usize,
    latin: usize,
    /// Letters only Vietnamese uses among the four languages.
    vi_only: usize,
    /// Accented Latin letters Vietnamese shares with other Latin-script languages.
    vi_shared: usize,
}

impl ScriptCounts {
    fn of(norm: &str) -> Self {
        let mut c = ScriptCounts::default();
        for ch in norm.chars() {
            if is_thai(ch) {
                if ch.is_alphabetic() {
                    c.thai += 1;
                }
            } else if ch.is_ascii_alphabetic() {
                c.latin += 1;
            } else if ch.is_alphabetic() && is_latin_extended(ch) {
                c.latin += 1;
                if is_vietnamese_only(ch) {
                    c.vi_only += 1;
                } else {
                    c.vi_shared += 1;
                }
            }
        }
        c
    }
}

/// Latin letters in tokens that could be words of some language: a token with no vowel
/// ("jjjjj", "hsjdj", "brp") or one made of a short unit repeated ("hehehe", "wkwkwk", "kkk")
/// counts for nothing. Chat shorthand without vowels is the lexicon's job, not the model's.
fn wordlike_letters(norm: &str) -> usize {
    norm.split(' ')
        .filter(|w| !w.chars().any(is_thai))
        .map(|w| {
            let letters: Vec<char> = w
                .chars()
                .filter(|c| c.is_ascii_alphabetic() || is_latin_extended(*c))
                .collect();
            let vowel = letters.iter().any(|&c| is_latin_vowel(c));
            if vowel && !is_repeated_unit(&letters) {
                letters.len()
            } else {
                0
            }
        })
        .sum()
}

fn is_latin_vowel(c: char) -> bool {
    // Every accented Latin letter of the four languages is a vowel, except đ.
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y') || (is_latin_extended(c) && c != 'đ')
}

/// Whether `letters` is a unit of one to three letters written at least twice, over four
/// letters or more ("haha", "hehehe", "wkwkw", "lololol"); words of the four languages are not.
fn is_repeated_unit(letters: &[char]) -> bool {
    letters.len() >= 4
        && (1..=3).any(|unit| {
            letters.len() >= 2 * unit
                && letters
                    .iter()
                    .enumerate()
                    .all(|(i, c)| *c == letters[i % unit])
        })
}

fn is_latin_extended(c: char) -> bool {
    matches!(c, '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}')
}

/// đ ơ ư ă and the precomposed tone-marked vowels of Latin Extended Additional (ạ..ỹ), lowercase
/// only because input is normalised first.
fn is_vietnamese_only(c: char) -> bool {
    matches!(c, 'đ' | 'ơ' | 'ư' | 'ă' | 'ĩ' | 'ũ') || (('\u{1EA0}'..='\u{1EF9}').contains(&c))
}

// The word lists below are the shop's own: short, chat-register, and biased towards words that
// are NOT shared between the languages. Weight 1 is a typical marker; less than 1 marks a word
// that also occurs in another language's chat; 2 marks a near-certain marker. Entries with a
// space are matched against adjacent word pairs. Matching is on lowercase, diacritics-free text.

/// More unaccented Vietnamese, kept as a word list (see the file's header).
const VI_UNACCENTED: &str = include_str!("vi-unaccented.txt");

const VI_WORDS: &[(&str, f32)] = &[
    ("khong", 1.5),
    ("ko", 1.0),
    ("hok", 1.0),
    ("hong", 0.7),
    ("duoc", 1.5),
    ("dc", 1.2),
    ("bao", 0.8),
    ("nhieu", 1.5),
    ("nhiu", 1.2),
    ("bao nhieu", 1.5),
    ("bao lau", 1.5),
    ("bao gio", 1.5),
    ("vay", 1.0),
    ("nhe", 1.0),
    ("nha", 0.8),
    ("shop oi", 2.0),
    ("ad oi", 2.0),
    ("oi", 0.5),
    ("em", 1.0),
    ("anh", 1.0),
    ("chi", 0.5),
    ("minh", 0.8),
    ("toi", 1.0),
    ("chao", 1.2),
    ("xin", 1.0),
    ("cam on", 2.0),
    ("cho", 0.8),
    ("gui", 1.0),
    ("giao", 1.0),
    ("giao hang", 1.5),
    ("hang", 0.5),
    ("gia", 1.0),
    ("gia si", 1.5),
    ("cua", 1.0),
    ("voi", 1.0),
    ("roi", 1.0),
    ("chua", 1.0),
    ("nao", 0.7),
    ("gi", 1.0),
    ("lam", 0.7),
    ("mua", 1.0),
    ("muon", 1.0),
    ("giup", 1.0),
    ("hoi", 0.7),
    ("tien", 1.0),
    ("thanh toan", 1.5),
    ("bao hanh", 1.5),
    ("doi tra", 1.5),
    ("don hang", 1.5),
    ("dat hang", 1.5),
    ("ngay", 1.0),
    ("thang", 1.0),
    ("cai", 1.0),
    ("chiec", 1.0),
    ("nhung", 1.0),
    ("cac", 1.0),
    ("khach", 1.0),
    ("san pham", 1.5),
    ("san xuat", 1.5),
    ("sx", 0.7),
    ("nhap", 1.0),
    ("khau", 1.0),
    ("chuyen", 1.0),
    ("kho", 0.7),
    ("thi", 0.7),
    ("nua", 1.0),
    ("moi", 0.7),
    ("mot", 1.0),
    ("co", 0.5),
    ("la", 0.5),
    ("o dau", 1.5),
    ("the nao", 1.5),
    ("ntn", 1.0),
    ("bn", 0.7),
    ("ship", 0.0),
    ("ah", 0.3),
    ("nhanh", 1.0),
    ("luon", 1.0),
    ("duoc khong", 1.0),
    ("alo", 1.0),
    ("noi", 0.8),
    ("dien", 1.0),
    ("noi com", 1.5),
    ("ap suat", 1.5),
    ("ve", 0.7),
    ("hop", 0.5),
    ("gom", 0.7),
    ("da", 0.7),
    ("bi", 0.7),
    ("ha", 0.5),
    ("don", 0.5),
    ("nho", 1.0),
    ("goi", 1.0),
    ("nguoi", 1.5),
    ("tu van", 1.5),
    ("truc tiep", 1.5),
    ("nhan", 1.0),
    ("biet", 1.0),
    ("xem", 1.0),
    ("hom nay", 1.5),
    ("gio", 0.7),
    ("lau", 0.7),
    ("sao", 0.7),
    ("tai sao", 1.5),
    ("nen", 0.7),
    ("phai", 1.0),
    ("khi", 0.7),
    ("nay", 0.5),
    ("tot", 0.7),
];

const ID_WORDS: &[(&str, f32)] = &[
    ("brp", 2.0),
    ("berapa", 2.0),
    ("gak", 1.5),
    ("ga", 0.7),
    ("nggak", 1.5),
    ("ngga", 1.5),
    ("gk", 1.0),
    ("enggak", 1.5),
    ("tidak", 1.5),
    ("tdk", 1.2),
    ("udah", 1.5),
    ("sudah", 1.5),
    ("sdh", 1.2),
    ("blm", 1.2),
    ("belum", 1.5),
    ("gan", 1.2),
    ("kak", 1.5),
    ("min", 0.6),
    ("dong", 1.0),
    ("deh", 1.0),
    ("sih", 1.0),
    ("nih", 1.0),
    ("yg", 1.5),
    ("yang", 1.5),
    ("bisa", 1.5),
    ("bs", 0.5),
    ("harga", 1.5),
    ("hrg", 1.2),
    ("ongkir", 2.0),
    ("kirim", 1.2),
    ("barang", 1.5),
    ("brg", 1.2),
    ("saya", 1.5),
    ("sy", 0.8),
    ("aku", 1.2),
    ("gue", 1.0),
    ("ada", 1.0),
    ("apa", 1.0),
    ("apakah", 1.5),
    ("kapan", 1.5),
    ("gimana", 1.5),
    ("bagaimana", 1.5),
    ("dan", 0.7),
    ("di", 0.7),
    ("ke", 0.7),
    ("dari", 1.0),
    ("untuk", 1.2),
    ("utk", 1.2),
    ("buat", 0.8),
    ("juga", 1.0),
    ("ya", 0.5),
    ("lagi", 1.0),
    ("aja", 1.0),
    ("saja", 1.0),
    ("kalau", 1.2),
    ("kalo", 1.2),
    ("klo", 1.0),
    ("minta", 1.5),
    ("tolong", 1.2),
    ("terima kasih", 2.0),
    ("makasih", 1.5),
    ("mas", 0.7),
    ("mbak", 1.2),
    ("pak", 0.7),
    ("bu", 0.5),
    ("pesanan", 1.5),
    ("bayar", 1.2),
    ("lama", 0.7),
    ("produk", 1.0),
    ("sampel", 1.2),
    ("contoh", 1.0),
    ("pabrik", 1.0),
    ("garansi", 1.0),
    ("rusak", 1.0),
    ("murah", 1.0),
    ("mahal", 1.0),
    ("beli", 1.0),
    ("dengan", 1.2),
    ("dgn", 1.2),
    ("boleh", 1.0),
    ("tak", 0.7),
    ("nak", 0.7),
    ("ini", 1.0),
    ("itu", 1.0),
    ("halo", 0.8),
    ("hai", 0.5),
    ("selamat", 1.5),
    ("pagi", 1.2),
    ("siang", 1.2),
    ("malam", 1.2),
    ("permisi", 1.5),
    ("kok", 1.0),
    ("mohon", 1.2),
    ("tanya", 1.0),
    ("masih", 1.0),
    ("jadi", 0.8),
    ("pakai", 1.0),
    ("pake", 1.0),
    ("atau", 1.5),
    ("kan", 1.0),
    ("nya", 1.0),
    ("gratis", 0.7),
    ("pintar", 1.0),
    ("mati", 1.0),
    ("otomatis", 1.0),
    ("aman", 0.8),
    ("kontainer", 1.0),
    ("hallo", 0.8),
    ("punten", 1.0),
    ("sampai", 1.0),
    ("sampe", 1.0),
    ("nyampe", 1.0),
    ("tanggal", 1.0),
    ("bulan", 1.0),
    ("minggu", 1.0),
    ("hari", 1.0),
    ("baru", 0.8),
    ("sekarang", 1.0),
    ("kami", 1.2),
    ("kita", 1.2),
    ("kamu", 1.2),
    ("anda", 1.2),
    ("bagus", 1.0),
    ("banyak", 1.0),
    ("cepat", 1.0),
    ("besar", 1.0),
    ("kecil", 1.0),
    ("warna", 1.0),
    ("ukuran", 1.0),
    ("karena", 1.2),
    ("tapi", 1.2),
    ("jika", 1.0),
    ("mana", 1.0),
    ("siapa", 1.0),
    ("kenapa", 1.2),
];

const EN_WORDS: &[(&str, f32)] = &[
    ("the", 1.0),
    ("is", 1.0),
    ("are", 1.0),
    ("was", 0.8),
    ("do", 0.8),
    ("does", 1.0),
    ("did", 1.0),
    ("you", 1.2),
    ("your", 1.2),
    ("u", 0.5),
    ("ur", 0.8),
    ("i", 0.7),
    ("me", 0.8),
    ("my", 1.0),
    ("we", 0.8),
    ("our", 1.0),
    ("can", 0.8),
    ("could", 1.0),
    ("would", 1.0),
    ("will", 0.8),
    ("how", 1.0),
    ("what", 1.0),
    ("when", 1.0),
    ("where", 1.0),
    ("which", 1.0),
    ("who", 1.0),
    ("why", 1.0),
    ("much", 1.0),
    ("many", 1.0),
    ("please", 1.0),
    ("pls", 0.8),
    ("plz", 0.8),
    ("thanks", 1.0),
    ("thank", 1.0),
    ("hello", 0.8),
    ("hey", 0.8),
    ("hi", 0.3),
    ("want", 1.0),
    ("need", 1.0),
    ("have", 1.0),
    ("has", 1.0),
    ("of", 0.7),
    ("to", 0.5),
    ("for", 0.7),
    ("with", 0.8),
    ("and", 0.7),
    ("it", 0.8),
    ("this", 1.0),
    ("that", 1.0),
    ("there", 1.0),
    ("any", 0.8),
    ("some", 0.8),
    ("send", 0.5),
    ("get", 0.5),
    ("give", 0.8),
    ("morning", 0.7),
    ("afternoon", 1.0),
    ("evening", 1.0),
    ("be", 0.8),
    ("not", 0.8),
    ("yes", 0.5),
    ("if", 0.8),
    ("from", 0.7),
    ("about", 1.0),
    ("take", 0.7),
    ("long", 0.5),
    ("should", 1.0),
    ("know", 0.8),
    ("still", 0.8),
    ("in", 0.5),
    ("on", 0.4),
    ("thru", 0.8),
    ("at", 0.5),
    ("by", 0.5),
    ("or", 0.6),
    ("an", 0.5),
    ("sir", 0.7),
    ("just", 0.8),
    ("also", 0.8),
    ("only", 0.7),
    ("more", 0.7),
    ("than", 1.0),
    ("very", 0.8),
    ("really", 1.0),
    ("already", 1.0),
    ("after", 0.8),
    ("before", 0.8),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    fn lid() -> &'static LanguageId {
        static LID: OnceLock<LanguageId> = OnceLock::new();
        LID.get_or_init(LanguageId::new)
    }

    fn lang(text: &str, fallback: Locale) -> Locale {
        lid().detect(text, fallback).lang
    }

    const _: () = {
        const fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<LanguageId>();
    };

    #[test]
    fn thai_script_wins_over_english_product_words() {
        let d = lid().detect("air fryer ราคาเท่าไหร่คะ", Locale::En);
        assert_eq!(d.lang, Locale::Th);
        assert_eq!(d.decided_by, DecidedBy::Script);
        assert_eq!(lang("send catalog please ครับ", Locale::En), Locale::Th);
        // A Thai certification mark inside an English sentence does not make it Thai.
        let mention =
            "we import kettles to thailand and need the TISI มอก. license, do you have it";
        assert_eq!(lang(mention, Locale::Vi), Locale::En);
    }

    #[test]
    fn vietnamese_letters_decide() {
        let d = lid().detect("giá sỉ air fryer", Locale::En);
        assert_eq!((d.lang, d.decided_by), (Locale::Vi, DecidedBy::Script));
        assert_eq!(lang("ĐƯỢC KHÔNG", Locale::Id), Locale::Vi);
    }

    #[test]
    fn unaccented_vietnamese() {
        for t in [
            "gia si bao nhieu vay shop",
            "shop oi",
            "co giao hang ve ha noi ko",
            "lam mau theo pantone dc ko",
            "bao lau thi nhan duoc hang",
        ] {
            assert_eq!(lang(t, Locale::En), Locale::Vi, "{t}");
            assert_eq!(lang(t, Locale::Id), Locale::Vi, "{t}");
        }
    }

    #[test]
    fn informal_indonesian_with_english_product_words() {
        for t in [
            "brp harga min?",
            "harga air fryer brp?",
            "udah dikirim blm kak",
            "gak bisa bayar pake paypal ya",
            "ongkir ke surabaya",
        ] {
            assert_eq!(lang(t, Locale::En), Locale::Id, "{t}");
            assert_eq!(lang(t, Locale::Vi), Locale::Id, "{t}");
        }
    }

    #[test]
    fn malay_is_served_as_indonesian() {
        for t in [
            "Boleh hantar ke Johor Bahru tak?",
            "Saya nak tahu harga untuk seratus unit.",
            "Kerajaan negeri akan membina lebih banyak rumah mampu milik tahun ini.",
        ] {
            assert_eq!(lang(t, Locale::En), Locale::Id, "{t}");
        }
    }

    #[test]
    fn english_sentences() {
        for t in [
            "how much for 500 pieces",
            "can you send me the catalog",
            "what is the lead time for custom logo",
        ] {
            assert_eq!(lang(t, Locale::Id), Locale::En, "{t}");
        }
    }

    #[test]
    fn one_word_messages() {
        assert_eq!(lang("hello", Locale::Id), Locale::En);
        assert_eq!(lang("harga", Locale::En), Locale::Id);
        assert_eq!(lang("chao", Locale::En), Locale::Vi);
        assert_eq!(lang("สวัสดี", Locale::En), Locale::Th);
    }

    #[test]
    fn no_evidence_falls_back_to_locale() {
        for fallback in Locale::ALL {
            for t in ["", "   ", "👋", "1000", "???", "ok"] {
                let d = lid().detect(t, fallback);
                assert_eq!(d.lang, fallback, "{t:?}");
                assert_eq!(d.decided_by, DecidedBy::Fallback, "{t:?}");
            }
        }
    }

    #[test]
    fn keyboard_mashing_and_laughter_fall_back_to_locale() {
        for fallback in Locale::ALL {
            for t in [
                "zzzzzz",
                "hahahaha",
                "hmm ggggg",
                "xkcd qwrt pfft",
                "lolololol",
            ] {
                let d = lid().detect(t, fallback);
                assert_eq!(d.lang, fallback, "{t:?}");
            }
        }
        assert_eq!(wordlike_letters("hello hehehe brp"), 5);
        assert!(!is_repeated_unit(&['b', 'a', 'n', 'a', 'n', 'a']));
    }

    #[test]
    fn long_input_is_truncated_not_rejected() {
        let long = "harga berapa ".repeat(10_000);
        assert_eq!(lang(&long, Locale::En), Locale::Id);
        assert_eq!(truncate_chars("ราคา", 2), "รา");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }

    #[test]
    fn stretched_words_are_squeezed() {
        assert_eq!(squeeze_repeats("halooo").as_deref(), Some("halo"));
        assert_eq!(squeeze_repeats("hiiii").as_deref(), Some("hi"));
        assert_eq!(squeeze_repeats("good"), None);
        assert_eq!(lang("halooo kak", Locale::En), Locale::Id);
    }

    #[test]
    fn confidence_is_a_probability() {
        for t in ["hello", "ok", "brp", "gia si", "ราคา", "what is the price"] {
            let d = lid().detect(t, Locale::En);
            assert!((0.0..=1.0).contains(&d.confidence), "{t}: {d:?}");
        }
    }
}
