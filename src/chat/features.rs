//! Text normalisation and hashed sparse features, shared by language ID and the intent model.
//!
//! Owns: how a raw chat message becomes a canonical string (`normalize`), how Latin diacritics are
//! folded so that accented and unaccented Vietnamese meet (`fold_latin_diacritics`), and how a
//! message becomes a bag of 64-bit feature ids (`FeatureExtractor`).
//! Must never: allocate per n-gram, depend on process-random state (the same rules must train
//! the same model on every run and machine, and trained weights are keyed by these ids), or
//! panic on any input.

use std::sync::LazyLock;

use aho_corasick::AhoCorasick;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lowercases, composes (NFC) and reduces a message to space-separated tokens.
///
/// Letters, digits and combining marks stay together (Thai vowel and tone marks are combining
/// marks and must not split a word). Punctuation becomes a separator. Emoji and other symbols
/// become one-character tokens of their own, because "👋" or "🙏" carry intent in chat. Emoji
/// joiners and variation selectors are dropped so that differently encoded emoji match.
pub fn normalize(text: &str) -> String {
    normalize_marking_capitals(text, &mut Vec::new())
}

/// `normalize`, also recording per output token whether it began with a capital letter.
fn normalize_marking_capitals(text: &str, capital: &mut Vec<bool>) -> String {
    capital.clear();
    let mut out = String::with_capacity(text.len() + 8);
    // Start as if a separator was just written so that leading separators are dropped.
    let mut last_was_space = true;
    let push_space = |out: &mut String, last_was_space: &mut bool| {
        if !*last_was_space {
            out.push(' ');
            *last_was_space = true;
        }
    };
    for c in text.nfc() {
        match classify_char(c) {
            CharClass::Word => {
                if last_was_space {
                    capital.push(c.is_uppercase());
                }
                for lc in c.to_lowercase() {
                    out.push(lc);
                }
                last_was_space = false;
            }
            CharClass::Separator => push_space(&mut out, &mut last_was_space),
            CharClass::Symbol => {
                push_space(&mut out, &mut last_was_space);
                capital.push(false);
                out.push(c);
                last_was_space = false;
                push_space(&mut out, &mut last_was_space);
            }
            CharClass::Ignored => {}
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

enum CharClass {
    Word,
    Separator,
    Symbol,
    Ignored,
}

fn classify_char(c: char) -> CharClass {
    // Zero-width joiner/non-joiner, variation selectors, skin-tone modifiers: presentation only.
    // Checked first because variation selectors are (nonspacing) combining marks.
    if matches!(c, '\u{200B}'..='\u{200D}' | '\u{FE00}'..='\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}') {
        return CharClass::Ignored;
    }
    if c.is_alphanumeric() || is_combining_mark(c) {
        return CharClass::Word;
    }
    match c {
        _ if c.is_whitespace() || c.is_ascii() || c.is_control() => CharClass::Separator,
        // General punctuation, CJK and full-width punctuation, Thai punctuation that is not a letter.
        '\u{2000}'..='\u{206F}' | '\u{3000}'..='\u{303F}' | '\u{FF00}'..='\u{FF65}' => {
            CharClass::Separator
        }
        '\u{00A0}'..='\u{00BF}' | '\u{00D7}' | '\u{00F7}' => CharClass::Separator,
        _ => CharClass::Symbol,
    }
}

/// Removes Latin diacritics (U+0300..U+036F after decomposition) and maps đ to d.
///
/// Vietnamese shoppers often type without tone marks ("gia si bao nhieu"), so the folded form lets
/// "giá sỉ" and "gia si" share features. Only the Latin combining range is removed: Thai vowel
/// and tone marks are also combining marks, and stripping them would destroy Thai words.
pub fn fold_latin_diacritics(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.nfd() {
        match c {
            '\u{0300}'..='\u{036F}' => {}
            'đ' => out.push('d'),
            'Đ' => out.push('D'),
            _ => out.push(c),
        }
    }
    // Recompose so that any remaining sequences (none for Latin after folding) stay canonical.
    out.nfc().collect()
}

/// Whether `text` contains anything `fold_latin_diacritics` would change.
pub fn has_latin_diacritics(text: &str) -> bool {
    text.chars().any(|c| {
        matches!(c, 'đ' | 'Đ')
            || (!c.is_ascii() && c.is_alphabetic() && !is_thai(c) && {
                let mut d = std::iter::once(c).nfd();
                d.any(|m| ('\u{0300}'..='\u{036F}').contains(&m))
            })
    })
}

/// Thai block letters and marks (U+0E00..U+0E7F).
pub fn is_thai(c: char) -> bool {
    ('\u{0E00}'..='\u{0E7F}').contains(&c)
}

fn has_thai(word: &str) -> bool {
    word.chars().any(is_thai)
}

/// How a message is turned into features. The defaults are the ones chosen by
/// leave-one-industry-out cross-validation of the base corpus (`examples/chat_tune.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureConfig {
    /// Smallest character n-gram, counted in chars of the space-padded word.
    pub char_min: usize,
    /// Largest character n-gram.
    pub char_max: usize,
    /// Word n-grams up to this order (1 = unigrams only, 2 = plus bigrams, 0 = none).
    pub word_max: usize,
    /// What to do with Latin diacritics.
    pub fold: FoldMode,
    /// Replace every digit by 0 so that "500 pcs" and "1000 pcs" share features.
    pub collapse_digits: bool,
    /// Weight of word features relative to character features.
    pub word_weight: f32,
    /// Add word-shape features for capitalised words after the first (names).
    pub name_shapes: bool,
    /// L2-normalise the character and the word block separately before weighting, so that a
    /// long word (many character n-grams) does not drown the word features.
    pub block_norm: bool,
    /// Add a feature per intent whose cue words (`CueLexicon`) the message contains.
    pub cues: bool,
    /// Split Thai (written without spaces) into dictionary words for the word features.
    pub thai_words: bool,
}

impl Default for FeatureConfig {
    fn default() -> Self {
        Self {
            char_min: 1,
            char_max: 5,
            word_max: 2,
            fold: FoldMode::Fold,
            collapse_digits: true,
            word_weight: 1.5,
            name_shapes: true,
            block_norm: true,
            cues: true,
            thai_words: true,
        }
    }
}

/// Treatment of Latin diacritics in the intent features.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldMode {
    /// Use the text as typed.
    Off,
    /// Use only the diacritics-free text.
    Fold,
    /// Use the text as typed and, when folding changes a word, the folded word as well, so that
    /// accented input keeps its sharper features and still meets its unaccented spelling.
    Both,
}

/// Namespaces keep a word unigram "ok" from colliding with the character n-gram "ok".
#[derive(Clone, Copy)]
#[repr(u8)]
enum Ns {
    Char = 1,
    Word = 2,
    Bigram = 3,
    Shape = 4,
    Cue = 5,
    Trigram = 6,
}

/// Whether a feature id came from words (true) or characters (false); `finish` stores the kind
/// in bit 0 so that the model can weight the two blocks differently without a side table.
pub fn is_word_feature(id: u64) -> bool {
    id & 1 == 1
}

/// Turns messages into hashed feature ids. Cheap to construct; holds only its configuration.
#[derive(Debug, Clone, Default)]
pub struct FeatureExtractor {
    config: FeatureConfig,
}

impl FeatureExtractor {
    pub fn new(config: FeatureConfig) -> Self {
        Self { config }
    }

    pub fn config(&self) -> &FeatureConfig {
        &self.config
    }

    /// Appends the feature ids of `text` to `out` (with repeats; callers count them).
    pub fn extract(&self, text: &str, out: &mut Vec<u64>) {
        let mut capital = Vec::new();
        let mut norm = normalize_marking_capitals(text, &mut capital);
        if self.config.collapse_digits {
            norm = norm
                .chars()
                .map(|c| if c.is_ascii_digit() { '0' } else { c })
                .collect();
        }
        if self.config.fold == FoldMode::Fold {
            norm = fold_latin_diacritics(&norm);
        }
        if self.config.name_shapes {
            self.name_shapes(&norm, &capital, out);
        }
        if self.config.cues {
            let folded;
            let canon = if self.config.fold == FoldMode::Fold {
                &norm
            } else {
                folded = fold_latin_diacritics(&norm);
                &folded
            };
            CUES.classes(canon, |class| {
                out.push(finish(hash_bytes(Ns::Cue, class.as_bytes()), true));
            });
        }
        match self.config.fold {
            FoldMode::Off | FoldMode::Fold => self.extract_normalized(&norm, out),
            FoldMode::Both => {
                self.extract_normalized(&norm, out);
                if has_latin_diacritics(&norm) {
                    // Only the folded character n-grams and words that differ are added, so an
                    // unaccented message does not count every feature twice.
                    let folded = fold_latin_diacritics(&norm);
                    self.extract_folded_extra(&norm, &folded, out);
                }
            }
        }
    }

    /// A capitalised word after the first is usually a name (song, film, place): its own text
    /// says little about intent, but "play <Name>" or "to <Name>" does.
    fn name_shapes(&self, norm: &str, capital: &[bool], out: &mut Vec<u64>) {
        let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
        for (i, (word, &cap)) in words.iter().zip(capital).enumerate().skip(1) {
            if cap && word.chars().next().is_some_and(char::is_alphabetic) {
                out.push(finish(hash_bytes(Ns::Shape, b"<name>"), true));
                self.pair(Ns::Shape, words[i - 1], "<name>", out);
            }
        }
    }

    fn extract_normalized(&self, norm: &str, out: &mut Vec<u64>) {
        let mut padded = String::with_capacity(64);
        let spaced: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
        for word in &spaced {
            self.char_ngrams(word, &mut padded, out);
        }
        let words = if self.config.thai_words {
            thai_words(&spaced)
        } else {
            spaced
        };
        for (i, word) in words.iter().enumerate() {
            self.unigram(word, out);
            if i > 0 {
                self.bigram(words[i - 1], word, out);
            }
            if i > 1 && self.config.word_max >= 3 {
                let h = hash_continue(hash_bytes(Ns::Trigram, words[i - 2].as_bytes()), b" ");
                let h = hash_continue(hash_continue(h, words[i - 1].as_bytes()), b" ");
                out.push(finish(hash_continue(h, word.as_bytes()), true));
            }
        }
    }

    /// Adds the folded features that the typed text lacks: n-grams and unigrams of words that
    /// folding changed, and bigrams that touch such a word.
    fn extract_folded_extra(&self, norm: &str, folded: &str, out: &mut Vec<u64>) {
        let mut padded = String::with_capacity(64);
        let mut prev: Option<(&str, bool)> = None;
        // Folding maps letters to letters and never touches spaces, so words line up one to one.
        for (orig, word) in norm.split(' ').zip(folded.split(' ')) {
            if word.is_empty() {
                continue;
            }
            let changed = orig != word;
            if changed {
                self.char_ngrams(word, &mut padded, out);
                self.unigram(word, out);
            }
            if let Some((p, p_changed)) = prev
                && (changed || p_changed)
            {
                self.bigram(p, word, out);
            }
            prev = Some((word, changed));
        }
    }

    fn char_ngrams(&self, word: &str, padded: &mut String, out: &mut Vec<u64>) {
        let (lo, hi) = (self.config.char_min, self.config.char_max);
        if hi == 0 || lo > hi {
            return;
        }
        padded.clear();
        padded.push(' ');
        padded.push_str(word);
        padded.push(' ');
        // Char boundaries of the padded word; n-grams are byte slices between two boundaries.
        let bounds: Vec<usize> = padded
            .char_indices()
            .map(|(i, _)| i)
            .chain(std::iter::once(padded.len()))
            .collect();
        let nchars = bounds.len() - 1;
        for n in lo.max(1)..=hi {
            if n > nchars {
                break;
            }
            for start in 0..=(nchars - n) {
                let gram = &padded[bounds[start]..bounds[start + n]];
                // A lone padding space says nothing.
                if gram == " " {
                    continue;
                }
                out.push(finish(hash_bytes(Ns::Char, gram.as_bytes()), false));
            }
        }
    }

    // Thai is written without spaces, so a space-separated Thai "word" is a whole phrase: as a
    // word feature it is near-unique and only dilutes the word block (cross-validation: Thai
    // +2 points without them). Thai is covered by its character n-grams.
    fn unigram(&self, word: &str, out: &mut Vec<u64>) {
        if self.config.word_max >= 1 && (self.config.thai_words || !has_thai(word)) {
            out.push(finish(hash_bytes(Ns::Word, word.as_bytes()), true));
        }
    }

    fn bigram(&self, prev: &str, word: &str, out: &mut Vec<u64>) {
        let thai = has_thai(word) || has_thai(prev);
        if self.config.word_max >= 2 && (self.config.thai_words || !thai) {
            self.pair(Ns::Bigram, prev, word, out);
        }
    }

    fn pair(&self, ns: Ns, first: &str, second: &str, out: &mut Vec<u64>) {
        let h = hash_continue(hash_bytes(ns, first.as_bytes()), b" ");
        out.push(finish(hash_continue(h, second.as_bytes()), true));
    }
}

/// The words of `text` as product names are matched: normalized, Latin diacritics folded
/// ("nồi chiên" and "noi chien" are the same words), Thai split at its word boundaries.
pub fn folded_words(text: &str) -> Vec<String> {
    let folded = fold_latin_diacritics(&normalize(text));
    let spaced: Vec<&str> = folded.split(' ').filter(|w| !w.is_empty()).collect();
    thai_words(&spaced)
        .into_iter()
        .map(str::to_string)
        .collect()
}

static SEGMENTER: LazyLock<icu_segmenter::WordSegmenterBorrowed<'static>> =
    LazyLock::new(|| icu_segmenter::WordSegmenter::new_dictionary(Default::default()));

/// Where ICU's Thai dictionary puts word boundaries inside the Thai runs of `text` (byte
/// offsets, ascending): segmented once per message, then asked of each match.
pub fn thai_word_starts(text: &str) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut run = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (is_thai(c), run) {
            (true, None) => run = Some(i),
            (false, Some(from)) => {
                starts.extend(SEGMENTER.segment_str(&text[from..i]).map(|b| from + b));
                run = None;
            }
            _ => {}
        }
    }
    starts
}

/// Whether byte offset `at` of `text` begins a word: the text's start, after a character that is
/// not Thai, or at one of `thai_starts` (from `thai_word_starts`: "อย" begins no word of
/// "หน่อย").
pub fn begins_word(text: &str, at: usize, thai_starts: &[usize]) -> bool {
    match text[..at].chars().next_back() {
        Some(before) if is_thai(before) => thai_starts.binary_search(&at).is_ok(),
        _ => true,
    }
}

/// Thai is written without spaces between words: a space-separated "word" of Thai text is a
/// phrase. Those are split at the word boundaries of ICU's Thai dictionary; other words pass as
/// they are.
fn thai_words<'a>(words: &[&'a str]) -> Vec<&'a str> {
    let mut out = Vec::with_capacity(words.len() * 2);
    for &w in words {
        if !has_thai(w) {
            out.push(w);
            continue;
        }
        let mut start = 0;
        for end in SEGMENTER.segment_str(w) {
            if end > start {
                out.push(&w[start..end]);
            }
            start = end;
        }
    }
    out
}

/// Words and short phrases that point to an intent in any trade and in the four languages
/// (`src/chat/base/cues.tsv`). A message containing one gets a feature naming that intent, so
/// wording the training examples never used ("mouldy", "bị mốc") still counts for its intent;
/// how much each cue feature counts is learned from the examples like any other feature.
pub struct CueLexicon {
    automaton: Option<AhoCorasick>,
    /// Per pattern: the intent's index in `classes`, and whether its first and last characters
    /// are Thai (Thai has no spaces, so a Thai cue may start or end inside a "word").
    patterns: Vec<(usize, bool, bool)>,
    classes: Vec<String>,
}

static CUES: LazyLock<CueLexicon> =
    LazyLock::new(|| CueLexicon::parse(include_str!("base/cues.tsv")));

impl CueLexicon {
    /// Reads `intent<TAB>cue` lines (`#` comments). Cues are brought to the form messages take
    /// before matching: normalised, digits as 0, Latin diacritics folded.
    pub fn parse(text: &str) -> Self {
        let mut classes: Vec<String> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        let mut patterns = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for line in text.lines() {
            let line = line.trim();
            let Some((intent, cue)) = line.split_once('\t') else {
                continue;
            };
            if line.starts_with('#') {
                continue;
            }
            let key = canonical(cue);
            if key.chars().count() < 2 || !seen.insert((intent.trim().to_string(), key.clone())) {
                continue;
            }
            let class = match classes.iter().position(|c| c == intent.trim()) {
                Some(i) => i,
                None if classes.len() < 64 => {
                    classes.push(intent.trim().to_string());
                    classes.len() - 1
                }
                None => continue,
            };
            let thai_start = key.chars().next().is_some_and(is_thai);
            let thai_end = key.chars().last().is_some_and(is_thai);
            patterns.push((class, thai_start, thai_end));
            keys.push(key);
        }
        Self {
            automaton: AhoCorasick::new(&keys).ok(),
            patterns,
            classes,
        }
    }

    /// Calls `found` once for each intent with a cue in `canon` (normalised, folded text).
    pub fn classes(&self, canon: &str, mut found: impl FnMut(&str)) {
        let Some(ac) = &self.automaton else {
            return;
        };
        let bytes = canon.as_bytes();
        // Classes already reported; `parse` keeps at most 64 of them.
        let mut hit = 0u64;
        for m in ac.find_overlapping_iter(canon) {
            let (class, thai_start, thai_end) = self.patterns[m.pattern().as_usize()];
            let starts_word = thai_start || m.start() == 0 || bytes[m.start() - 1] == b' ';
            let ends_word = thai_end || m.end() == bytes.len() || bytes[m.end()] == b' ';
            if starts_word && ends_word && hit & (1 << class) == 0 {
                hit |= 1 << class;
                found(&self.classes[class]);
            }
        }
    }
}

/// A text in the form cue matching sees: normalised, digits as 0, Latin diacritics folded.
fn canonical(text: &str) -> String {
    let norm: String = normalize(text)
        .chars()
        .map(|c| if c.is_ascii_digit() { '0' } else { c })
        .collect();
    fold_latin_diacritics(&norm)
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn hash_bytes(ns: Ns, bytes: &[u8]) -> u64 {
    hash_continue(FNV_OFFSET ^ (ns as u64), bytes)
}

fn hash_continue(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// FNV-1a mixes its high bits poorly; hash maps index by both ends, so finish with a full
/// avalanche (the MurmurHash3 finaliser constants) and stamp the feature kind into bit 0.
fn finish(mut h: u64, word: bool) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    (h & !1) | u64::from(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_lowercases_and_splits_punctuation() {
        assert_eq!(normalize("  Hello,  WORLD!! "), "hello world");
        assert_eq!(normalize("brp harga min?"), "brp harga min");
        assert_eq!(normalize("L/C"), "l c");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("?!…"), "");
    }

    #[test]
    fn normalize_composes_vietnamese() {
        // "giá" typed as g i a + combining acute must equal the precomposed form.
        let decomposed = "gia\u{0301} si\u{0309}";
        assert_eq!(normalize(decomposed), "giá sỉ");
        assert_eq!(normalize("GIÁ SỈ"), "giá sỉ");
    }

    #[test]
    fn normalize_keeps_thai_marks_inside_words() {
        let t = "ราคาเท่าไหร่คะ";
        assert_eq!(normalize(t), t);
        assert_eq!(
            normalize("air fryer ราคาเท่าไหร่คะ?"),
            "air fryer ราคาเท่าไหร่คะ"
        );
    }

    #[test]
    fn normalize_isolates_emoji_and_drops_joiners() {
        assert_eq!(normalize("hiii👋"), "hiii 👋");
        assert_eq!(normalize("ok🙏🏻"), "ok 🙏");
        assert_eq!(normalize("thanks ❤\u{FE0F}"), "thanks ❤");
    }

    #[test]
    fn folding_strips_vietnamese_but_not_thai() {
        assert_eq!(
            fold_latin_diacritics("giá sỉ bao nhiêu"),
            "gia si bao nhieu"
        );
        assert_eq!(fold_latin_diacritics("được không đó"), "duoc khong do");
        assert_eq!(fold_latin_diacritics("ĐƯỢC"), "DUOC");
        let thai = "ราคาเท่าไหร่";
        assert_eq!(fold_latin_diacritics(thai), thai);
        assert!(has_latin_diacritics("giá"));
        assert!(has_latin_diacritics("đi"));
        assert!(!has_latin_diacritics("gia si"));
        assert!(!has_latin_diacritics(thai));
    }

    fn ids(cfg: FeatureConfig, text: &str) -> Vec<u64> {
        let mut v = Vec::new();
        FeatureExtractor::new(cfg).extract(text, &mut v);
        v
    }

    #[test]
    fn char_ngrams_are_padded_per_word() {
        let cfg = FeatureConfig {
            char_min: 1,
            char_max: 3,
            word_max: 0,
            ..FeatureConfig::default()
        };
        // " ab " has 4 chars: 1-grams a,b (spaces skipped) + 3 bigrams + 2 trigrams = 7.
        assert_eq!(ids(cfg.clone(), "ab").len(), 7);
        // Two words are padded separately: no n-gram crosses the space.
        assert_eq!(ids(cfg.clone(), "ab ab").len(), 14);
        let v = ids(cfg, "ab ab");
        assert_eq!(v[..7], v[7..]);
    }

    #[test]
    fn word_features_and_bigrams() {
        let cfg = FeatureConfig {
            char_max: 0,
            word_max: 2,
            fold: FoldMode::Off,
            cues: false,
            ..FeatureConfig::default()
        };
        let v = ids(cfg, "harga air fryer");
        // 3 unigrams + 2 bigrams, all flagged as word features.
        assert_eq!(v.len(), 5);
        assert!(v.iter().all(|&id| is_word_feature(id)));
        let chars = ids(
            FeatureConfig {
                word_max: 0,
                cues: false,
                ..FeatureConfig::default()
            },
            "harga",
        );
        assert!(chars.iter().all(|&id| !is_word_feature(id)));
    }

    #[test]
    fn features_are_stable_and_case_insensitive() {
        let no_shapes = FeatureConfig {
            name_shapes: false,
            ..FeatureConfig::default()
        };
        let a = ids(no_shapes.clone(), "Harga Air Fryer BRP?");
        let b = ids(no_shapes, "harga air fryer brp");
        assert_eq!(a, b);
        // Pinned: a changed hash would silently change every trained model's results.
        let one = ids(
            FeatureConfig {
                char_max: 0,
                word_max: 1,
                ..FeatureConfig::default()
            },
            "ok",
        );
        assert_eq!(one, vec![PINNED_OK]);
    }

    const PINNED_OK: u64 = 5_717_402_193_861_222_045;

    #[test]
    fn capitalised_words_after_the_first_add_name_shapes() {
        let plain = ids(FeatureConfig::default(), "play ghost world");
        let named = ids(FeatureConfig::default(), "Play Ghost World");
        // Two names, each a shape unigram and a (previous word, shape) pair; the first word's
        // capital is ordinary sentence case.
        assert_eq!(named.len(), plain.len() + 4);
        assert!(
            named
                .iter()
                .all(|&id| is_word_feature(id) || plain.contains(&id))
        );
        let off = FeatureConfig {
            name_shapes: false,
            ..FeatureConfig::default()
        };
        assert_eq!(
            ids(off.clone(), "Play Ghost World"),
            ids(off, "play ghost world")
        );
    }

    #[test]
    fn thai_is_split_into_dictionary_words() {
        let words_only = |thai_words| FeatureConfig {
            char_max: 0,
            word_max: 1,
            cues: false,
            thai_words,
            ..FeatureConfig::default()
        };
        let v = ids(words_only(true), "ราคาเท่าไหร่ air fryer");
        // The unspaced Thai phrase yields its words, so "ราคา" (price) meets the same word
        // in any other phrase.
        let price = ids(words_only(true), "ราคา");
        assert_eq!(price.len(), 1);
        assert!(v.contains(&price[0]), "{v:?}");
        assert!(v.len() >= 4, "{v:?}");
        // Without the split, a Thai phrase has no word features at all.
        assert_eq!(ids(words_only(false), "ราคาเท่าไหร่ air fryer").len(), 2);
    }

    #[test]
    fn cues_match_whole_words_and_inside_thai() {
        let lexicon = CueLexicon::parse(
            "# comment\nafter_sales\tbroken\nafter_sales\tชำรุด\nproduct_specs\tđộ dày\nmoq\tmin order\n",
        );
        let classes = |text: &str| {
            let mut found = Vec::new();
            lexicon.classes(&canonical(text), |c| found.push(c.to_string()));
            found
        };
        assert_eq!(classes("3 pcs BROKEN on arrival"), ["after_sales"]);
        assert!(classes("unbroken seal").is_empty());
        assert_eq!(classes("ผ้าชำรุดมา 3 ม้วนค่ะ"), ["after_sales"]);
        assert_eq!(classes("do day bao nhieu"), ["product_specs"]);
        assert_eq!(classes("Min. order?"), ["moq"]);
        assert_eq!(classes("broken, min order again"), ["after_sales", "moq"]);
    }

    #[test]
    fn folded_features_link_accented_and_unaccented() {
        let set = |t: &str| -> std::collections::HashSet<u64> {
            ids(FeatureConfig::default(), t).into_iter().collect()
        };
        let accented = set("giá sỉ bao nhiêu");
        let plain = set("gia si bao nhieu");
        // Every feature of the unaccented spelling is present in the accented message.
        assert!(plain.is_subset(&accented));
        // Without folding they would share only the unaccented words.
        let off = FeatureConfig {
            fold: FoldMode::Off,
            ..FeatureConfig::default()
        };
        let a_off: std::collections::HashSet<u64> =
            ids(off.clone(), "giá sỉ bao nhiêu").into_iter().collect();
        assert!(!plain.is_subset(&a_off));
    }

    #[test]
    fn digits_collapse() {
        assert_eq!(
            ids(FeatureConfig::default(), "500 pcs"),
            ids(FeatureConfig::default(), "100 pcs")
        );
    }
}
