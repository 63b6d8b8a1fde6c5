//! The access log: one event per request under the `edgeseo::access` target, written when the
//! response has gone out (or the client left), so that it carries the bytes actually sent and
//! the whole duration, as nginx's `$body_bytes_sent` and `$request_time` do. `--log-format json`
//! turns each event into one JSON line.
//!
//! Owns: what the pipeline notes about a request as it goes (`Note`: site, locale, chat, and the
//! access line's own fields), which the metrics read too, and the body wrapper that counts the
//! bytes sent and writes the line. With the target off, no line's fields are gathered and no
//! body is wrapped.

use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode, Version};
use http_body::{Body as _, Frame, SizeHint};

use crate::body::{self, Body, BoxError};
use crate::cache;
use crate::chat::backend::{INTENT_HEADER, LANGUAGE_HEADER};
use crate::locale::Locale;
use crate::suggest::{self, Agent};

/// Whether access lines are being kept (`--access-log`).
pub fn enabled() -> bool {
    tracing::enabled!(target: "edgeseo::access", tracing::Level::INFO)
}

/// Who the User-Agent says the client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentClass {
    Human,
    /// A crawler by its User-Agent, not confirmed.
    Crawler,
    /// A search engine crawler whose claim reverse DNS confirmed during this request (sites with
    /// `verify_crawlers` on pages where the check decides something).
    VerifiedCrawler,
}

impl AgentClass {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentClass::Human => "human",
            AgentClass::Crawler => "crawler",
            AgentClass::VerifiedCrawler => "verified_crawler",
        }
    }
}

/// What the pipeline learns about one request as it goes: the site and locale (for the metrics
/// and the access line) and, when the access log is on, the rest of the line. Nothing that only
/// the access line needs is computed when it is off.
pub struct Note {
    started: Instant,
    site: Option<Arc<str>>,
    locale: Option<Locale>,
    chat: bool,
    record: Option<Record>,
}

/// The access line's own fields.
struct Record {
    method: Method,
    path: String,
    version: Version,
    agent: AgentClass,
    /// The client's address: the peer, or the address trusted proxies forwarded for.
    client_ip: IpAddr,
}

impl Note {
    pub fn new<B>(req: &http::Request<B>, peer: IpAddr) -> Self {
        let record = enabled().then(|| Record {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            version: req.version(),
            agent: match suggest::classify_agent(req.headers()) {
                Agent::Human => AgentClass::Human,
                Agent::Bot | Agent::Verifiable(_) => AgentClass::Crawler,
            },
            client_ip: peer,
        });
        Self {
            started: Instant::now(),
            site: None,
            locale: None,
            chat: false,
            record,
        }
    }

    pub fn set_site(&mut self, name: &Arc<str>) {
        self.site = Some(name.clone());
    }

    pub fn set_locale(&mut self, locale: Option<Locale>) {
        self.locale = locale;
    }

    /// The request went to the chat endpoint.
    pub fn set_chat(&mut self) {
        self.chat = true;
    }

    /// The client's address once the site's trusted proxies are known (for the access line).
    pub fn set_client_ip(&mut self, ip: impl FnOnce() -> IpAddr) {
        if let Some(r) = &mut self.record {
            r.client_ip = ip();
        }
    }

    /// Reverse DNS confirmed the crawler the User-Agent names.
    pub fn crawler_verified(&mut self) {
        if let Some(r) = &mut self.record {
            r.agent = AgentClass::VerifiedCrawler;
        }
    }

    pub fn site(&self) -> Option<&Arc<str>> {
        self.site.as_ref()
    }

    pub fn locale(&self) -> Option<Locale> {
        self.locale
    }

    pub fn is_chat(&self) -> bool {
        self.chat
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// The response, its body wrapped (with the access log on) so that the line is written once
    /// it has been sent.
    pub fn finish(self, resp: Response<Body>) -> Response<Body> {
        let Some(record) = self.record else {
            return resp;
        };
        let text = |headers: &HeaderMap, name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (parts, inner) = resp.into_parts();
        let logged = Logged {
            inner,
            bytes: 0,
            done: false,
            line: Line {
                started: self.started,
                site: self.site,
                locale: self.locale,
                status: parts.status,
                cache: text(&parts.headers, cache::STATUS_HEADER),
                intent: text(&parts.headers, INTENT_HEADER),
                language: text(&parts.headers, LANGUAGE_HEADER),
                record,
            },
        };
        Response::from_parts(parts, body::boxed(logged))
    }
}

/// Everything but the body's progress.
struct Line {
    started: Instant,
    site: Option<Arc<str>>,
    locale: Option<Locale>,
    record: Record,
    status: StatusCode,
    cache: Option<String>,
    intent: Option<String>,
    language: Option<String>,
}

impl Line {
    fn write(&self, bytes: u64, complete: bool) {
        let r = &self.record;
        tracing::info!(
            target: "edgeseo::access",
            site = self.site.as_deref(),
            locale = self.locale.map(Locale::code),
            method = %r.method,
            path = %r.path,
            version = ?r.version,
            status = self.status.as_u16(),
            bytes,
            duration_ms = (self.started.elapsed().as_secs_f64() * 1e4).round() / 10.0,
            cache = self.cache.as_deref(),
            client_ip = %r.client_ip,
            agent = r.agent.as_str(),
            chat_intent = self.intent.as_deref(),
            chat_language = self.language.as_deref(),
            complete,
        );
    }
}

/// A response body that counts what it yields and writes the access line when dropped: after
/// the last frame, or when the connection ends early (`complete` false).
struct Logged {
    inner: Body,
    bytes: u64,
    done: bool,
    line: Line,
}

impl http_body::Body for Logged {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(data) = f.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            None => self.done = true,
            Some(Err(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // A body with nothing to send (HEAD, 304) may be dropped unpolled, yet it is complete.
        let complete = self.done || self.inner.is_end_stream();
        self.line.write(self.bytes, complete);
    }
}

#[cfg(test)]
mod tests {
    use futures_util::{FutureExt, StreamExt};
    use http_body_util::{BodyExt, StreamBody};

    use super::*;

    /// The access lines written while `run` runs, parsed.
    fn lines(run: impl FnOnce()) -> Vec<serde_json::Value> {
        let out = crate::logging::Lines::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        out.text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// A response whose body sends `first`, then waits forever.
    fn stalled(first: &'static [u8]) -> Response<Body> {
        let frames =
            futures_util::stream::iter([Ok::<_, BoxError>(Frame::data(Bytes::from_static(first)))])
                .chain(futures_util::stream::pending());
        Response::new(body::boxed(StreamBody::new(frames)))
    }

    /// A note for a request; made inside `lines`, where the access log is on.
    fn note() -> Note {
        let req = http::Request::get("/id/products?page=2").body(()).unwrap();
        Note::new(&req, "192.0.2.7".parse().unwrap())
    }

    #[test]
    fn a_response_cut_short_is_logged_with_the_bytes_that_left() {
        let logged = lines(|| {
            let mut body = note().finish(stalled(b"<html>")).into_body();
            let frame = body.frame().now_or_never().flatten();
            assert!(frame.is_some_and(|f| f.is_ok()));
            assert!(body.frame().now_or_never().is_none(), "the body stalls");
        });
        assert_eq!(logged.len(), 1, "one line, when the body is dropped");
        let line = &logged[0];
        assert_eq!(line["bytes"], 6);
        assert_eq!(line["complete"], false);
        assert_eq!(line["path"], "/id/products", "the query is left out");
        assert_eq!(line["client_ip"], "192.0.2.7");
        assert_eq!(line["status"], 200);
    }

    #[test]
    fn a_response_sent_to_its_end_is_complete_and_an_empty_one_needs_no_polling() {
        let logged = lines(|| {
            let body = note()
                .finish(Response::new(body::full("hello")))
                .into_body();
            let all = body.collect().now_or_never().unwrap().unwrap().to_bytes();
            assert_eq!(&all[..], b"hello");
            drop(note().finish(Response::new(body::empty())));
        });
        assert_eq!(logged.len(), 2);
        assert_eq!(logged[0]["bytes"], 5);
        assert_eq!(logged[0]["complete"], true);
        assert_eq!(logged[1]["bytes"], 0);
        assert_eq!(
            logged[1]["complete"], true,
            "a HEAD or 304 body is never polled"
        );
    }
}
