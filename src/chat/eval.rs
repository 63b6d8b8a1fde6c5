//! How well the chat understands buyers: accuracy of language identification and intent
//! recognition on a labelled set, and leave-one-industry-out cross-validation of the base corpus,
//! which predicts accuracy for a supplier whose trade the corpus has never seen.
//!
//! Owns: the figures (`Report`) and the way they are printed. The certification's measure is
//! intent accuracy on in-scope messages, where a refusal (`unknown`) counts as an error, plus the
//! share of out-of-scope messages that are refused.
//! Must never: train on the messages it tests (the cross-validation folds are disjoint).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::intent::{Example, IntentModel, TrainParams};
use crate::config::ChatExample;
use crate::locale::Locale;

/// The label of a message that none of the intents covers.
pub const UNKNOWN: &str = "unknown";

/// Industry of base-corpus rows that name no trade; they are trained on in every fold.
pub const GENERAL: &str = "general";

/// One message as labelled and as recognised.
#[derive(Debug, Clone)]
struct Outcome {
    lang: Locale,
    intent: String,
    detected_lang: Locale,
    predicted: String,
}

/// Accumulated outcomes of an evaluation.
#[derive(Debug, Clone, Default)]
pub struct Report {
    outcomes: Vec<Outcome>,
    /// Whether language identification was measured (cross-validation measures intents only).
    with_language: bool,
}

/// Correct and total counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub correct: usize,
    pub total: usize,
}

impl Tally {
    fn add(&mut self, ok: bool) {
        self.correct += usize::from(ok);
        self.total += 1;
    }

    /// Share correct, in percent (0 for an empty tally).
    pub fn percent(self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            100.0 * self.correct as f64 / self.total as f64
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:5.1} % ({}/{})",
            self.percent(),
            self.correct,
            self.total
        )
    }
}

impl Report {
    pub fn new(with_language: bool) -> Self {
        Self {
            outcomes: Vec::new(),
            with_language,
        }
    }

    /// Records one message: its labels, the language detected and the intent answered.
    pub fn add(&mut self, gold: &ChatExample, detected_lang: Locale, predicted: &str) {
        self.outcomes.push(Outcome {
            lang: gold.lang,
            intent: gold.intent.clone(),
            detected_lang,
            predicted: predicted.to_string(),
        });
    }

    fn in_scope(&self, lang: Option<Locale>) -> impl Iterator<Item = &Outcome> {
        self.outcomes
            .iter()
            .filter(move |o| o.intent != UNKNOWN && lang.is_none_or(|l| o.lang == l))
    }

    /// Intent accuracy on in-scope messages (a refusal is an error), for one language or all.
    pub fn intent_accuracy(&self, lang: Option<Locale>) -> Tally {
        let mut t = Tally::default();
        for o in self.in_scope(lang) {
            t.add(o.predicted == o.intent);
        }
        t
    }

    /// In-scope messages answered with `unknown`: `correct` counts the refusals.
    pub fn refused(&self, lang: Option<Locale>) -> Tally {
        let mut t = Tally::default();
        for o in self.in_scope(lang) {
            t.add(o.predicted == UNKNOWN);
        }
        t
    }

    /// Out-of-scope messages recognised as such.
    pub fn out_of_scope(&self, lang: Option<Locale>) -> Tally {
        let mut t = Tally::default();
        for o in &self.outcomes {
            if o.intent == UNKNOWN && lang.is_none_or(|l| o.lang == l) {
                t.add(o.predicted == UNKNOWN);
            }
        }
        t
    }

    /// Language identification over every message, for one gold language or all.
    pub fn language_accuracy(&self, lang: Option<Locale>) -> Tally {
        let mut t = Tally::default();
        for o in &self.outcomes {
            if lang.is_none_or(|l| o.lang == l) {
                t.add(o.detected_lang == o.lang);
            }
        }
        t
    }

    /// Accuracy per gold intent (in scope), sorted by intent.
    pub fn per_intent(&self) -> BTreeMap<&str, Tally> {
        let mut m: BTreeMap<&str, Tally> = BTreeMap::new();
        for o in self.in_scope(None) {
            m.entry(o.intent.as_str())
                .or_default()
                .add(o.predicted == o.intent);
        }
        m
    }

    /// The most frequent (gold, predicted) mistakes, most frequent first.
    pub fn confusions(&self, n: usize) -> Vec<((&str, &str), usize)> {
        let mut m: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for o in &self.outcomes {
            if o.predicted != o.intent {
                *m.entry((o.intent.as_str(), o.predicted.as_str()))
                    .or_default() += 1;
            }
        }
        let mut v: Vec<_> = m.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let langs: Vec<Locale> = Locale::ALL
            .into_iter()
            .filter(|l| self.outcomes.iter().any(|o| o.lang == *l))
            .collect();
        let rows = langs.iter().map(|l| (l.code(), Some(*l)));
        writeln!(
            f,
            "{:<5} {:>21} {:>21} {:>21}{}",
            "lang",
            "intent (in scope)",
            "refused (in scope)",
            "out of scope→unknown",
            if self.with_language {
                "        language ID"
            } else {
                ""
            }
        )?;
        for (name, lang) in rows.chain([("all", None)]) {
            write!(
                f,
                "{:<5} {:>21} {:>21} {:>21}",
                name,
                self.intent_accuracy(lang).to_string(),
                self.refused(lang).to_string(),
                self.out_of_scope(lang).to_string()
            )?;
            if self.with_language {
                write!(f, " {:>21}", self.language_accuracy(lang).to_string())?;
            }
            writeln!(f)?;
        }
        writeln!(f, "\nper intent (in scope):")?;
        for (intent, t) in self.per_intent() {
            writeln!(f, "  {intent:<16} {t}")?;
        }
        let confusions = self.confusions(12);
        if !confusions.is_empty() {
            writeln!(f, "\nmost frequent confusions (labelled → answered):")?;
            for ((gold, predicted), n) in confusions {
                writeln!(f, "  {n:>4}  {gold} → {predicted}")?;
            }
        }
        if self.with_language {
            let mut m: BTreeMap<(Locale, Locale), usize> = BTreeMap::new();
            for o in self.outcomes.iter().filter(|o| o.detected_lang != o.lang) {
                *m.entry((o.lang, o.detected_lang)).or_default() += 1;
            }
            if !m.is_empty() {
                let list: Vec<String> = m
                    .into_iter()
                    .map(|((g, d), n)| format!("{}→{}: {n}", g.code(), d.code()))
                    .collect();
                writeln!(
                    f,
                    "\nlanguage ID errors (written → detected): {}",
                    list.join(", ")
                )?;
            }
        }
        Ok(())
    }
}

/// Intent of `text` under `model` as the chat answers it: below `threshold`, `unknown`.
pub fn decide<'m>(model: &'m IntentModel, text: &str, threshold: f32) -> &'m str {
    model.classify(text).accepted(threshold).unwrap_or(UNKNOWN)
}

/// Leave-one-industry-out cross-validation of a corpus whose rows carry an industry: for each
/// industry, a model trained on every other industry and on the general rows is tested on that
/// industry's rows. Out-of-scope rows (general, labelled `unknown`) are split across the folds
/// round-robin so that they too are only ever tested by a model that did not see them.
pub fn cross_industry(
    corpus: &[ChatExample],
    params: &TrainParams,
    threshold: f32,
) -> Result<(Report, Vec<String>), super::intent::IntentError> {
    let folds = industry_folds(corpus);
    let mut report = Report::new(false);
    for fold in &folds {
        let train: Vec<Example> = fold.train.iter().map(|&i| example(&corpus[i])).collect();
        let model = IntentModel::train(&train, params)?;
        for &i in &fold.test {
            let e = &corpus[i];
            report.add(e, e.lang, decide(&model, &e.text, threshold));
        }
    }
    Ok((report, folds.into_iter().map(|f| f.industry).collect()))
}

/// One fold of the leave-one-industry-out split: row indices into the corpus.
#[derive(Debug, Clone)]
pub struct Fold {
    pub industry: String,
    pub train: Vec<usize>,
    pub test: Vec<usize>,
}

/// The folds of `cross_industry`, one per industry, sorted by industry.
pub fn industry_folds(corpus: &[ChatExample]) -> Vec<Fold> {
    fn industry(e: &ChatExample) -> &str {
        e.industry.as_deref().unwrap_or(GENERAL)
    }
    let industries: BTreeSet<&str> = corpus
        .iter()
        .map(industry)
        .filter(|i| *i != GENERAL)
        .collect();
    let n = industries.len().max(1);
    // Position of each out-of-scope row among its kind decides its fold.
    let mut oos_fold = vec![usize::MAX; corpus.len()];
    for (k, (i, _)) in corpus
        .iter()
        .enumerate()
        .filter(|(_, e)| e.intent == UNKNOWN && industry(e) == GENERAL)
        .enumerate()
    {
        oos_fold[i] = k % n;
    }
    industries
        .into_iter()
        .enumerate()
        .map(|(f, held_out)| {
            let (test, train) = (0..corpus.len())
                .partition(|&i| industry(&corpus[i]) == held_out || oos_fold[i] == f);
            Fold {
                industry: held_out.to_string(),
                train,
                test,
            }
        })
        .collect()
}

/// The training form of a labelled message.
pub fn example(e: &ChatExample) -> Example {
    Example::new(e.text.clone(), e.intent.clone(), e.lang)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(text: &str, intent: &str, lang: Locale, industry: &str) -> ChatExample {
        ChatExample {
            text: text.into(),
            intent: intent.into(),
            lang,
            industry: Some(industry.into()),
        }
    }

    #[test]
    fn refusals_count_against_accuracy_and_out_of_scope_separately() {
        let mut r = Report::new(true);
        r.add(&ex("moq?", "moq", Locale::En, GENERAL), Locale::En, "moq");
        r.add(
            &ex("harga?", "price_quote", Locale::Id, GENERAL),
            Locale::En,
            UNKNOWN,
        );
        r.add(
            &ex("lol", UNKNOWN, Locale::En, GENERAL),
            Locale::En,
            UNKNOWN,
        );
        r.add(
            &ex("weather", UNKNOWN, Locale::En, GENERAL),
            Locale::En,
            "shipping",
        );
        assert_eq!(
            r.intent_accuracy(None),
            Tally {
                correct: 1,
                total: 2
            }
        );
        assert_eq!(
            r.refused(None),
            Tally {
                correct: 1,
                total: 2
            }
        );
        assert_eq!(
            r.out_of_scope(None),
            Tally {
                correct: 1,
                total: 2
            }
        );
        assert_eq!(
            r.language_accuracy(Some(Locale::Id)),
            Tally {
                correct: 0,
                total: 1
            }
        );
        assert_eq!(r.confusions(1)[0].1, 1);
        let text = r.to_string();
        assert!(text.contains("price_quote → unknown"), "{text}");
    }

    #[test]
    fn every_row_is_tested_once_by_a_model_that_never_saw_it() {
        let mut corpus = Vec::new();
        for (ind, noun) in [("a", "bolts"), ("b", "fabric"), ("c", "lamps")] {
            corpus.push(ex(
                &format!("price of {noun}"),
                "price_quote",
                Locale::En,
                ind,
            ));
            corpus.push(ex(&format!("{noun} sample"), "samples", Locale::En, ind));
        }
        corpus.push(ex("how much", "price_quote", Locale::En, GENERAL));
        corpus.push(ex("sample pls", "samples", Locale::En, GENERAL));
        for t in ["nice weather", "who won", "lol"] {
            corpus.push(ex(t, UNKNOWN, Locale::En, GENERAL));
        }
        let params = TrainParams {
            calibration_fraction: 0.0,
            ..TrainParams::default()
        };
        let (report, industries) = cross_industry(&corpus, &params, 0.0).unwrap();
        assert_eq!(industries, ["a", "b", "c"]);
        assert_eq!(report.intent_accuracy(None).total, 6);
        assert_eq!(report.out_of_scope(None).total, 3);
    }
}

/// One question of a knowledge-base set (CSV `question,lang,market,must_contain`): the facts a
/// correct answer must state, each a list of alternative spellings.
#[derive(Debug, Clone)]
pub struct KbQuestion {
    pub question: String,
    pub lang: Locale,
    pub market: String,
    pub facts: Vec<Vec<String>>,
}

/// Reads a knowledge-base question set; `must_contain` separates facts with `;` and a fact's
/// alternatives with `/`.
pub fn parse_kb_questions(text: &str) -> Result<Vec<KbQuestion>, String> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    if header != ["question", "lang", "market", "must_contain"] {
        return Err("header must be question,lang,market,must_contain".into());
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let line = record.position().map_or(0, |p| p.line());
        let lang = Locale::from_code(record[1].trim())
            .ok_or_else(|| format!("line {line}: unknown language `{}`", record[1].trim()))?;
        let facts: Vec<Vec<String>> = record[3]
            .split(';')
            .map(|f| {
                f.split('/')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect::<Vec<_>>()
            })
            .filter(|f| !f.is_empty())
            .collect();
        if facts.is_empty() {
            return Err(format!("line {line}: must_contain is empty"));
        }
        out.push(KbQuestion {
            question: record[0].to_string(),
            lang,
            market: record[2].trim().to_string(),
            facts,
        });
    }
    Ok(out)
}

/// The facts of `facts` that `answer` lacks (none: the answer is right). A fact is present when
/// one of its spellings occurs in the answer, ignoring case and Latin diacritics.
pub fn missing_facts<'a>(answer: &str, facts: &'a [Vec<String>]) -> Vec<&'a [String]> {
    let fold = |t: &str| super::features::fold_latin_diacritics(&t.to_lowercase());
    let answer = fold(answer);
    facts
        .iter()
        .filter(|f| !f.iter().any(|alt| answer.contains(&fold(alt))))
        .map(Vec::as_slice)
        .collect()
}

#[cfg(test)]
mod kb_tests {
    use super::*;

    #[test]
    fn a_fact_is_found_in_any_spelling_and_without_diacritics() {
        let q = parse_kb_questions(
            "question,lang,market,must_contain\n\"x, y\",vi,VN,hợp quy/QCVN;Form E\n",
        )
        .unwrap();
        assert_eq!(q[0].facts, [vec!["hợp quy", "QCVN"], vec!["Form E"]]);
        assert!(missing_facts("Cần chứng nhận HOP QUY và C/O form e", &q[0].facts).is_empty());
        assert_eq!(
            missing_facts("Cần QCVN", &q[0].facts),
            [&["Form E".to_string()][..]]
        );
    }
}
