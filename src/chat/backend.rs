//! Forward mode: a site with its own chat service (`[chat] backend`) gets each message forwarded
//! there with what the edge already knows (language, intent, confidence) in request headers.
//! A JSON reply is completed to the chat API's shape with `"source": "backend"`; any other reply
//! (a `text/event-stream` above all) streams through untouched. A backend that is down, slow,
//! overloaded or broken costs the buyer nothing: the caller answers from the knowledge base.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::ChatAnswer;
use crate::body::{self, Body};
use crate::config::ChatBackend;
use crate::error::ProxyError;
use crate::forward::{self, ClientSide};
use crate::upstream::{EmbeddedOrigins, Upstream, UpstreamError};

/// Largest JSON reply read back from a backend; a longer answer is a broken one.
const MAX_JSON_REPLY: usize = 1 << 20;

pub const LANGUAGE_HEADER: &str = "x-edgeseo-language";
pub const INTENT_HEADER: &str = "x-edgeseo-intent";
pub const CONFIDENCE_HEADER: &str = "x-edgeseo-confidence";
pub const SOURCE_HEADER: &str = "x-edgeseo-chat-source";

/// Why the backend's answer was not used.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("backend busy: {0} requests already in flight")]
    Overloaded(usize),
    #[error("backend did not answer within {0:?}")]
    Timeout(Duration),
    #[error("backend failed: {0}")]
    Upstream(#[from] ProxyError),
    #[error("backend answered {0}")]
    Status(StatusCode),
    #[error("backend reply is not a chat answer: {0}")]
    InvalidReply(String),
}

impl BackendError {
    /// A short token for the `x-edgeseo-chat-fallback` response header.
    pub fn reason(&self) -> &'static str {
        match self {
            BackendError::Overloaded(_) => "overloaded",
            BackendError::Timeout(_) => "timeout",
            BackendError::Upstream(ProxyError::OriginTimeout(_)) => "timeout",
            BackendError::Upstream(_) => "unreachable",
            BackendError::Status(s) if *s == StatusCode::TOO_MANY_REQUESTS => "overloaded",
            BackendError::Status(_) => "status",
            BackendError::InvalidReply(_) => "invalid-reply",
        }
    }
}

pub struct Backend {
    upstream: Upstream,
    path: PathAndQuery,
    timeout: Duration,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
}

impl Backend {
    pub fn new(config: &ChatBackend) -> Result<Backend, UpstreamError> {
        Ok(Backend {
            upstream: Upstream::new(&config.origin, &EmbeddedOrigins::default())?,
            path: config.path.clone(),
            timeout: config.origin.response_timeout,
            slots: Arc::new(Semaphore::new(config.max_concurrent)),
            max_concurrent: config.max_concurrent,
        })
    }

    /// Forwards one chat request (its JSON `body` as the client sent it) with the edge's analysis
    /// in headers, and returns the response to send the client.
    pub async fn forward(
        &self,
        mut headers: HeaderMap,
        body: Bytes,
        client: &ClientSide<'_>,
        edge: &ChatAnswer,
    ) -> Result<Response<Body>, BackendError> {
        // Waiting for a slot would only add latency to an answer the KB can give now.
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| BackendError::Overloaded(self.max_concurrent))?;
        let deadline = Instant::now() + self.timeout;

        forward::request_headers(&mut headers, client);
        headers.remove(header::CONTENT_LENGTH);
        analysis_headers(&mut headers, edge);
        let mut req = Request::new(body::full(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = http::Uri::from(self.path.clone());
        *req.headers_mut() = headers;

        let resp = tokio::time::timeout_at(deadline, self.upstream.send(req))
            .await
            .map_err(|_| BackendError::Timeout(self.timeout))??;
        if !resp.status().is_success() {
            return Err(BackendError::Status(resp.status()));
        }
        let (mut parts, incoming) = resp.into_parts();
        forward::response_headers(&mut parts.headers, parts.version);
        analysis_headers(&mut parts.headers, edge);
        parts.headers.insert(
            HeaderName::from_static(SOURCE_HEADER),
            HeaderValue::from_static("backend"),
        );

        if !is_json(&parts.headers) {
            // Streamed as it comes; the slot is held until the stream ends or the client leaves.
            let body = incoming.map_frame(move |frame| {
                let _held = &slot;
                frame
            });
            return Ok(Response::from_parts(parts, body::boxed(body)));
        }
        let bytes =
            tokio::time::timeout_at(deadline, Limited::new(incoming, MAX_JSON_REPLY).collect())
                .await
                .map_err(|_| BackendError::Timeout(self.timeout))?
                .map_err(|e| BackendError::InvalidReply(e.to_string()))?
                .to_bytes();
        drop(slot);
        let reply = complete_reply(&bytes, edge)?;
        let mut resp = body::json(parts.status, &reply);
        for name in [
            LANGUAGE_HEADER,
            INTENT_HEADER,
            CONFIDENCE_HEADER,
            SOURCE_HEADER,
        ] {
            if let Some(value) = parts.headers.get(name) {
                resp.headers_mut().insert(name, value.clone());
            }
        }
        Ok(resp)
    }
}

/// The edge's language, intent and confidence, for the backend and for the client.
pub fn analysis_headers(headers: &mut HeaderMap, edge: &ChatAnswer) {
    let values = [
        (LANGUAGE_HEADER, edge.language.to_string()),
        (INTENT_HEADER, edge.intent.clone()),
        (CONFIDENCE_HEADER, edge.confidence.to_string()),
    ];
    for (name, value) in values {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| {
            let t = t.trim().to_ascii_lowercase();
            t == "application/json" || t.ends_with("+json")
        })
}

/// The backend's JSON object with the fields it left out taken from the edge's analysis.
fn complete_reply(bytes: &[u8], edge: &ChatAnswer) -> Result<serde_json::Value, BackendError> {
    let mut reply: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| BackendError::InvalidReply(format!("not a JSON object: {e}")))?;
    if !reply.get("answer").is_some_and(|a| a.is_string()) {
        return Err(BackendError::InvalidReply(
            "no string `answer` field".to_string(),
        ));
    }
    let defaults = [
        ("language", serde_json::json!(edge.language)),
        ("intent", serde_json::json!(edge.intent)),
        ("confidence", serde_json::json!(edge.confidence)),
    ];
    for (key, value) in defaults {
        reply.entry(key).or_insert(value);
    }
    reply.insert("source".to_string(), serde_json::json!("backend"));
    Ok(serde_json::Value::Object(reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge() -> ChatAnswer {
        ChatAnswer {
            language: "id",
            intent: "moq".to_string(),
            confidence: 0.97,
            answer: "MOQ 500".to_string(),
            source: "kb",
        }
    }

    #[test]
    fn backend_fields_win_and_missing_ones_come_from_the_edge() {
        let reply = complete_reply(
            br#"{"answer":"Minimal 100 pcs","intent":"min_order","ticket":7}"#,
            &edge(),
        )
        .unwrap();
        assert_eq!(reply["answer"], "Minimal 100 pcs");
        assert_eq!(reply["intent"], "min_order");
        assert_eq!(reply["language"], "id");
        assert_eq!(reply["ticket"], 7);
        assert_eq!(reply["source"], "backend");
    }

    #[test]
    fn replies_without_an_answer_are_rejected() {
        for bad in [
            &b"[1,2]"[..],
            b"{\"text\":\"hi\"}",
            b"{\"answer\":5}",
            b"not json",
        ] {
            assert!(matches!(
                complete_reply(bad, &edge()),
                Err(BackendError::InvalidReply(_))
            ));
        }
    }

    #[test]
    fn json_types() {
        let mut h = HeaderMap::new();
        for (value, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("application/problem+json", true),
            ("text/event-stream", false),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            assert_eq!(is_json(&h), json, "{value}");
        }
        assert!(!is_json(&HeaderMap::new()));
    }
}
