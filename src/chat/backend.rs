//! Forward mode: a site with its own chat service (`[chat] backend`) gets each message forwarded
//! there with what the edge already knows (language, intent, confidence) in request headers.
//! A JSON reply is completed to the chat API's shape with `"source": "backend"`; an event stream
//! (or plain text) streams through, cut if it stalls for the backend timeout. A backend that is
//! down, slow, overloaded or broken before its answer starts costs the buyer nothing: the caller
//! answers from the knowledge base.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::{Body as HttpBody, Frame};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::ChatAnswer;
use crate::body::{self, Body, BoxError};
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
/// Why the knowledge base answered instead of the backend ([`BackendError::reason`]).
pub const FALLBACK_HEADER: &str = "x-edgeseo-chat-fallback";

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
        // The JSON reply is read here, and nothing here decodes compressed bodies.
        headers.remove(header::ACCEPT_ENCODING);
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
        parts.headers.insert(
            HeaderName::from_static(SOURCE_HEADER),
            HeaderValue::from_static("backend"),
        );
        match reply_kind(&parts.headers) {
            Some(ReplyKind::Stream) => {
                analysis_headers(&mut parts.headers, edge);
                let body = IdleTimeout::new(incoming, self.timeout, slot);
                return Ok(Response::from_parts(parts, body::boxed(body)));
            }
            Some(ReplyKind::Json) => {}
            None => {
                return Err(BackendError::InvalidReply(format!(
                    "content type {:?}",
                    parts.headers.get(header::CONTENT_TYPE)
                )));
            }
        }
        let bytes =
            tokio::time::timeout_at(deadline, Limited::new(incoming, MAX_JSON_REPLY).collect())
                .await
                .map_err(|_| BackendError::Timeout(self.timeout))?
                .map_err(|e| BackendError::InvalidReply(e.to_string()))?
                .to_bytes();
        drop(slot);
        let (reply, answered) = complete_reply(&bytes, edge)?;
        let mut resp = body::json(parts.status, &reply);
        // The backend's own headers (a session cookie, say) come along; the body's are edgeseo's.
        for (name, value) in &parts.headers {
            if !matches!(
                *name,
                header::CONTENT_TYPE
                    | header::CONTENT_LENGTH
                    | header::CONTENT_ENCODING
                    | header::CACHE_CONTROL
            ) {
                resp.headers_mut().append(name.clone(), value.clone());
            }
        }
        analysis_headers(resp.headers_mut(), &answered);
        Ok(resp)
    }
}

enum ReplyKind {
    Json,
    /// Passed through as it arrives: `text/event-stream`, `text/plain`.
    Stream,
}

fn reply_kind(headers: &HeaderMap) -> Option<ReplyKind> {
    let media = crate::headers::media_type(headers)?;
    if media == "application/json" || media.ends_with("+json") {
        Some(ReplyKind::Json)
    } else if media == "text/event-stream" || media == "text/plain" {
        Some(ReplyKind::Stream)
    } else {
        None
    }
}

/// A backend's streamed reply, cut when no frame has come for `idle`; it holds the backend slot
/// until it ends or the client goes away.
struct IdleTimeout {
    inner: Incoming,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    _slot: OwnedSemaphorePermit,
}

impl IdleTimeout {
    fn new(inner: Incoming, idle: Duration, slot: OwnedSemaphorePermit) -> Self {
        Self {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            _slot: slot,
        }
    }
}

impl HttpBody for IdleTimeout {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            let deadline = Instant::now() + this.idle;
            this.sleep.as_mut().reset(deadline);
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(this.sleep.as_mut().poll(cx));
        Poll::Ready(Some(Err(BackendError::Timeout(this.idle).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
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

/// The backend's JSON object with the fields it left out taken from the edge's analysis, and the
/// analysis the reply ends up with (for the response headers).
fn complete_reply(
    bytes: &[u8],
    edge: &ChatAnswer,
) -> Result<(serde_json::Value, ChatAnswer), BackendError> {
    let mut reply: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| BackendError::InvalidReply(format!("not a JSON object: {e}")))?;
    let Some(answer) = reply.get("answer").and_then(|a| a.as_str()) else {
        return Err(BackendError::InvalidReply(
            "no string `answer` field".to_string(),
        ));
    };
    let mut answered = ChatAnswer {
        answer: answer.to_string(),
        source: "backend",
        // The backend's text need not state the entries the edge would have cited.
        sources: Vec::new(),
        citation: String::new(),
        ..edge.clone()
    };
    if let Some(intent) = reply.get("intent").and_then(|i| i.as_str()) {
        answered.intent = intent.to_string();
    }
    if let Some(lang) = reply
        .get("language")
        .and_then(|l| l.as_str())
        .and_then(crate::locale::Locale::from_code)
    {
        answered.language = lang.code();
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
    Ok((serde_json::Value::Object(reply), answered))
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
            product: None,
            sources: Vec::new(),
            fallback: None,
            citation: String::new(),
        }
    }

    #[test]
    fn backend_fields_win_and_missing_ones_come_from_the_edge() {
        let (reply, answered) = complete_reply(
            br#"{"answer":"Minimal 100 pcs","intent":"min_order","ticket":7}"#,
            &edge(),
        )
        .unwrap();
        assert_eq!(answered.intent, "min_order");
        assert_eq!(answered.language, "id");
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
    fn reply_kinds() {
        let mut h = HeaderMap::new();
        for (value, kind) in [
            ("application/json", Some("json")),
            ("Application/JSON; charset=utf-8", Some("json")),
            ("application/problem+json", Some("json")),
            ("text/event-stream", Some("stream")),
            ("text/plain; charset=utf-8", Some("stream")),
            ("text/html", None),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            let got = reply_kind(&h).map(|k| match k {
                ReplyKind::Json => "json",
                ReplyKind::Stream => "stream",
            });
            assert_eq!(got, kind, "{value}");
        }
        assert!(reply_kind(&HeaderMap::new()).is_none());
    }
}
