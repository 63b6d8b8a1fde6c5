//! The one body type every response and forwarded request uses, so stages can be chained without
//! generic plumbing: a boxed, streaming body of `Bytes`.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, combinators::UnsyncBoxBody};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Send but not Sync: the HTML rewriter inside a rewritten body is used by one task at a time.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn boxed<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// A JSON response that no cache keeps (API answers and errors).
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut resp = Response::new(full(value.to_string()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A streaming change to a body's bytes (decode, rewrite, encode), fed chunk by chunk.
pub trait Transform: Send + Unpin + 'static {
    /// Takes the next chunk; returns what can be sent so far.
    fn push(&mut self, input: &[u8]) -> Result<Vec<u8>, BoxError>;
    /// Ends the stream; returns the rest, or an error when the input was cut short.
    fn finish(self) -> Result<Vec<u8>, BoxError>;
}

/// Wraps `body` so every chunk passes through `transform` as it streams. Trailers cannot describe
/// a changed body and are dropped.
pub fn transform<T: Transform>(body: Body, transform: T) -> Body {
    TransformBody {
        inner: body,
        transform: Some(transform),
        pending: Bytes::new(),
    }
    .boxed_unsync()
}

/// Most input a transform takes at once. Decoding and rewriting are CPU work inside a poll: fed
/// in slices, each under tokio's cooperative budget, a large chunk (or one that inflates a
/// hundredfold) lets the worker thread serve other connections in between.
const SLICE: usize = 32 * 1024;

struct TransformBody<T> {
    inner: Body,
    /// `None` once the body has ended.
    transform: Option<T>,
    /// The part of the latest chunk not yet transformed.
    pending: Bytes,
}

impl<T: Transform> http_body::Body for TransformBody<T> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(transform) = this.transform.as_mut() else {
                return Poll::Ready(None);
            };
            if !this.pending.is_empty() {
                let budget = ready!(tokio::task::coop::poll_proceed(cx));
                budget.made_progress();
                let slice = this.pending.split_to(this.pending.len().min(SLICE));
                match transform.push(&slice) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out))))),
                    Err(e) => {
                        this.transform = None;
                        return Poll::Ready(Some(Err(e)));
                    }
                }
            }
            match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        this.pending = data;
                    }
                }
                Some(Err(e)) => {
                    this.transform = None;
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    let out = this.transform.take().expect("checked above").finish()?;
                    if !out.is_empty() {
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(out)))));
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.transform.is_none()
    }
}
