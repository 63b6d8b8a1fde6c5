//! The chat rules of a site: `[chat]` in site.toml (endpoint path, confidence threshold, limits),
//! `chat/intents.csv` (labelled examples the intent model is trained on when the rules load) and
//! `chat/answers.toml` (the knowledge base: an answer per intent per language) and
//! `chat/regulations.toml` (regulatory guidance the chat retrieves, see `knowledge`).
//!
//! A site's examples and answers add to the base that ships inside edgeseo (`src/chat/base/`:
//! buyer messages of many industries in four languages, and answers that fit any supplier), so a
//! site without files of its own still gets a working chat; `base = false` opts out.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use http::HeaderValue;
use http::uri::PathAndQuery;

use ipnet::IpNet;
use toml::Spanned;

use super::diag::{Diagnostic, SourceFile, file_diagnostic};
use super::knowledge::{self, RegEntry};
use super::raw::{RawAnswer, RawChat, RawLlm, RawSite};
use super::{Origin, OriginTarget, Validator, read_source};
use crate::locale::Locale;

/// `threshold` when a site sets none: the intent model's recommended value (cross-validated on
/// the base corpus).
pub const DEFAULT_THRESHOLD: f32 = crate::chat::intent::RECOMMENDED_THRESHOLD;

/// One labelled message of a training corpus or an evaluation set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatExample {
    pub text: String,
    pub intent: String,
    pub lang: Locale,
    /// Trade the message is about (`general` when it names none); only the base corpus has it,
    /// for leave-one-industry-out cross-validation.
    pub industry: Option<String>,
}

/// The chat corpus and answers compiled into edgeseo.
#[derive(Debug)]
pub struct BaseChat {
    pub examples: Vec<ChatExample>,
    pub answers: HashMap<String, [String; 4]>,
    /// Buyer messages labelled `rule` (asking about import rules) or `trade` (a commercial
    /// request in the same words), which teach the knowledge base's gate.
    pub rule_questions: Vec<ChatExample>,
}

/// Where the base files live in the source tree; diagnostics about them name these paths.
const BASE_INTENTS: (&str, &str) = (
    "src/chat/base/intents.csv",
    include_str!("../chat/base/intents.csv"),
);
const BASE_RULE_QUESTIONS: (&str, &str) = (
    "src/chat/base/rule-questions.csv",
    include_str!("../chat/base/rule-questions.csv"),
);
const BASE_ANSWERS: (&str, &str) = (
    "src/chat/base/answers.toml",
    include_str!("../chat/base/answers.toml"),
);

static BASE: LazyLock<Result<BaseChat, Vec<Diagnostic>>> = LazyLock::new(|| {
    let mut diags = Vec::new();
    let examples = parse_examples(
        &SourceFile::new(BASE_INTENTS.0, BASE_INTENTS.1.into()),
        &mut diags,
    );
    let answers = parse_answers(
        &SourceFile::new(BASE_ANSWERS.0, BASE_ANSWERS.1.into()),
        &mut diags,
    );
    let rule_questions = parse_examples(
        &SourceFile::new(BASE_RULE_QUESTIONS.0, BASE_RULE_QUESTIONS.1.into()),
        &mut diags,
    );
    let chat = BaseChat {
        examples,
        answers,
        rule_questions,
    };
    diags.extend(missing_answers(
        &chat.examples,
        &[&chat.answers],
        Path::new(BASE_ANSWERS.0),
    ));
    if diags.is_empty() {
        Ok(chat)
    } else {
        Err(diags)
    }
});

/// The shipped corpus and answers, parsed once per process; a broken file is reported like a
/// broken rule file (a test keeps it from shipping).
pub fn base_chat() -> Result<&'static BaseChat, &'static [Diagnostic]> {
    BASE.as_ref().map_err(Vec::as_slice)
}

#[derive(Debug, Clone)]
pub struct ChatRules {
    /// Request path of the endpoint, e.g. `/api/chat`.
    pub path: String,
    /// Below this confidence the answer is the polite handover (`unknown`).
    pub threshold: f32,
    /// Longest accepted message, in bytes; the whole JSON body may be 4x this.
    pub max_message: usize,
    pub limits: ChatLimits,
    /// The site's own training examples (added to the base's unless `base` is `None`).
    pub examples: Vec<ChatExample>,
    /// The site's own answers per intent per language, placeholders not yet filled; for an
    /// intent that both define, the site's answer wins over the base's.
    pub answers: HashMap<String, [String; 4]>,
    /// The shipped corpus and answers, unless the site opted out with `base = false`.
    pub base: Option<&'static BaseChat>,
    /// Regulatory guidance: the shipped entries (unless `base = false`) merged with the site's.
    pub regulations: Vec<Arc<RegEntry>>,
    /// Inject the chat widget's script into the site's localized pages.
    pub widget: bool,
    /// The site's own chat service, when it has one; the knowledge base is then the fallback.
    pub backend: Option<ChatBackend>,
    /// The model that words the answers from the retrieved facts, when the site has one.
    pub llm: Option<ChatLlm>,
}

/// `[chat] llm`: an OpenAI-compatible chat-completions endpoint.
#[derive(Debug, Clone)]
pub struct ChatLlm {
    /// Scheme, authority and timeouts; `response_timeout` is the whole exchange's deadline.
    pub origin: Origin,
    /// The endpoint's path, e.g. `/v1/chat/completions`.
    pub path: PathAndQuery,
    pub model: String,
    /// Read from the environment variable `api_key_env` names when the rules load.
    pub api_key: Option<ApiKey>,
    /// Requests to the model at once; beyond this the knowledge answer goes out.
    pub max_concurrent: usize,
    /// Tokens the site may spend per minute (prompt estimate plus `max_tokens` per request).
    pub tokens_per_minute: u32,
    /// Most tokens the model may write per reply.
    pub max_tokens: u32,
    /// Send buyers' phone numbers, emails and ID numbers to the model unmasked.
    pub send_personal_data: bool,
}

/// A secret that debug output and logs never show.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(..)")
    }
}

/// The longest `llm.timeout`: the answer, the model's or the fallback, is due within 3 s.
const MAX_LLM_TIMEOUT: Duration = Duration::from_millis(2900);

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
            DEFAULT_THRESHOLD
        }
        None => DEFAULT_THRESHOLD,
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
            origin: service_origin(scheme, authority, backend_timeout, origin),
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

    let llm = c.llm.as_ref().and_then(|l| llm_rules(l, origin, v));
    if let (Some(l), Some(_)) = (&c.llm, &c.backend) {
        v.error(
            l.span(),
            "`llm` and `backend` exclude each other: the backend writes its own answers",
        );
    }

    let base = if c.base.unwrap_or(true) {
        match base_chat() {
            Ok(b) => Some(b),
            Err(diags) => {
                other.extend_from_slice(diags);
                None
            }
        }
    } else {
        None
    };
    let before = other.len();
    // With the base, a site's own files are optional additions.
    let read = |name: &str, other: &mut Vec<Diagnostic>| {
        let path = site_dir.join(name);
        (base.is_none() || path.exists())
            .then(|| read_source(&path, other))
            .flatten()
    };
    let examples = read("chat/intents.csv", other)
        .map(|src| parse_examples(&src, other))
        .unwrap_or_default();
    let answers = read("chat/answers.toml", other)
        .map(|src| parse_answers(&src, other))
        .unwrap_or_default();
    let own_regulations = Some(site_dir.join("chat/regulations.toml"))
        .filter(|p| p.exists())
        .and_then(|p| read_source(&p, other))
        .map(|src| knowledge::parse(&src, other))
        .unwrap_or_default();
    let shipped = if base.is_some() {
        knowledge::base_regulations().unwrap_or_else(|diags| {
            other.extend_from_slice(diags);
            &[]
        })
    } else {
        &[]
    };
    let regulations = knowledge::merge(shipped, own_regulations);
    let mut known = vec![&answers];
    known.extend(base.map(|b| &b.answers));
    other.extend(missing_answers(
        &examples,
        &known,
        &site_dir.join("chat/answers.toml"),
    ));
    (other.len() == before).then(|| ChatRules {
        path: c.path.get_ref().clone(),
        threshold,
        max_message,
        limits,
        examples,
        answers,
        base,
        regulations,
        widget: c.widget.unwrap_or(true),
        backend,
        llm,
    })
}

/// Where a chat service the edge calls (a backend, a model) is reached: `timeout` for its
/// answer, a second at most to connect. A service on the origin's private CA is trusted like the
/// origin.
fn service_origin(
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    timeout: Duration,
    origin: Option<&Origin>,
) -> Origin {
    Origin {
        target: OriginTarget::Url { scheme, authority },
        host: None,
        connect_timeout: timeout.min(Duration::from_secs(1)),
        response_timeout: timeout,
        extra_roots: origin.map(|o| o.extra_roots.clone()).unwrap_or_default(),
        max_idle_connections: 64,
    }
}

fn llm_rules(
    raw: &Spanned<RawLlm>,
    origin: Option<&Origin>,
    v: &mut Validator<'_>,
) -> Option<ChatLlm> {
    let l = raw.get_ref();
    let mut timeout = v.duration(&l.timeout, Duration::from_millis(2800));
    if let Some(t) = &l.timeout
        && timeout > MAX_LLM_TIMEOUT
    {
        v.error(
            t.span(),
            "llm timeout is at most 2.9s: the answer, generated or not, is due within 3 s",
        );
        timeout = MAX_LLM_TIMEOUT;
    }
    let max_concurrent = v.count(&l.max_concurrent, 64, 1..=100_000) as usize;
    let tokens_per_minute = v.count(&l.tokens_per_minute, 200_000, 1..=100_000_000) as u32;
    let max_tokens = v.count(&l.max_tokens, 250, 16..=32_000) as u32;
    // A request takes its prompt (about 1,000 tokens with the facts) plus max_tokens: a smaller
    // budget would send every answer to the fallback.
    if tokens_per_minute < max_tokens + 1000 {
        let span = l
            .tokens_per_minute
            .as_ref()
            .or(l.max_tokens.as_ref())
            .map(|s| s.span())
            .unwrap_or_else(|| raw.span());
        v.error(
            span,
            format!(
                "tokens_per_minute ({tokens_per_minute}) must be at least max_tokens ({max_tokens}) plus 1000 for the prompt"
            ),
        );
    }
    if l.model.get_ref().trim().is_empty() {
        v.error(l.model.span(), "llm model is empty");
    }
    let api_key = l
        .api_key_env
        .as_ref()
        // A key read from a file often ends in a newline.
        .and_then(
            |name| match std::env::var(name.get_ref()).map(|k| k.trim().to_string()) {
                Ok(key) if HeaderValue::from_str(&format!("Bearer {key}")).is_err() => {
                    v.error(
                    name.span(),
                    format!(
                        "environment variable `{}` holds characters an HTTP header cannot carry",
                        name.get_ref()
                    ),
                );
                    None
                }
                Ok(key) if !key.is_empty() => Some(ApiKey(key)),
                _ => {
                    v.error(
                        name.span(),
                        format!(
                            "environment variable `{}` (the model's API key) is not set",
                            name.get_ref()
                        ),
                    );
                    None
                }
            },
        );
    let (scheme, authority, path) = v.http_url(&l.url, "llm")?;
    let path = path.unwrap_or_else(|| PathAndQuery::from_static("/"));
    if !path.path().ends_with("/chat/completions") {
        v.error(
            l.url.span(),
            "llm url is the chat-completions endpoint, e.g. \"http://127.0.0.1:11434/v1/chat/completions\"",
        );
    }
    Some(ChatLlm {
        origin: service_origin(scheme, authority, timeout, origin),
        path,
        model: l.model.get_ref().clone(),
        api_key,
        max_concurrent,
        tokens_per_minute,
        max_tokens,
        send_personal_data: l.send_personal_data.unwrap_or(false),
    })
}

/// Reads a labelled CSV: header `text,intent,lang`, optionally followed by `industry`. Used for
/// rule files and for evaluation sets alike.
pub fn parse_examples(src: &SourceFile, diags: &mut Vec<Diagnostic>) -> Vec<ChatExample> {
    let mut reader = csv::ReaderBuilder::new().from_reader(src.text.as_bytes());
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(str::to_string).collect(),
        Err(e) => {
            diags.push(src.diagnostic(0..0, format!("cannot read CSV header: {e}")));
            return Vec::new();
        }
    };
    let with_industry = match headers.as_slice() {
        [t, i, l] if t == "text" && i == "intent" && l == "lang" => false,
        [t, i, l, d] if t == "text" && i == "intent" && l == "lang" && d == "industry" => true,
        _ => {
            diags.push(src.diagnostic(
                0..0,
                "header must be text,intent,lang (then optionally industry)",
            ));
            return Vec::new();
        }
    };
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
        let industry = with_industry.then(|| record[3].trim().to_string());
        match Locale::from_code(lang) {
            Some(l) if !text.trim().is_empty() && !intent.is_empty() => out.push(ChatExample {
                text: text.to_string(),
                intent: intent.to_string(),
                lang: l,
                industry,
            }),
            Some(_) => diags.push(src.diagnostic(at..at, "text and intent must not be empty")),
            None => diags.push(src.diagnostic(
                at..at,
                format!("unknown language `{lang}`; known: en, id, vi, th"),
            )),
        }
    }
    out
}

fn parse_answers(src: &SourceFile, diags: &mut Vec<Diagnostic>) -> HashMap<String, [String; 4]> {
    let tables: BTreeMap<String, Spanned<RawAnswer>> = match toml::from_str(&src.text) {
        Ok(t) => t,
        Err(e) => {
            diags.push(src.diagnostic(e.span().unwrap_or(0..0), e.message().trim().to_string()));
            return HashMap::new();
        }
    };
    let mut answers = HashMap::new();
    for (intent, table) in tables {
        let at = table.span();
        let RawAnswer { en, id, vi, th } = table.into_inner();
        let mut per_locale: [String; 4] = Default::default();
        for (locale, text) in Locale::ALL.into_iter().zip([en, id, vi, th]) {
            match text {
                Some(text) if !text.get_ref().trim().is_empty() => {
                    per_locale[locale as usize] = text.into_inner();
                }
                Some(text) => diags.push(src.diagnostic(
                    text.span(),
                    format!("[{intent}] `{}` answer is empty", locale.code()),
                )),
                None => diags.push(src.diagnostic(
                    at.clone(),
                    format!("[{intent}] needs a `{}` answer", locale.code()),
                )),
            }
        }
        answers.insert(intent, per_locale);
    }
    answers
}

/// Every intent the examples use, and `unknown`, needs an answer in one of `known`.
fn missing_answers(
    examples: &[ChatExample],
    known: &[&HashMap<String, [String; 4]>],
    path: &Path,
) -> Vec<Diagnostic> {
    let mut needed: Vec<&str> = examples.iter().map(|e| e.intent.as_str()).collect();
    needed.push("unknown");
    needed.sort_unstable();
    needed.dedup();
    needed
        .into_iter()
        .filter(|intent| !known.iter().any(|a| a.contains_key(*intent)))
        .map(|intent| {
            file_diagnostic(
                path,
                format!("no answers for intent `{intent}` (intents.csv uses it)"),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn answer_problems(text: &str) -> Vec<String> {
        let src = SourceFile::new("site/chat/answers.toml", text.to_string());
        let mut diags = Vec::new();
        parse_answers(&src, &mut diags);
        diags.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn answer_problems_point_at_their_line_and_column() {
        let text = "[greeting]\nen = \"hi\"\nid = \"halo\"\nvi = \"chao\"\nth = \" \"\n\n[moq]\nen = \"500 pcs\"\nid = \"500 pcs\"\nvi = \"500 cai\"\n";
        let problems = answer_problems(text);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[1].starts_with("site/chat/answers.toml:7:1: [moq] needs a `th` answer"),
            "{problems:?}"
        );
        assert!(
            problems[0].starts_with("site/chat/answers.toml:5:6: [greeting] `th` answer is empty"),
            "{problems:?}"
        );
        let typo = answer_problems("[moq]\nen = \"500\"\nms = \"500\"\n");
        assert_eq!(typo.len(), 1, "{typo:?}");
        assert!(
            typo[0].starts_with("site/chat/answers.toml:3:1:"),
            "{typo:?}"
        );
        assert!(typo[0].contains("unknown field `ms`"), "{typo:?}");
    }

    #[test]
    fn the_shipped_base_parses_and_covers_every_language_and_many_trades() {
        let base = base_chat().unwrap_or_else(|d| panic!("{}", d[0]));
        let intents: BTreeSet<&str> = base.examples.iter().map(|e| e.intent.as_str()).collect();
        assert_eq!(intents.len(), 15, "{intents:?}");
        for intent in &intents {
            assert!(base.answers.contains_key(*intent), "{intent}");
            for lang in Locale::ALL {
                let n = base
                    .examples
                    .iter()
                    .filter(|e| e.intent == *intent && e.lang == lang)
                    .count();
                assert!(n >= 150, "{intent} {lang:?}: {n}");
            }
        }
        let industries: BTreeSet<&str> = base
            .examples
            .iter()
            .filter_map(|e| e.industry.as_deref())
            .collect();
        assert!(industries.len() > 12, "{industries:?}");
        for answers in base.answers.values() {
            assert!(
                answers.iter().all(|a| !a.contains("{email}")),
                "{answers:?}"
            );
        }
    }
}
