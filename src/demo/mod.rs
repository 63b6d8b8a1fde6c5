//! The embedded demo: a sample supplier website (Foshan Lianhe Kitchen Appliance, an English-only
//! B2B site) compiled into the binary and served on a loopback port, so edgeseo can be tried in
//! front of a realistic origin with nothing else installed. It plays the origin's part only: it
//! knows nothing about locales or SEO.

use std::hash::{DefaultHasher, Hash, Hasher};

use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use include_dir::{Dir, File, include_dir};

use crate::body::{self, Body};
use crate::server::{ConnInfo, Handler};

static SITE: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/src/demo/site");

/// Largest inquiry form the demo accepts.
const MAX_FORM: usize = 64 * 1024;

pub struct DemoSite;

impl Handler for DemoSite {
    async fn handle(&self, req: Request<Incoming>, _conn: &ConnInfo) -> Response<Body> {
        let path = req.uri().path().to_string();
        match *req.method() {
            Method::GET | Method::HEAD => match lookup(&path) {
                Some(file) => serve_file(file, &req),
                None => not_found(),
            },
            Method::POST if path == "/contact" => inquiry(req).await,
            _ => {
                let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                resp.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                resp
            }
        }
    }
}

/// Maps a URL path to a file: `/` → index.html, `/about` → about.html,
/// `/products` or `/products/` → products/index.html, assets by their own name.
fn lookup(path: &str) -> Option<&'static File<'static>> {
    let rel = path.trim_start_matches('/');
    if rel
        .split('/')
        .any(|seg| seg == ".." || seg.starts_with('.'))
        || rel.ends_with(".md")
    {
        return None;
    }
    if rel.is_empty() || rel.ends_with('/') {
        return SITE.get_file(format!("{rel}index.html"));
    }
    SITE.get_file(rel)
        .or_else(|| SITE.get_file(format!("{rel}.html")))
        .or_else(|| SITE.get_file(format!("{rel}/index.html")))
}

fn serve_file(file: &'static File<'static>, req: &Request<Incoming>) -> Response<Body> {
    let contents = file.contents();
    let etag = etag(contents);
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let (content_type, cache) = content_type(file.path().extension().and_then(|e| e.to_str()));
    let mut resp = if fresh {
        let mut r = Response::new(body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(body::full(contents));
        r.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(contents.len()));
        r
    };
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is a header value"),
    );
    resp
}

fn etag(contents: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    contents.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

fn content_type(ext: Option<&str>) -> (&'static str, &'static str) {
    const PAGE: &str = "public, max-age=300";
    const ASSET: &str = "public, max-age=86400";
    match ext {
        Some("html") => ("text/html; charset=utf-8", PAGE),
        Some("css") => ("text/css; charset=utf-8", ASSET),
        Some("js") => ("text/javascript; charset=utf-8", ASSET),
        Some("svg") => ("image/svg+xml", ASSET),
        Some("png") => ("image/png", ASSET),
        Some("jpg" | "jpeg") => ("image/jpeg", ASSET),
        Some("txt") => ("text/plain; charset=utf-8", PAGE),
        Some("xml") => ("application/xml", PAGE),
        _ => ("application/octet-stream", ASSET),
    }
}

fn not_found() -> Response<Body> {
    let page = SITE
        .get_file("404.html")
        .map_or(&b"not found\n"[..], File::contents);
    let mut resp = Response::new(body::full(page));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// The inquiry form: reads the posted form (bounded) and thanks the buyer.
async fn inquiry(req: Request<Incoming>) -> Response<Body> {
    let received = match Limited::new(req.into_body(), MAX_FORM).collect().await {
        Ok(body) => body.to_bytes().len(),
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "inquiry too large\n"),
    };
    let page = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Thank you | LIANHE Kitchen Appliance</title>\
         <link rel=\"stylesheet\" href=\"/assets/style.css\"></head><body><main class=\"container\">\
         <h1>Thank you for your inquiry</h1><p>We received your message ({received} bytes). Our export sales team \
         answers within one working day (China time, GMT+8).</p><p><a href=\"/products\">Back to products</a></p>\
         </main></body></html>\n"
    );
    let mut resp = Response::new(body::full(page));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn text(status: StatusCode, message: &'static str) -> Response<Body> {
    let mut resp = Response::new(body::full(message));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
