//! The chat rules of a site: `[chat]` in site.toml (endpoint path, confidence threshold, limits),
//! `chat/intents.csv` (labelled examples the intent model is trained on when the rules load) and
//! `chat/answers.toml` (the knowledge base: an answer per intent per language).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use http::uri::PathAndQuery;

use ipnet::IpNet;
use toml::Spanned;

use super::diag::{Diagnostic, file_diagnostic};
use super::raw::{RawChat, RawSite};
use super::{Origin, OriginTarget, Validator, read_source};
use crate::locale::Locale;

#[derive(Debug, Clone)]
pub struct ChatRules {
    /// Request path of the endpoint, e.g. `/api/chat`.
    pub path: String,
    /// Below this confidence the answer is the polite handover (`unknown`).
    pub threshold: f32,
    /// Longest accepted message, in bytes; the whole JSON body may be 4x this.
    pub max_message: usize,
    pub limits: ChatLimits,
    /// `(text, intent, language)` training examples.
    pub examples: Vec<(String, String, Locale)>,
    /// Answer per intent (including `unknown`) per language, placeholders not yet filled.
    pub answers: HashMap<String, [String; 4]>,
    /// Inject the chat widget's script into the site's localized pages.
    pub widget: bool,
    /// The site's own chat service, when it has one; the knowledge base is then the fallback.
    pub backend: Option<ChatBackend>,
}

/// A site's own chat service that edgeseo forwards to (`[chat] backend`).
#[derive(Debug, Clone)]
pub struct ChatBackend {
    /// Scheme, authority and timeouts; `response_timeout` is the time the backend has to answer.
    pub origin: Origin,
    /// Path (and query) of the backend's chat endpoint.
    pub path: PathAndQuery,
    /// Requests forwarded at once; beyond this the knowledge base answers.
    pub max_concurrent: usize,
}

#[derive(Debug, Clone)]
pub struct ChatLimits {
    pub per_ip_per_minute: u32,
    pub per_session_per_minute: u32,
    pub global_per_second: u32,
    /// Requests answered at once; more wait up to a second, then get 429.
    pub max_concurrent: usize,
    /// Clients exempt from the per-IP and per-session quotas (not from the global one).
    pub exempt: Vec<IpNet>,
}

impl ChatLimits {
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        self.exempt.iter().any(|n| n.contains(&ip))
    }
}

pub(super) fn load(
    site_dir: &Path,
    raw: &RawSite,
    origin: Option<&Origin>,
    v: &mut Validator<'_>,
    other: &mut Vec<Diagnostic>,
) -> Option<ChatRules> {
    let chat: &Spanned<RawChat> = raw.chat.as_ref()?;
    let c = chat.get_ref();
    if !c.path.get_ref().starts_with('/') {
        v.error(c.path.span(), "chat path must start with `/`");
    }
    let threshold = match &c.threshold {
        Some(t) if (0.0..=1.0).contains(t.get_ref()) => *t.get_ref() as f32,
        Some(t) => {
            v.error(t.span(), "threshold is a confidence between 0 and 1");
            0.5
        }
        None => 0.5,
    };
    let per_minute = |v: &mut Validator<'_>, x: &Option<Spanned<i64>>, d: i64| {
        v.count(x, d, 1..=1_000_000) as u32
    };
    let limits = ChatLimits {
        per_ip_per_minute: per_minute(v, &c.per_ip_per_minute, 60),
        per_session_per_minute: per_minute(v, &c.per_session_per_minute, 30),
        global_per_second: per_minute(v, &c.global_per_second, 2000),
        max_concurrent: v.count(&c.max_concurrent, 512, 1..=100_000) as usize,
        exempt: c
            .exempt
            .iter()
            .flatten()
            .filter_map(|e| v.network(e))
            .collect(),
    };
    let max_message = v.size(&c.max_message, 2048, 16..=1 << 20) as usize;
    // The certification's budget for an answer is 3 s; the fallback needs a little of it.
    let mut backend_timeout = v.duration(&c.backend_timeout, Duration::from_millis(2500));
    if let Some(t) = c.backend_timeout.as_ref()
        && backend_timeout > Duration::from_secs(60)
    {
        v.error(
            t.span(),
            "backend_timeout is at most 60s (buyers are waiting)",
        );
        backend_timeout = Duration::from_secs(60);
    }
    let backend_max_concurrent = v.count(&c.backend_max_concurrent, 256, 1..=100_000) as usize;
    let backend = c.backend.as_ref().and_then(|url| {
        let (scheme, authority, path) = v.http_url(url, "chat backend")?;
        Some(ChatBackend {
            origin: Origin {
                target: OriginTarget::Url { scheme, authority },
                host: None,
                connect_timeout: backend_timeout.min(Duration::from_secs(1)),
                response_timeout: backend_timeout,
                // A backend on the origin's private CA is trusted like the origin.
                extra_roots: origin.map(|o| o.extra_roots.clone()).unwrap_or_default(),
                max_idle_connections: 64,
            },
            path: path.unwrap_or_else(|| PathAndQuery::from_static("/")),
            max_concurrent: backend_max_concurrent,
        })
    });
    if c.backend.is_none() {
        for (key, span) in [
            (
                "backend_timeout",
                c.backend_timeout.as_ref().map(|s| s.span()),
            ),
            (
                "backend_max_concurrent",
                c.backend_max_concurrent.as_ref().map(|s| s.span()),
            ),
        ] {
            if let Some(span) = span {
                v.error(
                    span,
                    format!("`{key}` needs `backend` (the site's chat service URL)"),
                );
            }
        }
    }

    let before = other.len();
    let examples = load_examples(&site_dir.join("chat/intents.csv"), other);
    let answers = load_answers(&site_dir.join("chat/answers.toml"), &examples, other);
    (other.len() == before).then(|| ChatRules {
        path: c.path.get_ref().clone(),
        threshold,
        max_message,
        limits,
        examples,
        answers,
        widget: c.widget.unwrap_or(true),
        backend,
    })
}

fn load_examples(path: &Path, diags: &mut Vec<Diagnostic>) -> Vec<(String, String, Locale)> {
    let Some(src) = read_source(path, diags) else {
        return Vec::new();
    };
    let mut reader = csv::ReaderBuilder::new().from_reader(src.text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => {
            diags.push(src.diagnostic(0..0, format!("cannot read CSV header: {e}")));
            return Vec::new();
        }
    };
    if headers != ["text", "intent", "lang"] {
        diags.push(src.diagnostic(0..0, "header must be text,intent,lang"));
        return Vec::new();
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let at = e.position().map_or(0, |p| p.byte() as usize);
                diags.push(src.diagnostic(at..at, format!("invalid CSV: {e}")));
                return Vec::new();
            }
        };
        let at = record.position().map_or(0, |p| p.byte() as usize);
        let (text, intent, lang) = (&record[0], record[1].trim(), record[2].trim());
        match Locale::from_code(lang) {
            Some(l) if !text.trim().is_empty() && !intent.is_empty() => {
                out.push((text.to_string(), intent.to_string(), l))
            }
            Some(_) => diags.push(src.diagnostic(at..at, "text and intent must not be empty")),
            None => diags.push(src.diagnostic(
                at..at,
                format!("unknown language `{lang}`; known: en, id, vi, th"),
            )),
        }
    }
    out
}

fn load_answers(
    path: &Path,
    examples: &[(String, String, Locale)],
    diags: &mut Vec<Diagnostic>,
) -> HashMap<String, [String; 4]> {
    let Some(src) = read_source(path, diags) else {
        return HashMap::new();
    };
    let table: toml::Table = match toml::from_str(&src.text) {
        Ok(t) => t,
        Err(e) => {
            diags.push(src.diagnostic(e.span().unwrap_or(0..0), e.message().trim().to_string()));
            return HashMap::new();
        }
    };
    let mut answers = HashMap::new();
    for (intent, texts) in &table {
        let mut per_locale: [String; 4] = Default::default();
        for locale in Locale::ALL {
            match texts.get(locale.code()).and_then(|t| t.as_str()) {
                Some(text) if !text.trim().is_empty() => {
                    per_locale[locale as usize] = text.to_string()
                }
                _ => diags.push(file_diagnostic(
                    path,
                    format!("[{intent}] needs a non-empty `{}` answer", locale.code()),
                )),
            }
        }
        answers.insert(intent.clone(), per_locale);
    }
    let mut needed: Vec<&str> = examples.iter().map(|(_, i, _)| i.as_str()).collect();
    needed.push("unknown");
    needed.sort_unstable();
    needed.dedup();
    for intent in needed {
        if !answers.contains_key(intent) {
            diags.push(file_diagnostic(
                path,
                format!("no answers for intent `{intent}` (intents.csv uses it)"),
            ));
        }
    }
    answers
}
