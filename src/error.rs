//! Every way a request can fail, and the one function that turns a failure into a status code.

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body, BoxError};

/// A failure of the request pipeline. Each variant maps to exactly one status in [`ProxyError::status`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("request has no Host header")]
    MissingHost,
    #[error("no site is configured for host `{0}`")]
    UnknownHost(String),
    #[error("host `{host}` is not served by the certificate chosen for TLS server name `{sni}`")]
    MisdirectedSni { host: String, sni: String },
    #[error("request body is larger than the site's max_request_body")]
    BodyTooLarge,
    #[error("origin unreachable: {0}")]
    OriginUnreachable(#[source] BoxError),
    #[error("origin did not answer within {0:?}")]
    OriginTimeout(Duration),
    #[error("origin sent an invalid response: {0}")]
    OriginProtocol(#[source] BoxError),
}

impl ProxyError {
    /// The status code a client sees for this failure; pinned by a test below.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::MissingHost => StatusCode::BAD_REQUEST,
            ProxyError::UnknownHost(_) | ProxyError::MisdirectedSni { .. } => {
                StatusCode::MISDIRECTED_REQUEST
            }
            ProxyError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::OriginUnreachable(_) | ProxyError::OriginProtocol(_) => {
                StatusCode::BAD_GATEWAY
            }
            ProxyError::OriginTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// A short plain-text response; details stay in the log, not in front of visitors.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let text = format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
        let mut resp = Response::new(body::full(text));
        *resp.status_mut() = status;
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is never read, so the connection cannot be reused.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_is_pinned() {
        let io = || -> BoxError { Box::new(std::io::Error::other("x")) };
        let cases = [
            (ProxyError::MissingHost, 400),
            (ProxyError::UnknownHost("a.example".into()), 421),
            (
                ProxyError::MisdirectedSni {
                    host: "a".into(),
                    sni: "b".into(),
                },
                421,
            ),
            (ProxyError::BodyTooLarge, 413),
            (ProxyError::OriginUnreachable(io()), 502),
            (ProxyError::OriginProtocol(io()), 502),
            (ProxyError::OriginTimeout(Duration::from_secs(1)), 504),
        ];
        for (err, status) in cases {
            assert_eq!(err.status().as_u16(), status, "{err}");
            let resp = err.into_response();
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        }
    }
}
