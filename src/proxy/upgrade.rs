//! Stage 2, upgrades: a request that asks to switch protocols goes to the origin as one, and on
//! its 101 a tunnel joins the two connections.

use super::origin::{forward_request, respond};
use super::*;

/// The protocol a request asks to switch to, if it asks: HTTP/1.1's `Upgrade`, or the
/// `:protocol` of HTTP/2's extended CONNECT (RFC 8441). `h2c` is not passed on: it asks this hop
/// for HTTP/2, which edgeseo offers itself.
pub(super) fn upgrade_protocol(req: &Request<Incoming>) -> Option<HeaderValue> {
    if req.method() == Method::CONNECT {
        let protocol = req.extensions().get::<hyper::ext::Protocol>()?;
        return HeaderValue::from_str(protocol.as_str()).ok();
    }
    let asks = req.version() == http::Version::HTTP_11
        && crate::headers::list(req.headers(), header::CONNECTION)
            .any(|token| token.eq_ignore_ascii_case("upgrade"));
    let protocol = req.headers().get(header::UPGRADE)?;
    (asks && !protocol.as_bytes().eq_ignore_ascii_case(b"h2c")).then(|| protocol.clone())
}

/// Stage 2, localize, upgrades: the request goes to the origin as one; when the origin switches
/// protocols (101), the client's and the origin's connections are joined by a tunnel that
/// outlives this request. An origin that declines is answered like any other response.
pub(super) async fn upgrade(
    mut req: Request<Incoming>,
    ctx: &RequestCtx,
    protocol: HeaderValue,
) -> Result<Response<Body>, ProxyError> {
    let websocket = protocol.as_bytes().eq_ignore_ascii_case(b"websocket");
    // HTTP/2's extended CONNECT becomes HTTP/1.1's upgrade handshake towards the origin.
    let over_h2 = req.method() == Method::CONNECT;
    let client_side = hyper::upgrade::on(&mut req);
    let mut upstream_req = forward_request(req.map(|_| body::empty()), ctx, Coding::Identity, 0);
    if over_h2 {
        *upstream_req.method_mut() = Method::GET;
    }
    let headers = upstream_req.headers_mut();
    if over_h2 && websocket {
        // RFC 8441 has no key; the origin's HTTP/1.1 handshake needs one.
        let key = tokio_tungstenite::tungstenite::handshake::client::generate_key();
        if let Ok(key) = HeaderValue::from_str(&key) {
            headers.insert(header::SEC_WEBSOCKET_KEY, key);
        }
    }
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
    if websocket {
        // The relay reads each message, and speaks no extension: compressed frames
        // (permessage-deflate) would be unreadable to it, so none may be agreed.
        headers.remove(header::SEC_WEBSOCKET_EXTENSIONS);
    }
    let mut resp = ctx.site.upstream.send(upstream_req).await?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Ok(respond(resp, ctx, false).0);
    }
    let origin_side = hyper::upgrade::on(&mut resp);
    let (mut parts, _) = resp.into_parts();
    let agreed = parts.headers.get(header::UPGRADE).cloned();
    forward::response_headers(&mut parts.headers, parts.version);
    if over_h2 {
        // HTTP/2 accepts with 200 and has no connection-level headers; the accept value
        // answered the key edgeseo made up.
        parts.status = StatusCode::OK;
        parts.headers.remove(header::SEC_WEBSOCKET_ACCEPT);
    } else {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        if let Some(agreed) = agreed {
            parts.headers.insert(header::UPGRADE, agreed);
        }
    }
    let limits = ctx.site.config.websocket.clone();
    // An HTTP/2 connection carrying the tunnel is not idle.
    let busy = ctx.conn.busy();
    tokio::spawn(async move {
        let _busy = busy;
        // The client's side is ready once the 101 has been written to it.
        match tokio::try_join!(client_side, origin_side) {
            Ok((client, origin)) => {
                let ending = if websocket {
                    tunnel::websocket(client, origin, &limits).await
                } else {
                    tunnel::bytes(client, origin, limits.idle_timeout).await
                };
                tracing::debug!(?ending, "upgraded connection ended");
            }
            Err(e) => tracing::debug!(error = %e, "upgrade did not complete"),
        }
    });
    Ok(Response::from_parts(parts, body::empty()))
}
