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
    vec![
        ("default", d.clone()),
        (
            "c1",
            TrainParams {
                svm: svm(1.0),
                ..d.clone()
            },
        ),
        (
            "tol0.4",
            TrainParams {
                svm: SvmParams {
                    tolerance: 0.4,
                    ..SvmParams::default()
                },
                ..d.clone()
            },
        ),
        (
            "c10",
            TrainParams {
                svm: svm(10.0),
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
            "words1.5",
            TrainParams {
                features: FeatureConfig {
                    word_weight: 1.5,
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

const THRESHOLDS: [f32; 5] = [0.0, 0.1, 0.15, 0.2, 0.3];

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
        for fold in &folds {
            let train: Vec<Example> = fold.train.iter().map(|&i| example(&corpus[i])).collect();
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
                "  t={t:.2}  {} {:5.1} | {:4.1} | {:5.1}",
                per.join(" "),
                r.intent_accuracy(None).percent(),
                r.refused(None).percent(),
                r.out_of_scope(None).percent()
            );
        }
        let r = &reports[3];
        let top: Vec<String> = r
            .confusions(6)
            .into_iter()
            .map(|((g, p), n)| format!("{g}→{p} {n}"))
            .collect();
        println!("  confusions at t=0.2: {}", top.join(", "));
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
