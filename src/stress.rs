//! `edgeseo stress`: the certification's chat stress test, run against any chat endpoint.
//!
//! Owns: an open-loop, constant-rate load (request `i` is due at `start + i / rate` and is sent
//! then whatever the earlier ones are doing, so a slow server cannot slow the load down and hide
//! its own latency), latency measured from the due time rather than the send time, and the
//! figures the certification asks for: achieved rate, latency distribution and its course over
//! time, errors, rate-limited and timed-out requests, intent and language accuracy per language.
//! When the generator itself cannot keep to the schedule, it says so (`generator_lag`).
//! Must never: report a figure it did not measure, or let an unanswered request go uncounted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hdrhistogram::Histogram;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::ChatExample;
use crate::locale::Locale;
use crate::upstream::{ClientSettings, Upstream, UpstreamError};

/// Requests due more than this late were sent late: the generator, not the server, fell behind.
const LATE: Duration = Duration::from_millis(10);

/// Largest chat reply read.
const MAX_REPLY: usize = 256 << 10;

#[derive(Debug, thiserror::Error)]
pub enum StressError {
    #[error(transparent)]
    Client(#[from] UpstreamError),
    #[error("no messages to send")]
    NoMessages,
    #[error("rate must be above 0 and duration at least one request long")]
    NothingToSend,
}

/// What to send, how fast and for how long.
#[derive(Debug, Clone)]
pub struct StressPlan {
    /// The chat endpoint, `http(s)://host[:port]/path`.
    pub target: String,
    /// Requests per second.
    pub rate: f64,
    pub duration: Duration,
    /// A request not answered within this counts as timed out.
    pub timeout: Duration,
    /// Sent in turn, cycling.
    pub messages: Vec<ChatExample>,
}

/// Figures of a stress run, as the report stores them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StressResult {
    pub target: String,
    pub planned_rate: f64,
    pub duration_s: f64,
    pub sent: u64,
    /// Answered with 200 and a chat answer.
    pub ok: u64,
    /// Answered 429 (rate limited).
    pub rate_limited: u64,
    /// Other statuses, unreadable answers, connection failures.
    pub errors: u64,
    pub timeouts: u64,
    /// Answers per second over the run (ok only).
    pub achieved_rate: f64,
    /// Latency of the answered requests, from when each was due, in milliseconds.
    pub latency_ms: LatencySummary,
    /// One row per second of the run, by due time.
    pub timeline: Vec<Second>,
    /// Per language of the messages, then `all`.
    pub accuracy: Vec<Accuracy>,
    pub generator_lag: GeneratorLag,
    /// Answered requests per latency bucket: (upper bound in ms, count); the last bucket has no
    /// upper bound (`f64::INFINITY` is written as `null`).
    #[serde(default)]
    pub histogram: Vec<(Option<f64>, u64)>,
}

/// Upper bounds of the latency histogram's buckets, in milliseconds.
const BUCKETS_MS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 1200.0, 2000.0, 3000.0, 5000.0,
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub mean: f64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Second {
    pub second: u64,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub mean_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// `en`, `id`, `vi`, `th` or `all`.
    pub lang: String,
    /// Answered messages of that language.
    pub answered: u64,
    pub intent_correct: u64,
    pub language_correct: u64,
}

impl Accuracy {
    pub fn intent(&self) -> f64 {
        ratio(self.intent_correct, self.answered)
    }
    pub fn language(&self) -> f64 {
        ratio(self.language_correct, self.answered)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeneratorLag {
    /// Requests sent more than 10 ms after they were due.
    pub late: u64,
    pub max_ms: f64,
}

impl StressResult {
    /// "N answered (R/s), E errors, L rate-limited, T timed out".
    pub fn outcome(&self) -> String {
        format!(
            "{} answered ({:.1}/s), {} errors, {} rate-limited, {} timed out",
            self.ok, self.achieved_rate, self.errors, self.rate_limited, self.timeouts
        )
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// What the progress display is told once a second.
#[derive(Debug, Clone, Copy)]
pub struct Live {
    pub elapsed: Duration,
    pub sent: u64,
    pub ok: u64,
    pub failed: u64,
    pub mean_ms: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok { intent: bool, language: bool },
    RateLimited,
    Error,
    Timeout,
}

struct Collector {
    latency: Histogram<u64>,
    seconds: Vec<(u64, u64, u64, f64, f64)>,
    outcomes: [u64; 4],
    /// Per language: answered, intent right, language right.
    per_lang: [[u64; 3]; 4],
    late: u64,
    max_lag: Duration,
}

impl Collector {
    fn new(seconds: usize) -> Self {
        Self {
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            seconds: vec![(0, 0, 0, 0.0, 0.0); seconds],
            outcomes: [0; 4],
            per_lang: [[0; 3]; 4],
            late: 0,
            max_lag: Duration::ZERO,
        }
    }

    fn record(&mut self, second: usize, lang: Locale, outcome: Outcome, latency: Duration) {
        let last = self.seconds.len() - 1;
        let row = &mut self.seconds[second.min(last)];
        row.0 += 1;
        let ms = latency.as_secs_f64() * 1e3;
        match outcome {
            Outcome::Ok { intent, language } => {
                self.outcomes[0] += 1;
                row.1 += 1;
                row.3 += ms;
                row.4 = row.4.max(ms);
                self.latency
                    .saturating_record(latency.as_micros().max(1) as u64);
                let l = &mut self.per_lang[lang as usize];
                l[0] += 1;
                l[1] += u64::from(intent);
                l[2] += u64::from(language);
            }
            other => {
                row.2 += 1;
                let i = match other {
                    Outcome::RateLimited => 1,
                    Outcome::Error => 2,
                    _ => 3,
                };
                self.outcomes[i] += 1;
            }
        }
    }
}

/// Runs the plan; `progress` is told the live figures about once a second.
pub async fn run(
    plan: &StressPlan,
    mut progress: impl FnMut(Live),
) -> Result<StressResult, StressError> {
    if plan.messages.is_empty() {
        return Err(StressError::NoMessages);
    }
    let total = (plan.rate * plan.duration.as_secs_f64()).floor() as u64;
    if plan.rate.is_nan() || plan.rate <= 0.0 || total == 0 {
        return Err(StressError::NothingToSend);
    }
    let (upstream, path) = Upstream::for_url(
        &plan.target,
        ClientSettings {
            connect_timeout: plan.timeout,
            response_timeout: plan.timeout,
            max_idle_connections: 4096,
            via: None,
        },
    )?;
    let upstream = Arc::new(upstream);
    let bodies: Arc<Vec<(Bytes, String, Locale)>> = Arc::new(
        plan.messages
            .iter()
            .map(|m| {
                let body = serde_json::json!({"message": m.text}).to_string();
                (Bytes::from(body), m.intent.clone(), m.lang)
            })
            .collect(),
    );
    let seconds = plan.duration.as_secs_f64().ceil() as usize;
    let collector = Arc::new(Mutex::new(Collector::new(seconds.max(1))));
    let interval = Duration::from_secs_f64(1.0 / plan.rate);

    let start = Instant::now() + Duration::from_millis(50);
    let mut tasks = tokio::task::JoinSet::new();
    let mut next_report = start + Duration::from_secs(1);
    for i in 0..total {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let lag = Instant::now().saturating_duration_since(due);
        {
            let mut c = collector.lock().unwrap_or_else(|e| e.into_inner());
            if lag > LATE {
                c.late += 1;
            }
            c.max_lag = c.max_lag.max(lag);
        }
        let (upstream, bodies, shared) = (upstream.clone(), bodies.clone(), collector.clone());
        let path = path.clone();
        let timeout = plan.timeout;
        tasks.spawn(async move {
            let (body, intent, lang) = &bodies[i as usize % bodies.len()];
            let outcome = match tokio::time::timeout(
                timeout.saturating_sub(Instant::now() - due),
                ask(&upstream, &path, body.clone()),
            )
            .await
            {
                Err(_) => Outcome::Timeout,
                Ok(Err(status)) if status == StatusCode::TOO_MANY_REQUESTS => Outcome::RateLimited,
                Ok(Err(_)) => Outcome::Error,
                Ok(Ok(reply)) => Outcome::Ok {
                    intent: reply.intent == *intent,
                    language: reply.language == lang.code(),
                },
            };
            let latency = Instant::now() - due;
            let second = (due - start).as_secs() as usize;
            shared
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .record(second, *lang, outcome, latency);
        });
        // Finished tasks are reaped as the run goes, so that memory stays flat.
        while tasks.try_join_next().is_some() {}
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(1);
            progress(live(&collector, start, i + 1));
        }
    }
    while tasks.join_next().await.is_some() {}
    progress(live(&collector, start, total));

    let c = Arc::try_unwrap(collector)
        .ok()
        .expect("every task finished")
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    Ok(summarize(plan, total, c))
}

fn live(collector: &Mutex<Collector>, start: Instant, sent: u64) -> Live {
    let c = collector.lock().unwrap_or_else(|e| e.into_inner());
    let failed = c.outcomes[1..].iter().sum();
    Live {
        elapsed: Instant::now().saturating_duration_since(start),
        sent,
        ok: c.outcomes[0],
        failed,
        mean_ms: c.latency.mean() / 1e3,
    }
}

fn summarize(plan: &StressPlan, sent: u64, c: Collector) -> StressResult {
    let ms = |micros: u64| micros as f64 / 1e3;
    let mut accuracy: Vec<Accuracy> = Locale::ALL
        .iter()
        .filter(|l| c.per_lang[**l as usize][0] > 0)
        .map(|l| {
            let [answered, intent, language] = c.per_lang[*l as usize];
            Accuracy {
                lang: l.code().to_owned(),
                answered,
                intent_correct: intent,
                language_correct: language,
            }
        })
        .collect();
    let sum = |i: usize| c.per_lang.iter().map(|l| l[i]).sum();
    accuracy.push(Accuracy {
        lang: "all".to_owned(),
        answered: sum(0),
        intent_correct: sum(1),
        language_correct: sum(2),
    });
    StressResult {
        target: plan.target.clone(),
        planned_rate: plan.rate,
        duration_s: plan.duration.as_secs_f64(),
        sent,
        ok: c.outcomes[0],
        rate_limited: c.outcomes[1],
        errors: c.outcomes[2],
        timeouts: c.outcomes[3],
        achieved_rate: c.outcomes[0] as f64 / plan.duration.as_secs_f64(),
        latency_ms: LatencySummary {
            mean: c.latency.mean() / 1e3,
            p50: ms(c.latency.value_at_quantile(0.50)),
            p95: ms(c.latency.value_at_quantile(0.95)),
            p99: ms(c.latency.value_at_quantile(0.99)),
            max: ms(c.latency.max()),
        },
        timeline: c
            .seconds
            .iter()
            .enumerate()
            .map(|(i, &(sent, ok, failed, total_ms, max_ms))| Second {
                second: i as u64,
                sent,
                ok,
                failed,
                mean_ms: if ok == 0 { 0.0 } else { total_ms / ok as f64 },
                max_ms,
            })
            .collect(),
        accuracy,
        generator_lag: GeneratorLag {
            late: c.late,
            max_ms: c.max_lag.as_secs_f64() * 1e3,
        },
        histogram: histogram(&c.latency),
    }
}

fn histogram(latency: &Histogram<u64>) -> Vec<(Option<f64>, u64)> {
    let mut counts = vec![0u64; BUCKETS_MS.len() + 1];
    for v in latency.iter_recorded() {
        let ms = v.value_iterated_to() as f64 / 1e3;
        let i = BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(BUCKETS_MS.len());
        counts[i] += v.count_at_value();
    }
    BUCKETS_MS
        .iter()
        .map(|&b| Some(b))
        .chain(std::iter::once(None))
        .zip(counts)
        .collect()
}

/// The fields of a chat answer the stress test checks.
#[derive(Deserialize)]
struct Reply {
    intent: String,
    language: String,
}

/// One chat request; the status when it is not a 200 with a chat answer.
async fn ask(
    upstream: &Upstream,
    path: &http::uri::PathAndQuery,
    body: Bytes,
) -> Result<Reply, StatusCode> {
    let req = Request::post(path.as_str())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json")
        .body(crate::body::full(body))
        .expect("static request parts");
    let resp = upstream
        .send(req)
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?;
    let status = resp.status();
    let bytes = Limited::new(resp.into_body(), MAX_REPLY)
        .collect()
        .await
        .map_err(|_| StatusCode::BAD_GATEWAY)?
        .to_bytes();
    if status != StatusCode::OK {
        return Err(status);
    }
    serde_json::from_slice(&bytes).map_err(|_| StatusCode::UNPROCESSABLE_ENTITY)
}

/// The blind test set compiled in (messages written by writers who never saw the training data;
/// `tests/data/chat/blind/`): what `edgeseo stress` sends unless given the certifier's own file.
pub fn builtin_messages() -> (Vec<ChatExample>, Vec<(&'static str, &'static str)>) {
    const FILES: [(&str, &str); 4] = [
        (
            "tests/data/chat/blind/en.csv",
            include_str!("../tests/data/chat/blind/en.csv"),
        ),
        (
            "tests/data/chat/blind/id.csv",
            include_str!("../tests/data/chat/blind/id.csv"),
        ),
        (
            "tests/data/chat/blind/vi.csv",
            include_str!("../tests/data/chat/blind/vi.csv"),
        ),
        (
            "tests/data/chat/blind/th.csv",
            include_str!("../tests/data/chat/blind/th.csv"),
        ),
    ];
    let mut messages = Vec::new();
    for (name, text) in FILES {
        let src = crate::config::SourceFile::new(name, text.to_owned());
        let mut diags = Vec::new();
        messages.extend(crate::config::parse_examples(&src, &mut diags));
        debug_assert!(diags.is_empty(), "{name}: {diags:?}");
    }
    // Interleaved so that any stretch of the run mixes the four languages.
    messages.sort_by_key(|m| m.text.len() % 7);
    (messages, FILES.to_vec())
}
