//! Per-message cost of the chat pipeline on the held-out chat messages (four languages):
//! edgeseo's language ID, the intent model, and the whole answer (language ID + intent + KB
//! lookup), against lingua alone (restricted to the same four languages) measured in the same
//! run as the baseline.
//!
//!     cargo bench --bench chat
//!
//! After criterion's report, baseline and answer are run interleaved for 20 rounds over all
//! messages and the best round of each is compared (the steadier figure on a noisy machine).

use std::path::Path;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use edgeseo::chat::ChatService;
use edgeseo::chat::intent::{Example, IntentModel, TrainParams};
use edgeseo::chat::langid::LanguageId;
use edgeseo::config::Rules;
use edgeseo::locale::Locale;
use lingua::{Language, LanguageDetector, LanguageDetectorBuilder};

fn messages() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/chat/heldout.csv");
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap()[0].to_string())
        .collect()
}

struct Pipeline {
    chat: ChatService,
    langid: LanguageId,
    model: IntentModel,
    lingua: LanguageDetector,
}

fn pipeline() -> Pipeline {
    let rules = Rules::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap();
    let site = &rules.sites[0];
    let chat_rules = site.chat.clone().expect("the demo has a chat");
    // The model the demo serves: the base corpus plus the demo's own examples.
    let examples: Vec<Example> = chat_rules
        .base
        .iter()
        .flat_map(|b| &b.examples)
        .chain(&chat_rules.examples)
        .map(edgeseo::chat::eval::example)
        .collect();
    Pipeline {
        model: IntentModel::train(&examples, &TrainParams::default()).unwrap(),
        chat: ChatService::for_site(site, None)
            .unwrap()
            .expect("the demo has a chat"),
        langid: LanguageId::new(),
        lingua: LanguageDetectorBuilder::from_languages(&[
            Language::English,
            Language::Indonesian,
            Language::Vietnamese,
            Language::Thai,
        ])
        .with_preloaded_language_models()
        .build(),
    }
}

fn bench(c: &mut Criterion) {
    let p = pipeline();
    let msgs = messages();
    let mut group = c.benchmark_group("chat message");
    group.throughput(Throughput::Elements(msgs.len() as u64));
    group.bench_function("lingua alone (baseline)", |b| {
        b.iter(|| {
            for m in &msgs {
                std::hint::black_box(p.lingua.detect_language_of(m));
            }
        })
    });
    group.bench_function("edgeseo language id", |b| {
        b.iter(|| {
            for m in &msgs {
                std::hint::black_box(p.langid.detect(m, Locale::En));
            }
        })
    });
    group.bench_function("intent model", |b| {
        b.iter(|| {
            for m in &msgs {
                std::hint::black_box(p.model.classify(m).confidence);
            }
        })
    });
    group.bench_function("answer (language id + intent + KB)", |b| {
        b.iter(|| {
            for m in &msgs {
                std::hint::black_box(p.chat.answer(m, Locale::En));
            }
        })
    });
    group.finish();
}

/// Best of `rounds` interleaved passes over all messages, per message.
fn interleaved(p: &Pipeline, msgs: &[String], rounds: usize) -> (Duration, Duration) {
    let mut best = (Duration::MAX, Duration::MAX);
    for _ in 0..rounds {
        let t = Instant::now();
        for m in msgs {
            std::hint::black_box(p.lingua.detect_language_of(m));
        }
        best.0 = best.0.min(t.elapsed());
        let t = Instant::now();
        for m in msgs {
            std::hint::black_box(p.chat.answer(m, Locale::En));
        }
        best.1 = best.1.min(t.elapsed());
    }
    let n = msgs.len() as u32;
    (best.0 / n, best.1 / n)
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    let p = pipeline();
    let msgs = messages();
    let (lingua, answer) = interleaved(&p, &msgs, 20);
    println!(
        "interleaved best of 20 over {} messages: lingua alone {:.1} µs, answer {:.1} µs per message -> {:.2}x",
        msgs.len(),
        lingua.as_secs_f64() * 1e6,
        answer.as_secs_f64() * 1e6,
        answer.as_secs_f64() / lingua.as_secs_f64()
    );
}
