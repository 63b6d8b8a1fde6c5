//! The customer-service chat at the edge: `POST <chat path>` with `{"message", "session"?,
//! "locale"?}` is answered with `{"language", "intent", "confidence", "answer", "source",
//! "product"?, "sources"?, "fallback"?}`:
//! limits first (governor), then language identification, intent classification, retrieval
//! (a named product's facts, the regulatory knowledge base) and the answer in the detected
//! language; a site's own chat service (`backend`) or model (`llm`, worded from the retrieved
//! facts) may answer instead, with the knowledge answer as their fallback.
//!
//! Every bad request becomes a JSON error with its status (400, 413, 415, 429); nothing here may
//! panic on input.

pub mod backend;
pub mod eval;
mod facts;
pub mod features;
pub mod guard;
pub mod intent;
pub mod knowledge;
pub mod langid;
pub mod llm;
pub mod products;

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::body::{self, Body};
use crate::config::{ChatRules, Organization, Site};
use crate::fleet::{Fleet, Rate};
use crate::forward::ClientSide;
use crate::locale::Locale;
use backend::Backend;
use intent::{Example, IntentModel, TrainParams};
use langid::LanguageId;
use llm::Llm;
use products::ProductIndex;

/// Language identification is the same for every site; its models load once.
static LANGUAGE_ID: LazyLock<LanguageId> = LazyLock::new(LanguageId::new);

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("the intent model cannot be trained: {0}")]
    Train(#[from] intent::IntentError),
    #[error("the chat backend cannot be set up: {0}")]
    Backend(#[from] crate::upstream::UpstreamError),
    #[error("the chat model's endpoint cannot be set up: {0}")]
    Llm(crate::upstream::UpstreamError),
    #[error("the regulatory knowledge base cannot be indexed: {0}")]
    Knowledge(String),
}

/// One site's chat: its trained model, answers and limits. Built when the rules load.
pub struct ChatService {
    rules: Arc<ChatRules>,
    model: Arc<IntentModel>,
    /// Answers with the company's facts filled in, per intent, per locale.
    answers: HashMap<String, [String; 4]>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    per_session: DefaultKeyedRateLimiter<String>,
    global: DefaultDirectRateLimiter,
    in_flight: Semaphore,
    backend: Option<Backend>,
    /// The model that words the answer, when the site has one.
    llm: Option<Arc<Llm>>,
    catalog: Option<Catalog>,
    /// Regulatory guidance the site answers import questions from.
    knowledge: Option<knowledge::Knowledge>,
    /// Where the quotas are counted when several instances share them, and the site's name in
    /// the keys; the limiters above decide while it cannot.
    fleet: Option<(Arc<Fleet>, String)>,
}

/// The site's products as the chat names them, with what links to their pages.
struct Catalog {
    index: ProductIndex,
    /// Public origin of the links (empty: links relative to the site).
    base: String,
    /// The site's rules: a link goes to the buyer's version of the page where it is published
    /// (the coverage guard's `advertised`), else to English.
    seo: Arc<crate::config::SiteSeo>,
}

#[derive(Deserialize)]
struct ChatRequest {
    message: String,
    session: Option<String>,
    locale: Option<String>,
}

#[derive(Serialize, Clone)]
pub struct ChatAnswer {
    pub language: &'static str,
    pub intent: String,
    pub confidence: f32,
    pub answer: String,
    pub source: &'static str,
    /// SKU of the product the message names, whose facts lead the answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Ids of the knowledge base's entries the answer states (cited in its text).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
    /// Why a backend's or a model's answer was not used (also the `x-edgeseo-chat-fallback`
    /// header), with `source` "fallback".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback: Option<&'static str>,
    /// The end of `answer` that cites `sources` (empty without them); a generated reply keeps it.
    #[serde(skip)]
    pub citation: String,
}

fn quota(n: u32, per_minute: bool) -> Quota {
    let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    if per_minute {
        Quota::per_minute(n)
    } else {
        Quota::per_second(n)
    }
}

impl ChatService {
    /// The chat of `site`, if its rules have `[chat]`; answers link to its public origin.
    pub fn for_site(
        site: &Site,
        fleet: Option<&Arc<Fleet>>,
    ) -> Result<Option<ChatService>, ChatError> {
        let Some(rules) = &site.chat else {
            return Ok(None);
        };
        let url = site
            .seo
            .as_ref()
            .and_then(|s| s.public_origin.clone())
            .unwrap_or_default();
        let mut chat = Self::new(rules.clone(), site.organization.as_deref(), &url)?;
        chat.fleet = fleet.map(|f| (f.clone(), site.name.clone()));
        chat.catalog = site.seo.as_ref().and_then(|seo| {
            Some(Catalog {
                index: ProductIndex::new(seo)?,
                base: url,
                seo: seo.clone(),
            })
        });
        Ok(Some(chat))
    }

    pub fn new(
        rules: Arc<ChatRules>,
        org: Option<&Organization>,
        url: &str,
    ) -> Result<ChatService, ChatError> {
        let examples: Vec<Example> = rules
            .base
            .iter()
            .flat_map(|b| &b.examples)
            .chain(&rules.examples)
            .map(eval::example)
            .collect();
        let model = trained(&examples)?;
        // The site's answer for an intent replaces the base's whole.
        let mut answers: HashMap<String, [String; 4]> = HashMap::new();
        for (intent, texts) in rules
            .base
            .iter()
            .flat_map(|b| &b.answers)
            .chain(&rules.answers)
        {
            answers.insert(intent.clone(), fill_answer(texts, org, url));
        }
        let knowledge =
            knowledge::Knowledge::new(rules.regulations.clone()).map_err(ChatError::Knowledge)?;
        let company = org
            .map(|o| o.name.as_str())
            .filter(|n| !n.is_empty())
            .unwrap_or("the supplier");
        let llm = rules
            .llm
            .as_ref()
            .map(|c| Llm::new(c, company).map(Arc::new))
            .transpose()
            .map_err(ChatError::Llm)?;
        let l = &rules.limits;
        Ok(ChatService {
            per_ip: RateLimiter::keyed(quota(l.per_ip_per_minute, true)),
            per_session: RateLimiter::keyed(quota(l.per_session_per_minute, true)),
            global: RateLimiter::direct(quota(l.global_per_second, false)),
            in_flight: Semaphore::new(l.max_concurrent),
            backend: rules.backend.as_ref().map(Backend::new).transpose()?,
            llm,
            rules,
            model,
            answers,
            knowledge,
            catalog: None,
            fleet: None,
        })
    }

    pub fn path(&self) -> &str {
        &self.rules.path
    }

    /// Forgets limiter state of clients not seen lately, so memory stays bounded however many
    /// addresses and sessions come by.
    pub fn prune(&self) {
        self.per_ip.retain_recent();
        self.per_ip.shrink_to_fit();
        self.per_session.retain_recent();
        self.per_session.shrink_to_fit();
    }

    /// Keys the limiters hold (for tests and metrics).
    pub fn tracked_clients(&self) -> usize {
        self.per_ip.len() + self.per_session.len()
    }

    /// Whether the site wants the widget on its pages.
    pub fn widget(&self) -> bool {
        self.rules.widget
    }

    /// Takes one request from `client` against this instance's per-IP limiter (exempt networks
    /// pass).
    pub fn check_ip(&self, client: IpAddr) -> Result<(), Duration> {
        if self.rules.limits.is_exempt(client) {
            return Ok(());
        }
        self.per_ip.check_key(&client).map_err(wait_time)
    }

    /// Takes one request of `session` against this instance's per-session limiter.
    pub fn check_session(&self, client: IpAddr, session: &str) -> Result<(), Duration> {
        if self.session_exempt(client, session) {
            return Ok(());
        }
        self.per_session
            .check_key(&session.to_string())
            .map_err(wait_time)
    }

    fn session_exempt(&self, client: IpAddr, session: &str) -> bool {
        self.rules.limits.is_exempt(client) || session.is_empty() || session.len() > 128
    }

    /// Admits a request against the per-IP and the global quota: counted by the fleet, in one
    /// round trip, when there is one and it answers; else by this instance's limiters.
    async fn admit(&self, client: IpAddr) -> Result<(), Duration> {
        let local = || {
            self.check_ip(client)?;
            self.global.check().map_err(wait_time)
        };
        let Some((fleet, site)) = &self.fleet else {
            return local();
        };
        let limits = &self.rules.limits;
        let mut quotas = vec![(
            format!("{site}:global"),
            Rate::per_second(limits.global_per_second),
        )];
        if !limits.is_exempt(client) {
            quotas.push((
                format!("{site}:ip:{client}"),
                Rate::per_minute(limits.per_ip_per_minute),
            ));
        }
        fleet.take(&quotas).await.unwrap_or_else(local)
    }

    /// Admits a request of `session` against the per-session quota, as `admit` does.
    async fn admit_session(&self, client: IpAddr, session: &str) -> Result<(), Duration> {
        let Some((fleet, site)) = &self.fleet else {
            return self.check_session(client, session);
        };
        if self.session_exempt(client, session) {
            return Ok(());
        }
        let rate = Rate::per_minute(self.rules.limits.per_session_per_minute);
        fleet
            .take(&[(format!("{site}:session:{session}"), rate)])
            .await
            .unwrap_or_else(|| self.check_session(client, session))
    }

    /// Answers one chat request. `client.ip` is the peer, `client_ip` the client's address after
    /// trusted proxies (the quota key); `page_locale` is the fallback language for messages too
    /// short to tell.
    pub async fn handle(
        &self,
        parts: http::request::Parts,
        body: Incoming,
        client: &ClientSide<'_>,
        client_ip: IpAddr,
        page_locale: Locale,
    ) -> Response<Body> {
        // The answer is due within the deadline from here, however long the edge's steps take.
        let started = Instant::now();
        let json_type =
            crate::headers::media_type(&parts.headers).as_deref() == Some("application/json");
        if !json_type {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send JSON with Content-Type: application/json",
            );
        }
        if let Err(wait) = self.admit(client_ip).await {
            return too_many(wait);
        }
        let Ok(slot) = tokio::time::timeout(Duration::from_secs(1), self.in_flight.acquire()).await
        else {
            return too_many(Duration::from_secs(1));
        };
        let bytes = match Limited::new(body, self.rules.max_message * 4 + 256)
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(_) => return error(StatusCode::PAYLOAD_TOO_LARGE, "message too long"),
        };
        let request: ChatRequest = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid JSON: {e}")),
        };
        let message = request.message.trim();
        if message.is_empty() {
            return error(StatusCode::BAD_REQUEST, "message is empty");
        }
        if message.len() > self.rules.max_message {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "message too long");
        }
        if let Err(wait) = self
            .admit_session(client_ip, request.session.as_deref().unwrap_or(""))
            .await
        {
            return too_many(wait);
        }
        let fallback = request
            .locale
            .as_deref()
            .and_then(Locale::from_language_tag)
            .unwrap_or(page_locale);
        let mut answer = self.answer(message, fallback);
        // The edge's work is done; a slow backend or model must not hold the slots that bound it.
        drop(slot);
        tracing::debug!(
            message = %guard::mask_personal_data(message),
            language = answer.language,
            intent = %answer.intent,
            "chat message"
        );
        if let Some(backend) = &self.backend {
            match backend.forward(parts.headers, bytes, client, &answer).await {
                Ok(resp) => return resp,
                Err(e) => {
                    tracing::warn!(error = %e, "chat backend failed; answering from the knowledge base");
                    answer.source = "fallback";
                    answer.fallback = Some(e.reason());
                    return json_answer(&answer);
                }
            }
        }
        if let Some(llm) = &self.llm {
            // A message that tries to instruct the model never reaches it.
            if guard::addresses_the_model(message) {
                tracing::info!(
                    "chat message addresses the model; answered from the knowledge base"
                );
                answer.source = "fallback";
                answer.fallback = Some("instructions");
                return json_answer(&answer);
            }
            let stream = llm::wants_stream(&parts.headers);
            return llm.respond(message, answer, stream, started).await;
        }
        json_answer(&answer)
    }

    /// Language, intent and the knowledge-base answer for one message.
    pub fn answer(&self, message: &str, fallback: Locale) -> ChatAnswer {
        let detection = LANGUAGE_ID.detect(message, fallback);
        let locale = detection.lang;
        let prediction = self.model.classify(message);
        let intent = prediction
            .accepted(self.rules.threshold)
            .filter(|i| self.answers.contains_key(*i))
            .unwrap_or("unknown");
        let mut answer = self
            .answers
            .get(intent)
            .or_else(|| self.answers.get("unknown"))
            .map(|texts| texts[locale as usize].clone())
            .unwrap_or_default();
        let mut product = None;

        // A regulatory question is answered from the knowledge base instead of the intent's text.
        let mut sources = Vec::new();
        let mut citation = String::new();
        if let Some(reply) = self
            .knowledge
            .as_ref()
            .and_then(|kb| kb.answer(message, locale, intent))
        {
            answer = reply.text;
            sources = reply.entries;
            citation = reply.citation;
        }
        // A product the message names leads either with its facts ("does the air fryer's price
        // include import duty?" still gets the price).
        if let Some(catalog) = &self.catalog
            && facts::INTENTS.contains(&intent)
            && let Some(p) = catalog.index.recognize(message)
        {
            let published =
                catalog.seo.locales.contains(&locale) && catalog.seo.advertised(locale, &p.path);
            let page = if published { locale } else { Locale::En };
            let link = format!("{}{}", catalog.base, page.localize_path(&p.path));
            if let Some(lead) = facts::lead(intent, p, locale, &link) {
                answer = format!("{lead}\n\n{answer}");
                product = Some(p.sku.clone());
            }
        }
        ChatAnswer {
            language: locale.code(),
            intent: intent.to_string(),
            confidence: (prediction.confidence * 1000.0).round() / 1000.0,
            answer,
            source: "kb",
            product,
            sources,
            fallback: None,
            citation,
        }
    }
}

/// The answer object as JSON, with the edge's analysis in headers and, when the answer stands in
/// for a backend's or a model's, why.
fn json_answer(answer: &ChatAnswer) -> Response<Body> {
    let mut resp = body::json(
        StatusCode::OK,
        &serde_json::to_value(answer).unwrap_or_default(),
    );
    backend::analysis_headers(resp.headers_mut(), answer);
    if let Some(reason) = answer.fallback {
        resp.headers_mut().insert(
            HeaderName::from_static(backend::FALLBACK_HEADER),
            HeaderValue::from_static(reason),
        );
    }
    resp
}

/// Trained models by the examples they were trained on. Sites whose examples are the same (every
/// site on the base corpus alone, or a site across a reload that did not touch its chat files)
/// share one model instead of training it again; a model no site holds any more is dropped.
static MODELS: LazyLock<Mutex<HashMap<u64, Weak<IntentModel>>>> = LazyLock::new(Default::default);

fn trained(examples: &[Example]) -> Result<Arc<IntentModel>, intent::IntentError> {
    let mut h = std::hash::DefaultHasher::new();
    for e in examples {
        (&e.text, &e.intent, e.lang.code()).hash(&mut h);
    }
    let key = h.finish();
    let cached =
        |models: &HashMap<u64, Weak<IntentModel>>| models.get(&key).and_then(Weak::upgrade);
    if let Some(model) = cached(&MODELS.lock().unwrap_or_else(|e| e.into_inner())) {
        return Ok(model);
    }
    // Trained outside the lock: sites with other examples need not wait for this one.
    let model = Arc::new(IntentModel::train(examples, &TrainParams::default())?);
    let mut models = MODELS.lock().unwrap_or_else(|e| e.into_inner());
    models.retain(|_, m| m.strong_count() > 0);
    models.insert(key, Arc::downgrade(&model));
    Ok(model)
}

/// Fills an answer's placeholders with the site's facts, per language. `{contacts}` lists the
/// channels the site has, so a shared answer never shows an empty "WhatsApp:".
fn fill_answer(texts: &[String; 4], org: Option<&Organization>, url: &str) -> [String; 4] {
    let org = org.cloned().unwrap_or_default();
    std::array::from_fn(|i| {
        let locale = Locale::ALL[i];
        // What stands in for facts the site did not give.
        let (company, email, phone, this_site) = match locale {
            Locale::En => ("our company", "email", "phone", "this website"),
            Locale::Id => ("perusahaan kami", "email", "telepon", "situs ini"),
            Locale::Vi => ("công ty chúng tôi", "email", "điện thoại", "website này"),
            Locale::Th => ("บริษัทของเรา", "อีเมล", "โทร", "เว็บไซต์นี้"),
        };
        let url = if url.is_empty() { this_site } else { url };
        // The messenger the buyer's market uses comes first: Zalo in Vietnam, LINE in Thailand.
        let messenger = match locale {
            Locale::Vi => org.zalo.as_deref().map(|z| format!("Zalo {z}")),
            Locale::Th => org.line.as_deref().map(|l| format!("LINE {l}")),
            _ => None,
        };
        let channels: Vec<String> = [
            messenger,
            org.whatsapp.as_deref().map(|w| format!("WhatsApp {w}")),
            org.email.as_deref().map(|e| format!("{email} {e}")),
            org.telephone.as_deref().map(|t| format!("{phone} {t}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let contacts = if channels.is_empty() {
            url.to_string()
        } else {
            channels.join(", ")
        };
        let name = if org.name.is_empty() {
            company
        } else {
            &org.name
        };
        texts[i]
            .replace("{name}", name)
            .replace("{contacts}", &contacts)
            .replace("{email}", org.email.as_deref().unwrap_or(""))
            .replace("{telephone}", org.telephone.as_deref().unwrap_or(""))
            .replace("{whatsapp}", org.whatsapp.as_deref().unwrap_or(""))
            .replace("{zalo}", org.zalo.as_deref().unwrap_or(""))
            .replace("{line}", org.line.as_deref().unwrap_or(""))
            .replace("{url}", url)
    })
}

fn error(status: StatusCode, message: &str) -> Response<Body> {
    body::json(status, &serde_json::json!({"error": message}))
}

fn wait_time(not_until: governor::NotUntil<governor::clock::QuantaInstant>) -> Duration {
    not_until.wait_time_from(DefaultClock::default().now())
}

fn too_many(wait: Duration) -> Response<Body> {
    let mut resp = error(StatusCode::TOO_MANY_REQUESTS, "too many requests");
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    resp
}
