//! The request pipeline, top to bottom. Every request passes these stages in this order:
//!
//! ```text
//! request ─► 1. route: Host/:authority → site      (unknown → 421, never forwarded)
//!         ─► 2. admit: body size limit              (declared too large → 413)
//!         ─► 3. forward: strip hop-by-hop, add X-Forwarded-*/Via, stream body to the origin
//!         ─► 4. respond: strip hop-by-hop, add Via, stream the origin's body back
//! failure at any stage ─► ProxyError::into_response (the one place errors become statuses)
//! ```

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use http::{Request, Response, header};
use http_body_util::Limited;
use hyper::body::Incoming;

use crate::body::{self, Body};
use crate::error::ProxyError;
use crate::forward::{self, ClientSide};
use crate::server::{ConnInfo, Handler};
use crate::sites::{Runtime, SiteState};

pub struct Proxy {
    runtime: Arc<ArcSwap<Runtime>>,
}

/// What the stages learn about one request and hand to the next.
struct RequestCtx<'a> {
    conn: &'a ConnInfo,
    /// The host as the client sent it (port included).
    host: String,
    site: Arc<SiteState>,
}

impl Proxy {
    pub fn new(runtime: Arc<ArcSwap<Runtime>>) -> Self {
        Self { runtime }
    }

    async fn pipeline(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
    ) -> Result<Response<Body>, ProxyError> {
        let ctx = self.route(&req, conn)?;
        let limit = ctx.site.config.limits.max_request_body;
        admit(&req, limit)?;
        let upstream_req = forward_request(req, &ctx, limit);
        let resp = ctx.site.upstream.send(upstream_req).await?;
        Ok(respond(resp))
    }

    /// Stage 1: pick the site by the requested host; with TLS the host must belong to the same
    /// site as the server name the certificate was chosen for.
    fn route<'a>(
        &self,
        req: &Request<Incoming>,
        conn: &'a ConnInfo,
    ) -> Result<RequestCtx<'a>, ProxyError> {
        let host = request_host(req).ok_or(ProxyError::MissingHost)?;
        let runtime = self.runtime.load();
        let site = runtime
            .route(&host)
            .ok_or_else(|| ProxyError::UnknownHost(host.clone()))?
            .clone();
        if let Some(sni) = &conn.sni {
            let same = runtime.route(sni).is_some_and(|s| Arc::ptr_eq(s, &site));
            if !same {
                return Err(ProxyError::MisdirectedSni {
                    host,
                    sni: sni.clone(),
                });
            }
        }
        Ok(RequestCtx { conn, host, site })
    }
}

impl Handler for Proxy {
    async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let uri = req.uri().clone();
        let version = req.version();
        let resp = match self.pipeline(req, conn).await {
            Ok(resp) => resp,
            Err(err) => {
                tracing::warn!(peer = %conn.peer, %method, %uri, error = %err, "request failed");
                err.into_response()
            }
        };
        tracing::info!(
            target: "edgeseo::access",
            peer = %conn.peer,
            %method,
            %uri,
            ?version,
            status = resp.status().as_u16(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
        );
        resp
    }
}

/// The requested host: `:authority` (HTTP/2, absolute-form) or else the Host header.
fn request_host<B>(req: &Request<B>) -> Option<String> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str().to_string());
    }
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// Stage 2: refuse a body declared larger than the site allows before reading any of it.
fn admit(req: &Request<Incoming>, limit: u64) -> Result<(), ProxyError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > limit => Err(ProxyError::BodyTooLarge),
        _ => Ok(()),
    }
}

/// Stage 3: the request as the origin gets it. The body streams through a size limit, so an
/// undeclared (chunked) body that grows too large fails the upstream request with 413.
fn forward_request(req: Request<Incoming>, ctx: &RequestCtx<'_>, limit: u64) -> Request<Body> {
    let (mut parts, incoming) = req.into_parts();
    let client = ClientSide {
        ip: ctx.conn.peer.ip(),
        proto: if ctx.conn.tls { "https" } else { "http" },
        host: &ctx.host,
        version: parts.version,
    };
    forward::request_headers(&mut parts.headers, &client);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    Request::from_parts(parts, body::boxed(Limited::new(incoming, limit)))
}

/// Stage 4: the origin's response as the client gets it, body streamed untouched.
fn respond(resp: Response<Incoming>) -> Response<Body> {
    let (mut parts, incoming) = resp.into_parts();
    forward::response_headers(&mut parts.headers, parts.version);
    Response::from_parts(parts, body::boxed(incoming))
}
