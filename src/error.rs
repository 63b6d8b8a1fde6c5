//! Every way a request can fail, and the one function that turns a failure into a status code.

use std::time::Duration;

use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::body::{self, Body, BoxError};

/// A failure of the request pipeline. Each variant maps to exactly one status in [`ProxyError::status`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    #[error("request has no Host header")]
    MissingHost,
    #[error("malformed request: {0}")]
    BadRequest(&'static str),
    #[error("method {0} is not served")]
    MethodNotAllowed(Method),
    #[error("client sent a malformed request body: {0}")]
    ClientBody(#[source] BoxError),
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

/// An error of the client's request body (a malformed chunk, a connection cut mid-upload), as
/// it travels inside the upstream client's error; see `upstream::classify`.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ClientBodyError(pub BoxError);

impl ProxyError {
    /// The status code a client sees for this failure; pinned by a test below.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::MissingHost | ProxyError::BadRequest(_) | ProxyError::ClientBody(_) => {
                StatusCode::BAD_REQUEST
            }
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
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

    /// How the origin failed, when this is the origin's failure (the metrics' `kind` label).
    pub fn origin_failure(&self) -> Option<&'static str> {
        match self {
            ProxyError::OriginUnreachable(_) => Some("unreachable"),
            ProxyError::OriginTimeout(_) => Some("timeout"),
            ProxyError::OriginProtocol(_) => Some("protocol"),
            _ => None,
        }
    }

    /// A short plain-text response; details stay in the log, not in front of visitors.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        // A body the client broke off or malformed leaves the connection in an unknown state.
        let self_closes = matches!(self, ProxyError::ClientBody(_));
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
        if status == StatusCode::METHOD_NOT_ALLOWED {
            headers.insert(
                header::ALLOW,
                HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
            );
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE || self_closes {
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
            (ProxyError::BadRequest("two hosts"), 400),
            (ProxyError::MethodNotAllowed(Method::CONNECT), 405),
            (ProxyError::ClientBody(io()), 400),
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
