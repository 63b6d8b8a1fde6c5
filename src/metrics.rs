//! What the request path counts for `/metrics`, through prometheus-client (OpenMetrics text).
//!
//! Owns: the metric families recorded as requests pass (requests, latency, origin failures, the
//! chat's answers and refusals) and their labels. Values that are read rather than counted (cache
//! usage, rules, translation coverage) are added by the admin listener at each scrape.
//! Labels stay bounded: sites come from the rules, locales and status classes are fixed sets,
//! and the chat's intents are those of its model.

use std::sync::Arc;
use std::time::Duration;

use http::{Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

use crate::access::Note;
use crate::chat::backend::{INTENT_HEADER, LANGUAGE_HEADER};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    site: Option<Arc<str>>,
    locale: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabels {
    site: Option<Arc<str>>,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChatLabels {
    site: Option<Arc<str>>,
    language: String,
    intent: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SiteLabels {
    site: Option<Arc<str>>,
}

type Histograms = Family<KindLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    latency: Histograms,
    origin_failures: Family<OriginLabels, Counter>,
    chat_answers: Family<ChatLabels, Counter>,
    chat_refused: Family<SiteLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        // 0.5 ms to 16 s: a cache hit, a rewritten page and a slow origin each fall inside.
        fn buckets() -> Histogram {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        }
        Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(buckets),
            origin_failures: Family::default(),
            chat_answers: Family::default(),
            chat_refused: Family::default(),
        }
    }

    /// One request, once its response head is ready (`latency` is time to that head: what a
    /// rewritten or streamed body then takes is the client's pace as much as edgeseo's).
    pub fn request<B>(&self, note: &Note, resp: &Response<B>, latency: Duration) {
        let status = resp.status();
        let site = note.site().cloned();
        self.requests
            .get_or_create(&RequestLabels {
                site: site.clone(),
                locale: note.locale().map_or("", |l| l.code()),
                status: status_class(status),
            })
            .inc();
        let kind = if note.is_chat() { "chat" } else { "page" };
        self.latency
            .get_or_create(&KindLabels { kind })
            .observe(latency.as_secs_f64());
        if !note.is_chat() {
            return;
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if status == StatusCode::TOO_MANY_REQUESTS {
            self.chat_refused.get_or_create(&SiteLabels { site }).inc();
        } else if let (Some(language), Some(intent)) =
            (header(LANGUAGE_HEADER), header(INTENT_HEADER))
        {
            self.chat_answers
                .get_or_create(&ChatLabels {
                    site,
                    language,
                    intent,
                })
                .inc();
        }
    }

    /// The origin failed a request (`kind` from `ProxyError::origin_failure`), whether the client
    /// then got an error or a stale page.
    pub fn origin_failure(&self, site: Option<&Arc<str>>, kind: &'static str) {
        self.origin_failures
            .get_or_create(&OriginLabels {
                site: site.cloned(),
                kind,
            })
            .inc();
    }

    /// Adds the families to a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "requests",
            "Requests by site, locale and status class",
            self.requests.clone(),
        );
        registry.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its response head, pages and chat apart",
            Unit::Seconds,
            self.latency.clone(),
        );
        registry.register(
            "origin_failures",
            "Requests the origin failed: unreachable, timeout or protocol (broken response)",
            self.origin_failures.clone(),
        );
        registry.register(
            "chat_answers",
            "Chat messages answered, by detected language and recognised intent",
            self.chat_answers.clone(),
        );
        registry.register(
            "chat_rate_limited",
            "Chat requests refused with 429 by the per-IP, per-session, global or concurrency limits",
            self.chat_refused.clone(),
        );
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}
