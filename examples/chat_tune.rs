//! Chooses the intent model's settings by leave-one-industry-out cross-validation of the base
//! corpus (never on the blind test set): for each candidate, prints intent accuracy per language,
//! the share of in-scope messages refused and of out-of-scope messages recognised, at several
//! thresholds.
//!
//!     cargo run --release --example chat_tune [-- NAME...]

use std::error::Error;
use std::time::Instant;

use edgeseo::chat::eval::{self, Report, example, industry_folds};
use edgeseo::chat::features::FeatureConfig;
use edgeseo::chat::intent::{Example, IntentModel, SvmParams, TrainParams};
use edgeseo::config::base_chat;
use edgeseo::locale::Locale;

fn candidates() -> Vec<(&'static str, TrainParams)> {
    let d = TrainParams::default();
    let svm = |c: f32| SvmParams {
        c,
        ..SvmParams::default()
    };
    let tol = |tolerance: f32| SvmParams {
        tolerance,
        ..SvmParams::default()
    };
    let words = |word_weight: f32| FeatureConfig {
        word_weight,
        ..FeatureConfig::default()
    };
    vec![
        ("default", d.clone()),
        (
            "c3",
            TrainParams {
                svm: svm(3.0),
                ..d.clone()
            },
        ),
        (
            "c30",
            TrainParams {
                svm: svm(30.0),
                ..d.clone()
            },
        ),
        (
            "tol0.1",
            TrainParams {
                svm: tol(0.1),
                ..d.clone()
            },
        ),
        (
            "tol0.4",
            TrainParams {
                svm: tol(0.4),
                ..d.clone()
            },
        ),
        (
            "words1.0",
            TrainParams {
                features: words(1.0),
                ..d.clone()
            },
        ),
        (
            "words2.0",
            TrainParams {
                features: words(2.0),
                ..d.clone()
            },
        ),
        (
            "char2-5",
            TrainParams {
                features: FeatureConfig {
                    char_min: 2,
                    ..FeatureConfig::default()
                },
                ..d.clone()
            },
        ),
        (
            "char1-4",
            TrainParams {
                features: FeatureConfig {
                    char_max: 4,
                    ..FeatureConfig::default()
                },
                ..d.clone()
            },
        ),
        (
            "char1-6",
            TrainParams {
                features: FeatureConfig {
                    char_max: 6,
                    ..FeatureConfig::default()
                },
                ..d.clone()
            },
        ),
        (
            "noshapes",
            TrainParams {
                features: FeatureConfig {
                    name_shapes: false,
                    ..FeatureConfig::default()
                },
                ..d.clone()
            },
        ),
        (
            "noshapes-both",
            TrainParams {
                features: FeatureConfig {
                    name_shapes: false,
                    fold: edgeseo::chat::features::FoldMode::Both,
                    ..FeatureConfig::default()
                },
                ..d.clone()
            },
        ),
        (
            "both",
            TrainParams {
                features: FeatureConfig {
                    fold: edgeseo::chat::features::FoldMode::Both,
                    ..FeatureConfig::default()
                },
                ..d.clone()
            },
        ),
        (
            "trigrams",
            TrainParams {
                features: FeatureConfig {
                    word_max: 3,
                    ..FeatureConfig::default()
                },
                ..d.clone()
            },
        ),
        (
            "balanced",
            TrainParams {
                balance_classes: true,
                ..d.clone()
            },
        ),
    ]
}

const THRESHOLDS: [f32; 5] = [0.0, 0.05, 0.1, 0.15, 0.2];

fn main() -> Result<(), Box<dyn Error>> {
    let only: Vec<String> = std::env::args().skip(1).collect();
    if only.first().is_some_and(|a| a == "langid") {
        return langid();
    }
    let show_errors = std::env::var_os("CHAT_TUNE_ERRORS").is_some();
    let base = base_chat().map_err(|d| d[0].to_string())?;
    let corpus = &base.examples;
    let folds = industry_folds(corpus);
    println!(
        "base corpus {} rows, {} folds; columns: intent % en/id/vi/th/all | refused % | out of scope→unknown %",
        corpus.len(),
        folds.len()
    );
    for (name, params) in candidates() {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        let t0 = Instant::now();
        let mut reports: Vec<Report> = THRESHOLDS.iter().map(|_| Report::new(false)).collect();
        let swap: Option<f32> = std::env::var("CHAT_TUNE_SWAP")
            .ok()
            .and_then(|v| v.parse().ok());
        for fold in &folds {
            let mut train: Vec<Example> = fold.train.iter().map(|&i| example(&corpus[i])).collect();
            if let Some(share) = swap {
                let rows: Vec<&edgeseo::config::ChatExample> =
                    fold.train.iter().map(|&i| &corpus[i]).collect();
                train = swap_product_words(&rows, share);
            }
            let model = IntentModel::train(&train, &params)?;
            for &i in &fold.test {
                let e = &corpus[i];
                for (r, t) in reports.iter_mut().zip(THRESHOLDS) {
                    r.add(e, e.lang, eval::decide(&model, &e.text, t));
                }
                let got = eval::decide(&model, &e.text, edgeseo::config::DEFAULT_THRESHOLD);
                if show_errors && got != e.intent {
                    let p = model.classify(&e.text);
                    println!(
                        "  ERR {} {} → {got} ({} {:.2}, {} {:.2}): {}",
                        e.lang.code(),
                        e.intent,
                        p.intent,
                        p.confidence,
                        p.runner_up,
                        p.runner_up_confidence,
                        e.text
                    );
                }
            }
        }
        println!("\n{name} ({:.1} s)", t0.elapsed().as_secs_f32());
        for (r, t) in reports.iter().zip(THRESHOLDS) {
            let per: Vec<String> = Locale::ALL
                .iter()
                .map(|l| format!("{:5.1}", r.intent_accuracy(Some(*l)).percent()))
                .collect();
            println!(
                "  t={t:.2}  {} {:6.2} | {:4.1} | {:5.1}",
                per.join(" "),
                r.intent_accuracy(None).percent(),
                r.refused(None).percent(),
                r.out_of_scope(None).percent()
            );
        }
        let r = &reports[2];
        let top: Vec<String> = r
            .confusions(6)
            .into_iter()
            .map(|((g, p), n)| format!("{g}→{p} {n}"))
            .collect();
        println!("  confusions at t=0.1: {}", top.join(", "));
    }
    Ok(())
}

/// Language-ID settings on the corpus's `lang` column, leaving one industry out: the words
/// learnt from the corpus come from the other industries. With the row's own language as page
/// locale (a buyer on that locale's pages), and strict (a wrong page locale).
fn langid() -> Result<(), Box<dyn Error>> {
    use edgeseo::chat::langid::{LangIdConfig, LanguageId};
    let base = base_chat().map_err(|d| d[0].to_string())?;
    let corpus = &base.examples;
    let folds = industry_folds(corpus);
    let d = LangIdConfig::default();
    let no_corpus = LangIdConfig {
        corpus_weight: 0.0,
        ..d.clone()
    };
    let configs = [
        ("default", d.clone()),
        ("no-corpus", no_corpus),
        (
            "weight0.4",
            LangIdConfig {
                corpus_weight: 0.4,
                ..d.clone()
            },
        ),
        (
            "weight1.0",
            LangIdConfig {
                corpus_weight: 1.0,
                ..d.clone()
            },
        ),
        (
            "share0.9",
            LangIdConfig {
                corpus_share: 0.9,
                ..d.clone()
            },
        ),
        (
            "min4",
            LangIdConfig {
                corpus_min_messages: 4,
                ..d.clone()
            },
        ),
        (
            "margin0.9",
            LangIdConfig {
                locale_margin: 0.9,
                ..d.clone()
            },
        ),
        (
            "model2.0",
            LangIdConfig {
                model_weight: 2.0,
                ..d.clone()
            },
        ),
    ];
    for (name, cfg) in configs {
        let (mut own, mut strict) = ([0usize; 4], [0usize; 4]);
        let mut n = [0usize; 4];
        for fold in &folds {
            let train = fold
                .train
                .iter()
                .map(|&i| (corpus[i].text.as_str(), corpus[i].lang));
            let lid = LanguageId::with_corpus(cfg.clone(), train);
            for &i in &fold.test {
                let e = &corpus[i];
                let wrong = Locale::ALL[(e.lang as usize + 1) % 4];
                n[e.lang as usize] += 1;
                own[e.lang as usize] += usize::from(lid.detect(&e.text, e.lang).lang == e.lang);
                strict[e.lang as usize] += usize::from(lid.detect(&e.text, wrong).lang == e.lang);
            }
        }
        let pct = |a: &[usize; 4]| -> String {
            let per: Vec<String> = (0..4)
                .map(|i| format!("{:5.1}", 100.0 * a[i] as f64 / n[i] as f64))
                .collect();
            let all = 100.0 * a.iter().sum::<usize>() as f64 / n.iter().sum::<usize>() as f64;
            format!("{} {all:5.2}", per.join(" "))
        };
        println!(
            "{name:<12} own locale {} | strict {}",
            pct(&own),
            pct(&strict)
        );
    }
    Ok(())
}

/// Experiment: in `share` of the messages that have words of one trade, those words are replaced
/// by words of another trade in the same language, so that trade words stop predicting intents.
fn swap_product_words(rows: &[&edgeseo::config::ChatExample], share: f32) -> Vec<Example> {
    use edgeseo::chat::features::{fold_latin_diacritics, folded_words, normalize};
    use std::collections::{HashMap, HashSet};
    // Per language, word -> industry -> messages.
    let mut df: HashMap<(Locale, String), HashMap<&str, u32>> = HashMap::new();
    for r in rows {
        let Some(ind) = r.industry.as_deref().filter(|i| *i != "general") else {
            continue;
        };
        let words: HashSet<String> = folded_words(&r.text).into_iter().collect();
        for w in words {
            *df.entry((r.lang, w)).or_default().entry(ind).or_default() += 1;
        }
    }
    let mut trade: HashMap<(Locale, String), &str> = HashMap::new();
    let mut pool: HashMap<Locale, Vec<(String, &str)>> = HashMap::new();
    for ((lang, w), by) in &df {
        let total: u32 = by.values().sum();
        let (ind, top) = by.iter().max_by_key(|(_, n)| **n).unwrap();
        if total >= 3
            && *top as f32 >= 0.8 * total as f32
            && w.chars().any(char::is_alphabetic)
            && w.chars().count() > 2
        {
            trade.insert((*lang, w.clone()), ind);
            pool.entry(*lang).or_default().push((w.clone(), ind));
        }
    }
    for v in pool.values_mut() {
        v.sort();
    }
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    rows.iter()
        .map(|r| {
            let plain = example(r);
            let Some(ind) = r.industry.as_deref().filter(|i| *i != "general") else {
                return plain;
            };
            if (next() % 1000) as f32 >= share * 1000.0 {
                return plain;
            }
            let words = folded_words(&r.text);
            let own: Vec<&String> = words
                .iter()
                .filter(|w| trade.get(&(r.lang, (*w).clone())) == Some(&ind))
                .collect();
            if own.is_empty() {
                return plain;
            }
            let Some(candidates) = pool.get(&r.lang) else {
                return plain;
            };
            // One other trade for the whole message.
            let other = loop {
                let (_, t) = &candidates[(next() % candidates.len() as u64) as usize];
                if *t != ind {
                    break *t;
                }
            };
            let theirs: Vec<&String> = candidates
                .iter()
                .filter(|(_, t)| *t == other)
                .map(|(w, _)| w)
                .collect();
            let mut text = fold_latin_diacritics(&normalize(&r.text));
            for w in own {
                let new = theirs[(next() % theirs.len() as u64) as usize];
                if w.chars().any(edgeseo::chat::features::is_thai) {
                    text = text.replace(w.as_str(), new);
                } else {
                    text = text
                        .split(' ')
                        .map(|t| if t == w { new.as_str() } else { t })
                        .collect::<Vec<_>>()
                        .join(" ");
                }
            }
            Example::new(text, r.intent.clone(), r.lang)
        })
        .collect()
}
