//! Machine pre-fill of a translation memory (`edgeseo translate fill`): never used while serving.
//!
//! Owns: asking a machine-translation service, LibreTranslate's `/translate` or an
//! OpenAI-compatible `/v1/chat/completions`, for every entry of a PO file without a translation,
//! checking that what comes back keeps the source's placeholders and glossary terms, and writing
//! it marked `fuzzy`, so that nothing is served before a reviewer clears the flag.
//! Must never: overwrite a translation that exists, drop obsolete entries, or write a file that
//! gettext's `msgfmt --check` would reject.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use serde_json::{Value, json};

use polib::message::MessageMutView;

use super::extract::{ExtractError, obsolete_entries, write_po};
use super::memory::read_catalog;
use super::segment::same_placeholders;
use crate::locale::Locale;
use crate::upstream::{ClientSettings, Upstream};

/// Largest reply read from a translation service.
const MAX_REPLY: usize = 1 << 20;

/// Why a fill could not run (a single entry's failure is only counted in the report).
#[derive(Debug, thiserror::Error)]
pub enum FillError {
    #[error("backend URL path {0:?}: name the API with --api (libretranslate or openai)")]
    UnknownApi(String),
    #[error("cannot reach the backend: {0}")]
    Client(#[from] crate::upstream::UpstreamError),
    #[error(transparent)]
    Po(#[from] ExtractError),
}

/// The translation service's interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// `POST /translate` with `{q, source, target, format}`, answering `{translatedText}`.
    LibreTranslate,
    /// `POST /v1/chat/completions`, answering `choices[0].message.content`.
    OpenAi { model: String },
}

impl Api {
    /// The interface a URL's path names: `…/translate` or `…/chat/completions`.
    pub fn from_path(path: &str, model: &str) -> Option<Api> {
        let path = path.trim_end_matches('/');
        if path.ends_with("/chat/completions") {
            Some(Api::OpenAi {
                model: model.to_owned(),
            })
        } else if path.ends_with("/translate") {
            Some(Api::LibreTranslate)
        } else {
            None
        }
    }
}

/// A translation service at one URL.
pub struct Backend {
    upstream: Upstream,
    path: PathAndQuery,
    api: Api,
    api_key: Option<String>,
}

impl Backend {
    /// `api` `None` infers the interface from the URL's path.
    pub fn new(url: &str, api: Option<Api>, api_key: Option<String>) -> Result<Backend, FillError> {
        let (upstream, path) = Upstream::for_url(
            url,
            ClientSettings {
                connect_timeout: Duration::from_secs(10),
                // A language model may take a while over a long paragraph.
                response_timeout: Duration::from_secs(120),
                max_idle_connections: 8,
                via: None,
            },
        )?;
        let api = match api {
            Some(api) => api,
            None => Api::from_path(path.path(), "")
                .ok_or_else(|| FillError::UnknownApi(path.path().to_owned()))?,
        };
        Ok(Backend {
            upstream,
            path,
            api,
            api_key,
        })
    }

    /// The translation of one source text into `to`, or why there is none.
    async fn translate(&self, source: &str, to: Locale, brief: &Brief) -> Result<String, String> {
        let body = match &self.api {
            Api::LibreTranslate => json!({
                "q": source,
                "source": "en",
                "target": to.code(),
                "format": "text",
                "api_key": self.api_key.as_deref().unwrap_or_default(),
            }),
            Api::OpenAi { model } => json!({
                "model": model,
                "temperature": 0,
                "messages": [
                    {"role": "system", "content": brief.prompt},
                    {"role": "user", "content": source},
                ],
            }),
        };
        let mut req = Request::post(self.path.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let (Api::OpenAi { .. }, Some(key)) = (&self.api, &self.api_key) {
            req = req.header(header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let req = req
            .body(crate::body::full(Bytes::from(body.to_string())))
            .map_err(|e| e.to_string())?;
        let resp = self.upstream.send(req).await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let bytes = Limited::new(resp.into_body(), MAX_REPLY)
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(format!("backend answered {status}"));
        }
        let reply: Value = serde_json::from_slice(&bytes).map_err(|e| format!("reply: {e}"))?;
        let text = match self.api {
            Api::LibreTranslate => reply.get("translatedText"),
            Api::OpenAi { .. } => reply.pointer("/choices/0/message/content"),
        }
        .and_then(Value::as_str)
        .ok_or("reply has no translation")?;
        Ok(text.trim().to_owned())
    }
}

/// What the service is told about the site, and the terms it must keep.
pub struct Brief {
    prompt: String,
    glossary: Vec<String>,
}

impl Brief {
    /// `keywords`: the marketplace search terms of the locale, most searched first.
    pub fn new(to: Locale, glossary: &[String], keywords: &[&str]) -> Brief {
        let language = match to {
            Locale::Id => "Indonesian",
            Locale::Vi => "Vietnamese",
            Locale::Th => "Thai",
            Locale::En => "English",
        };
        let mut prompt = format!(
            "You translate the text of a manufacturer's B2B website from English into {language}, \
             for business buyers in {}. Write as a supplier's sales page in that market reads: \
             natural, precise, polite. Keep every numbered placeholder such as <1>, </1> and <2/> \
             exactly as it is, around the words it marks. Keep numbers, units, prices, model \
             numbers, e-mail addresses and URLs unchanged. Reply with the translation only.",
            to.country().unwrap_or("that market")
        );
        if !glossary.is_empty() {
            prompt.push_str(&format!(
                " Never translate these terms: {}.",
                glossary.join(", ")
            ));
        }
        if !keywords.is_empty() {
            prompt.push_str(&format!(
                " Where they fit naturally, use these search terms buyers type on the local \
                 marketplaces: {}.",
                keywords.join(", ")
            ));
        }
        Brief {
            prompt,
            glossary: glossary.to_vec(),
        }
    }

    /// Why `translation` cannot stand for `source`, if it cannot.
    fn reject(&self, source: &str, translation: &str) -> Option<String> {
        if translation.is_empty() {
            return Some("empty translation".into());
        }
        if !same_placeholders(source, translation) {
            return Some("placeholders changed".into());
        }
        self.glossary
            .iter()
            .find(|t| source.contains(t.as_str()) && !translation.contains(t.as_str()))
            .map(|t| format!("glossary term {t:?} lost"))
    }
}

/// What a fill did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FillReport {
    /// Entries without a translation that were sent.
    pub asked: usize,
    /// Entries now translated, marked fuzzy.
    pub filled: usize,
    /// (source, why) for the entries left untranslated.
    pub failed: Vec<(String, String)>,
}

/// Fills the untranslated entries of the PO file at `path` (at most `limit`), `concurrency`
/// requests at a time; `progress` is told each entry done.
pub async fn fill(
    path: &Path,
    to: Locale,
    backend: Arc<Backend>,
    brief: Arc<Brief>,
    limit: usize,
    concurrency: usize,
    mut progress: impl FnMut(usize),
) -> Result<FillReport, FillError> {
    let text = std::fs::read_to_string(path).map_err(|source| ExtractError::Write {
        path: path.to_owned(),
        source,
    })?;
    let mut catalog = read_catalog(path, &text).map_err(ExtractError::Po)?;
    let todo: Vec<(Option<String>, String)> = catalog
        .messages()
        .filter(|m| m.is_singular() && !m.msgid().is_empty())
        .filter(|m| m.msgstr().is_ok_and(str::is_empty))
        .map(|m| (m.msgctxt().map(str::to_owned), m.msgid().to_owned()))
        .take(limit)
        .collect();

    let mut report = FillReport {
        asked: todo.len(),
        ..FillReport::default()
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (_, source)) in todo.iter().enumerate() {
        let (backend, brief, slots) = (backend.clone(), brief.clone(), slots.clone());
        let source = source.clone();
        tasks.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let result = backend.translate(&source, to, &brief).await;
            let result = result.and_then(|t| match brief.reject(&source, &t) {
                Some(why) => Err(why),
                None => Ok(t),
            });
            (index, result)
        });
    }
    let mut results = vec![None; todo.len()];
    let mut done = 0;
    while let Some(joined) = tasks.join_next().await {
        let (index, result) = joined.expect("translation tasks do not panic");
        results[index] = Some(result);
        done += 1;
        progress(done);
    }

    for ((context, source), result) in todo.into_iter().zip(results) {
        match result.expect("every task reported") {
            Ok(translation) => {
                let mut m = catalog
                    .find_message_mut(context.as_deref(), &source, None)
                    .expect("entry read above");
                m.set_msgstr(translation).expect("a singular entry");
                m.flags_mut().add_flag("fuzzy");
                report.filled += 1;
            }
            Err(why) => report.failed.push((source, why)),
        }
    }
    write_po(path, &catalog, &obsolete_entries(&text).concat())?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translations_that_lose_markup_or_terms_are_refused() {
        let brief = Brief::new(Locale::Id, &["LIANHE".into()], &["air fryer"]);
        assert!(brief.prompt.contains("Indonesian") && brief.prompt.contains("LIANHE"));
        assert!(brief.prompt.contains("air fryer"));
        let source = "LIANHE kettles ship in <1>7 days</1>";
        assert_eq!(
            brief.reject(source, "Ketel LIANHE dikirim dalam <1>7 hari</1>"),
            None
        );
        assert!(
            brief
                .reject(source, "Ketel LIANHE dikirim dalam 7 hari")
                .is_some()
        );
        assert!(
            brief
                .reject(source, "Ketel Lianhe dikirim dalam <1>7 hari</1>")
                .unwrap()
                .contains("LIANHE")
        );
        assert!(brief.reject(source, "").is_some());
    }

    #[test]
    fn the_api_is_named_by_the_path() {
        assert_eq!(
            Api::from_path("/v1/chat/completions", "m"),
            Some(Api::OpenAi { model: "m".into() })
        );
        assert_eq!(Api::from_path("/translate", ""), Some(Api::LibreTranslate));
        assert_eq!(Api::from_path("/v1/models", ""), None);
    }
}
