//! Accuracy of the chat's language identification and intent model, on the files the figures in
//! the README come from; prints tables.
//!
//!     cargo run --release --example chat_eval -- [--train CSV] [--heldout CSV] [--xsid DIR] [--lingua DIR]
//!
//! Defaults: the base corpus plus the demo's training file (rules/demo-supplier/chat/intents.csv),
//! the older kitchen held-out file (tests/data/chat/heldout.csv), xSID 0.7 and lingua's test data
//! from ../shared/data/intents. Accuracy on buyers of other trades comes from `edgeseo chat eval`
//! on the blind set and `edgeseo chat cross-industry` (README, "Chat accuracy").

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use edgeseo::chat::features::{FeatureConfig, FoldMode};
use edgeseo::chat::intent::{Example, IntentModel, RECOMMENDED_THRESHOLD, SvmParams, TrainParams};
use edgeseo::chat::langid::{DecidedBy, LanguageId};
use edgeseo::locale::Locale;

const TRAIN_CSV: &str = "rules/demo-supplier/chat/intents.csv";
const HELDOUT_CSV: &str = "tests/data/chat/heldout.csv";
const XSID_DIR: &str = "../shared/data/intents/xsid-0.7";
const LINGUA_DIR: &str = "../shared/data/intents/langid-lingua-testdata";

struct Args {
    train: PathBuf,
    heldout: PathBuf,
    xsid: PathBuf,
    lingua: PathBuf,
}

fn parse_args() -> Result<Args, Box<dyn Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut a = Args {
        train: root.join(TRAIN_CSV),
        heldout: root.join(HELDOUT_CSV),
        xsid: root.join(XSID_DIR),
        lingua: root.join(LINGUA_DIR),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--train" => a.train = value.into(),
            "--heldout" => a.heldout = value.into(),
            "--xsid" => a.xsid = value.into(),
            "--lingua" => a.lingua = value.into(),
            _ => return Err(format!("unknown argument {flag}").into()),
        }
    }
    Ok(a)
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = parse_args()?;
    // The demo's model: the base corpus shipped with edgeseo plus the demo's own examples.
    let base = edgeseo::config::base_chat().map_err(|d| d[0].to_string())?;
    let mut train: Vec<Example> = base
        .examples
        .iter()
        .map(edgeseo::chat::eval::example)
        .collect();
    train.extend(read_csv(&args.train)?);
    let heldout = read_csv(&args.heldout)?;

    let rss0 = rss_mib();
    let t0 = Instant::now();
    let lid = LanguageId::new();
    println!(
        "LanguageId::new: {:.0} ms, resident memory +{:.0} MiB",
        ms(t0.elapsed()),
        rss_mib() - rss0
    );

    println!("\n== Language ID on chat messages (accuracy %, by gold lang) ==");
    println!("fallback = page locale: the row's own language (the realistic case);");
    println!("strict   = a wrong locale is passed, so every fallback decision counts as an error.");
    langid_chat_table(&lid, "train (dev)", &train);
    langid_chat_table(&lid, "heldout", &heldout);

    println!(
        "\n== Language ID on lingua test data (strict: fallback is always a wrong language; ms counted correct as id) =="
    );
    if args.lingua.is_dir() {
        langid_lingua_table(&lid, &args.lingua)?;
    } else {
        println!("skipped: {} not found", args.lingua.display());
    }

    println!(
        "\n== Intent classification, trained on {} rows ==",
        train.len()
    );
    let params = TrainParams::default();
    let mut times = Vec::new();
    let mut model = None;
    for _ in 0..3 {
        let t = Instant::now();
        let m = IntentModel::train(&train, &params)?;
        times.push(t.elapsed());
        model = Some(m);
    }
    let model = model.ok_or("no model")?;
    times.sort();
    let st = model.stats();
    println!(
        "training time: {:.0} ms median of 3 (min {:.0} ms; includes the calibration fit), {} features, {} intents, platt {:?}",
        ms(times[1]),
        ms(times[0]),
        st.features,
        st.intents,
        st.platt
    );
    if let Some(acc) = st.calibration_accuracy {
        println!(
            "calibration slice (20% of train, model fitted on the other 80%): accuracy {:.1}%",
            100.0 * acc
        );
        let curve: Vec<String> = st
            .calibration_curve
            .iter()
            .map(|(t, ans, acc)| format!("{t:.1}: {:.1}/{:.1}", 100.0 * ans, 100.0 * acc))
            .collect();
        println!(
            "  threshold: answered%/accuracy% on that slice -> {}",
            curve.join(", ")
        );
    }
    intent_heldout(&model, &heldout);

    out_of_scope_probes(&model);

    if args.xsid.is_dir() {
        xsid_table(&args.xsid, &params)?;
    } else {
        println!("\n== xSID skipped: {} not found", args.xsid.display());
    }
    println!(
        "resident memory at the end (lingua models paged in, one intent model): {:.0} MiB",
        rss_mib()
    );
    Ok(())
}

/// xSID's official split: train on the validation rows, test on the test rows, for edgeseo's
/// recipe and for the standard baseline's recipe expressed with the same code.
fn xsid_table(xsid: &Path, params: &TrainParams) -> Result<(), Box<dyn Error>> {
    println!("\n== xSID 0.7 (train on *.valid.conll, test on *.test.conll) ==");
    println!("baseline (tf-idf char 1-5 + word 1-2, linear SVM): en 91.4, id 91.8");
    // The baseline's recipe expressed with this crate (no folding, digits, name shapes; C=1),
    // to show that the comparison is like for like.
    let replica = TrainParams {
        features: FeatureConfig {
            fold: FoldMode::Off,
            collapse_digits: false,
            name_shapes: false,
            ..FeatureConfig::default()
        },
        svm: SvmParams {
            c: 1.0,
            ..SvmParams::default()
        },
        ..TrainParams::default()
    };
    println!(
        "{:<6}{:>8}{:>8}{:>11}{:>20}",
        "lang", "train", "test", "accuracy", "baseline-replica"
    );
    for lang in [Locale::En, Locale::Id] {
        let tr = read_xsid(&xsid.join(format!("{}.valid.conll", lang.code())), lang)?;
        let te = read_xsid(&xsid.join(format!("{}.test.conll", lang.code())), lang)?;
        let mut accs = Vec::new();
        for p in [params, &replica] {
            let m = IntentModel::train(&tr, p)?;
            let ok = te
                .iter()
                .filter(|e| m.classify(&e.text).intent == e.intent)
                .count();
            accs.push(pct(ok, te.len()));
        }
        println!(
            "{:<6}{:>8}{:>8}{:>11}{:>20}",
            lang.code(),
            tr.len(),
            te.len(),
            accs[0],
            accs[1]
        );
    }

    Ok(())
}

/// Resident set size from /proc (Linux); 0 elsewhere.
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn wrong_locale(l: Locale) -> Locale {
    Locale::ALL[(l as usize + 1) % 4]
}

fn langid_chat_table(lid: &LanguageId, name: &str, rows: &[Example]) {
    let mut by_lang: BTreeMap<Locale, [usize; 3]> = BTreeMap::new();
    let mut by_evidence: BTreeMap<&str, usize> = BTreeMap::new();
    let mut confusion: BTreeMap<(Locale, Locale), usize> = BTreeMap::new();
    for e in rows {
        let d = lid.detect(&e.text, e.lang);
        let s = lid.detect(&e.text, wrong_locale(e.lang));
        let c = by_lang.entry(e.lang).or_default();
        c[0] += 1;
        c[1] += usize::from(d.lang == e.lang);
        c[2] += usize::from(s.lang == e.lang);
        *by_evidence.entry(d.decided_by.as_str()).or_default() += 1;
        if d.lang != e.lang {
            *confusion.entry((e.lang, d.lang)).or_default() += 1;
        }
    }
    println!("-- {name} ({} rows)", rows.len());
    println!(
        "{:<8}{:>7}{:>12}{:>9}",
        "lang", "rows", "fallback=pg", "strict"
    );
    let mut tot = [0usize; 3];
    for (l, c) in &by_lang {
        println!(
            "{:<8}{:>7}{:>12}{:>9}",
            l.code(),
            c[0],
            pct(c[1], c[0]),
            pct(c[2], c[0])
        );
        for i in 0..3 {
            tot[i] += c[i];
        }
    }
    println!(
        "{:<8}{:>7}{:>12}{:>9}",
        "all",
        tot[0],
        pct(tot[1], tot[0]),
        pct(tot[2], tot[0])
    );
    let ev: Vec<String> = by_evidence
        .iter()
        .map(|(k, v)| format!("{k} {}", pct(*v, rows.len())))
        .collect();
    println!("decided by (%): {}", ev.join(", "));
    if !confusion.is_empty() {
        let c: Vec<String> = confusion
            .iter()
            .map(|((g, p), n)| format!("{g}->{p}: {n}"))
            .collect();
        println!("errors (gold->detected, fallback=pg): {}", c.join(", "));
    }
}

/// Each cell: strict accuracy, then (accuracy with the true language as locale), then the share
/// decided by fallback.
fn langid_lingua_table(lid: &LanguageId, dir: &Path) -> Result<(), Box<dyn Error>> {
    let sets = ["sentences", "word-pairs", "single-words"];
    println!("{:<6}{:>24}{:>24}{:>24}", "lang", sets[0], sets[1], sets[2]);
    println!(
        "{:<6}{:>24}{:>24}{:>24}",
        "", "strict (pg) fb%", "strict (pg) fb%", "strict (pg) fb%"
    );
    for code in ["en", "id", "ms", "vi", "th"] {
        let gold = Locale::from_language_tag(code).ok_or("bad code")?;
        let mut cells = Vec::new();
        for set in sets {
            let lines = read_lines(&dir.join(set).join(format!("{code}.txt")))?;
            let (mut strict, mut pg, mut fall) = (0, 0, 0);
            for l in &lines {
                let d = lid.detect(l, wrong_locale(gold));
                strict += usize::from(d.lang == gold);
                fall += usize::from(d.decided_by == DecidedBy::Fallback);
                pg += usize::from(lid.detect(l, gold).lang == gold);
            }
            let n = lines.len();
            cells.push(format!(
                "{} ({}) {}",
                pct(strict, n),
                pct(pg, n),
                pct(fall, n)
            ));
        }
        println!(
            "{:<6}{:>24}{:>24}{:>24}",
            code, cells[0], cells[1], cells[2]
        );
    }
    Ok(())
}

fn intent_heldout(model: &IntentModel, heldout: &[Example]) {
    let mut by_lang: BTreeMap<Locale, (usize, usize)> = BTreeMap::new();
    let mut by_intent: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut confusion: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut preds = Vec::with_capacity(heldout.len());
    for e in heldout {
        let p = model.classify(&e.text);
        let ok = p.intent == e.intent;
        let l = by_lang.entry(e.lang).or_default();
        l.0 += 1;
        l.1 += usize::from(ok);
        let i = by_intent.entry(e.intent.as_str()).or_default();
        i.0 += 1;
        i.1 += usize::from(ok);
        if !ok {
            *confusion.entry((e.intent.as_str(), p.intent)).or_default() += 1;
        }
        preds.push((ok, p.confidence));
    }
    println!("-- heldout accuracy by language");
    println!("{:<8}{:>7}{:>11}", "lang", "rows", "accuracy");
    let (mut n, mut k) = (0, 0);
    for (l, (rows, ok)) in &by_lang {
        println!("{:<8}{:>7}{:>11}", l.code(), rows, pct(*ok, *rows));
        n += rows;
        k += ok;
    }
    println!("{:<8}{:>7}{:>11}", "all", n, pct(k, n));

    let mut recall: Vec<(&str, usize, usize)> =
        by_intent.iter().map(|(i, (r, o))| (*i, *r, *o)).collect();
    recall.sort_by(|a, b| {
        (a.2 as f64 / a.1 as f64)
            .total_cmp(&(b.2 as f64 / b.1 as f64))
            .then(a.0.cmp(b.0))
    });
    let worst: Vec<String> = recall
        .iter()
        .take(5)
        .map(|(i, r, o)| format!("{i} {}", pct(*o, *r)))
        .collect();
    println!("-- worst intents by recall (%): {}", worst.join(", "));
    let mut pairs: Vec<((&str, &str), usize)> = confusion.into_iter().collect();
    pairs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let top: Vec<String> = pairs
        .iter()
        .take(8)
        .map(|((g, p), c)| format!("{g}->{p} {c}"))
        .collect();
    println!(
        "-- most frequent confusions (gold->predicted count): {}",
        top.join(", ")
    );

    println!("-- confidence threshold (below it the answer is \"unknown\")");
    println!(
        "{:<10}{:>11}{:>21}",
        "threshold", "answered%", "accuracy_answered%"
    );
    let mut ths = vec![0.0f32, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
    if !ths.contains(&RECOMMENDED_THRESHOLD) {
        ths.push(RECOMMENDED_THRESHOLD);
        ths.sort_by(f32::total_cmp);
    }
    for th in ths {
        let answered: Vec<&(bool, f32)> = preds.iter().filter(|(_, c)| *c >= th).collect();
        let ok = answered.iter().filter(|(o, _)| *o).count();
        let mark = if th == RECOMMENDED_THRESHOLD {
            "  <- recommended"
        } else {
            ""
        };
        println!(
            "{:<10}{:>11}{:>21}{mark}",
            format!("{th:.2}"),
            pct(answered.len(), preds.len()),
            pct(ok, answered.len())
        );
    }
}

/// Made-up messages that match no intent; a useful threshold should turn most into "unknown".
fn out_of_scope_probes(model: &IntentModel) {
    let probes = [
        "asdfgh qwerty",
        "what is the weather in jakarta",
        "do you sell cars",
        "siapa presiden indonesia",
        "tôi yêu bạn",
        "ฟุตบอลคืนนี้ใครชนะ",
        "lol",
        "?",
    ];
    let shown: Vec<String> = probes
        .iter()
        .map(|t| format!("{:.2}", model.classify(t).confidence))
        .collect();
    let below = probes
        .iter()
        .filter(|t| model.classify(t).confidence < RECOMMENDED_THRESHOLD)
        .count();
    println!(
        "-- {} made-up out-of-scope messages, top confidence: {} ({below} of {} below the threshold)",
        probes.len(),
        shown.join(" "),
        probes.len()
    );
}

/// Reads a `text,intent,lang` file.
pub fn read_csv(path: &Path) -> Result<Vec<Example>, Box<dyn Error>> {
    let mut rdr = csv::Reader::from_path(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec?;
        let (text, intent, lang) = (&rec[0], &rec[1], &rec[2]);
        let lang = Locale::from_language_tag(lang)
            .ok_or_else(|| format!("{}:{}: unknown lang {lang:?}", path.display(), i + 2))?;
        out.push(Example::new(text, intent, lang));
    }
    Ok(out)
}

/// Reads the `# text = ` / `# intent = ` pairs of an xSID CoNLL file.
pub fn read_xsid(path: &Path, lang: Locale) -> Result<Vec<Example>, Box<dyn Error>> {
    let raw = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    let mut text: Option<String> = None;
    for line in raw.lines() {
        if let Some(t) = line.strip_prefix("# text = ") {
            text = Some(t.to_string());
        } else if let Some(intent) = line.strip_prefix("# intent = ") {
            let t = text
                .take()
                .ok_or_else(|| format!("{}: intent without text", path.display()))?;
            out.push(Example::new(t, intent.trim(), lang));
        }
    }
    Ok(out)
}

/// Reads one sentence/word per line.
pub fn read_lines(path: &Path) -> Result<Vec<String>, Box<dyn Error>> {
    let raw = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(raw
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Percentage with one decimal.
pub fn pct(ok: usize, n: usize) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{:.1}", 100.0 * ok as f64 / n as f64)
    }
}
