//! Test harness: a real origin server, a real edgeseo in front of it, and real HTTP clients, all on
//! ephemeral loopback ports.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use edgeseo::app::{App, ServeOptions};
use edgeseo::body::{self, Body};
use edgeseo::config::ServerSettings;
use edgeseo::server::{self, ConnInfo, Handler, Listener, Shutdown};
use http::{Request, Response, StatusCode};
use http_body_util::channel::{Channel, Sender};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify, watch};

/// Upper bound for any single wait in a test, so a regression fails instead of hanging.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// An origin with a few behaviours selected by path, counting the requests it receives.
///
/// - `/echo`: streams the request body back as it arrives; reports request headers as `x-seen-*`.
/// - `/headers`: the request line and headers as text.
/// - `/slow`: answers after 3 s.
/// - `/stream`: sends 1 MiB, then waits for [`Origin::release`] before sending 3 MiB more.
/// - `/chunked`: a body of unknown length sent in several chunks.
/// - `/hop`: a response carrying hop-by-hop headers.
/// - anything else: a small HTML page.
pub struct Origin {
    pub addr: SocketAddr,
    pub pages: Pages,
    /// The headers of the latest request, per path.
    pub seen: Seen,
    pub requests: Arc<AtomicUsize>,
    pub release: Arc<Notify>,
    stop: watch::Sender<bool>,
}

struct OriginHandler {
    seen: Seen,
    requests: Arc<AtomicUsize>,
    release: Arc<Notify>,
    pages: Pages,
}

/// A canned response the origin serves at a path: headers and body bytes as given.
#[derive(Clone)]
pub struct CannedPage {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Send the body in pieces of this size, pausing for `release` after the first one.
    pub hold_after_first: Option<usize>,
}

impl CannedPage {
    pub fn html(body: impl Into<Bytes>) -> Self {
        Self::new("text/html; charset=utf-8", body)
    }

    pub fn new(content_type: &str, body: impl Into<Bytes>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into(),
            hold_after_first: None,
        }
    }

    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

pub type Pages = Arc<std::sync::Mutex<std::collections::HashMap<String, CannedPage>>>;
pub type Seen = Arc<std::sync::Mutex<std::collections::HashMap<String, http::HeaderMap>>>;

pub const STREAM_FIRST: usize = 1 << 20;
pub const STREAM_REST: usize = 3 << 20;

impl Handler for OriginHandler {
    async fn handle(&self, req: Request<Incoming>, _conn: &ConnInfo) -> Response<Body> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        self.seen
            .lock()
            .unwrap()
            .insert(req.uri().path().to_string(), req.headers().clone());
        let canned = self.pages.lock().unwrap().get(req.uri().path()).cloned();
        if let Some(page) = canned {
            return self.canned(page);
        }
        match req.uri().path() {
            "/echo" => {
                let mut builder = Response::builder();
                for (name, value) in req.headers() {
                    builder = builder.header(format!("x-seen-{name}"), value);
                }
                builder.body(body::boxed(req.into_body())).unwrap()
            }
            "/headers" => {
                let mut text = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
                for (name, value) in req.headers() {
                    text.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("?")));
                }
                Response::new(body::full(text))
            }
            "/slow" => {
                tokio::time::sleep(Duration::from_secs(3)).await;
                Response::new(body::full("slow"))
            }
            "/stream" => {
                let (mut tx, channel) = Channel::<Bytes, edgeseo::body::BoxError>::new(4);
                let release = self.release.clone();
                tokio::spawn(async move {
                    send_bytes(&mut tx, STREAM_FIRST, b'a').await;
                    release.notified().await;
                    send_bytes(&mut tx, STREAM_REST, b'b').await;
                });
                Response::builder()
                    .header("content-length", STREAM_FIRST + STREAM_REST)
                    .header("content-type", "application/octet-stream")
                    .body(body::boxed(channel))
                    .unwrap()
            }
            "/chunked" => {
                let (mut tx, channel) = Channel::<Bytes, edgeseo::body::BoxError>::new(1);
                tokio::spawn(async move {
                    for i in 0..5 {
                        let _ = tx.send_data(Bytes::from(format!("chunk{i};"))).await;
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                });
                Response::new(body::boxed(channel))
            }
            "/hop" => Response::builder()
                .header("connection", "x-origin-hop")
                .header("x-origin-hop", "secret")
                .header("keep-alive", "timeout=5")
                .header("x-kept", "yes")
                .body(body::full("hop"))
                .unwrap(),
            _ => Response::builder()
                .header("content-type", "text/html; charset=utf-8")
                .body(body::full(
                    "<!DOCTYPE html><html><head><title>Origin</title></head><body>origin page</body></html>",
                ))
                .unwrap(),
        }
    }
}

impl OriginHandler {
    fn canned(&self, page: CannedPage) -> Response<Body> {
        let mut builder = Response::builder().status(page.status);
        for (name, value) in &page.headers {
            builder = builder.header(name, value);
        }
        let body = match page.hold_after_first {
            None => body::full(page.body),
            Some(first) => {
                let (mut tx, channel) = Channel::<Bytes, edgeseo::body::BoxError>::new(1);
                let release = self.release.clone();
                tokio::spawn(async move {
                    let first = first.min(page.body.len());
                    let _ = tx.send_data(page.body.slice(..first)).await;
                    release.notified().await;
                    let _ = tx.send_data(page.body.slice(first..)).await;
                });
                body::boxed(channel)
            }
        };
        builder.body(body).unwrap()
    }
}

async fn send_bytes(tx: &mut Sender<Bytes, edgeseo::body::BoxError>, len: usize, fill: u8) {
    const PIECE: usize = 64 * 1024;
    let mut left = len;
    while left > 0 {
        let n = left.min(PIECE);
        if tx.send_data(Bytes::from(vec![fill; n])).await.is_err() {
            return;
        }
        left -= n;
    }
}

impl Origin {
    pub async fn start() -> Origin {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let pages = Pages::default();
        let seen = Seen::default();
        let handler = Arc::new(OriginHandler {
            seen: seen.clone(),
            requests: requests.clone(),
            release: release.clone(),
            pages: pages.clone(),
        });
        let (stop, shutdown) = Shutdown::new();
        tokio::spawn(server::serve(
            Listener { tcp, tls: None },
            handler,
            ServerSettings::default(),
            shutdown,
        ));
        Origin {
            addr,
            pages,
            seen,
            requests,
            release,
            stop,
        }
    }

    /// Serves `page` at `path` from now on.
    pub fn serve(&self, path: &str, page: CannedPage) {
        self.pages.lock().unwrap().insert(path.to_string(), page);
    }

    /// The headers of the latest request for `path`.
    pub fn last_headers(&self, path: &str) -> Option<http::HeaderMap> {
        self.seen.lock().unwrap().get(path).cloned()
    }

    pub fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// A rules directory in a temporary folder.
pub struct RulesDir {
    pub dir: tempfile::TempDir,
}

impl RulesDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `rules/<site>/site.toml`.
    pub fn site(self, name: &str, site_toml: &str) -> Self {
        self.file(&format!("{name}/site.toml"), site_toml)
    }

    pub fn file(self, rel: &str, text: &str) -> Self {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A copy of a site's rule directory (every file, sub-directories included) as site `name` of a
/// new rules directory, its site.toml passed through `edit`.
pub fn copy_site(src: &Path, name: &str, edit: impl FnOnce(String) -> String) -> RulesDir {
    fn files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut all = Vec::new();
    files(src, &mut all);
    let mut rules = RulesDir::new();
    let mut edit = Some(edit);
    for path in all {
        let rel = path
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = if rel == "site.toml" {
            (edit.take().unwrap())(text)
        } else {
            text
        };
        rules = rules.file(&format!("{name}/{rel}"), &text);
    }
    rules
}

/// The fixture site's rules (tests/fixtures/rules/shop) in front of `origin`, site.toml edited.
pub fn fixture_site(origin: SocketAddr, edit: impl FnOnce(String) -> String) -> RulesDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rules/shop");
    copy_site(&src, "shop", |site| {
        edit(site.replace("http://127.0.0.1:9", &format!("http://{origin}")))
    })
}

/// The usual one-site rules in front of `origin`, answering for `shop.test`.
pub fn site_for(origin: SocketAddr, extra: &str) -> String {
    format!(
        "hosts = [\"shop.test\", \"127.0.0.1\"]\n[origin]\nurl = \"http://{origin}\"\nresponse_timeout = \"1s\"\nconnect_timeout = \"1s\"\n{extra}"
    )
}

pub async fn start_proxy(rules: &RulesDir) -> App {
    start_proxy_with(rules.path(), None, PathBuf::new()).await
}

/// edgeseo with the shipped rules (`rules/`): the demo site behind the proxy.
pub async fn start_demo() -> App {
    start_proxy_with(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/rules")),
        None,
        PathBuf::new(),
    )
    .await
}

/// A copy of the demo's rules whose chat forwards to `backend` (a full URL).
pub async fn start_demo_with_backend(backend: &str, extra: &str) -> App {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/demo-supplier");
    let rules = copy_site(&src, "demo", |site| {
        site.replace(
            "[chat]\n",
            &format!("[chat]\nbackend = \"{backend}\"\n{extra}\n"),
        )
    });
    let app = start_proxy(&rules).await;
    // The rules directory must outlive the app only until it has loaded.
    drop(rules);
    app
}

/// edgeseo with an admin listener (its token in the rules' server.toml).
pub async fn start_with_admin(rules: &RulesDir) -> App {
    App::start(ServeOptions {
        rules_dir: rules.path().to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls_listen: None,
        certs_dir: Default::default(),
        embedded_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
    })
    .await
    .expect("proxy starts")
}

pub async fn start_proxy_with(rules: &Path, tls: Option<SocketAddr>, certs: PathBuf) -> App {
    App::start(ServeOptions {
        rules_dir: rules.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls_listen: tls,
        certs_dir: certs,
        embedded_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: None,
    })
    .await
    .expect("proxy starts")
}

pub type HttpClient = Client<HttpConnector, Body>;

pub fn http1_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

pub fn h2c_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

pub fn get(addr: SocketAddr, host: &str, path: &str) -> Request<Body> {
    Request::get(format!("http://{addr}{path}"))
        .header("host", host)
        .body(body::empty())
        .unwrap()
}

pub async fn send(client: &HttpClient, req: Request<Body>) -> Response<Incoming> {
    tokio::time::timeout(PATIENCE, client.request(req))
        .await
        .expect("response in time")
        .expect("request succeeds")
}

/// Sends a request and reads the whole response body.
pub async fn fetch(
    client: &HttpClient,
    req: Request<Body>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let resp = send(client, req).await;
    let (parts, body) = resp.into_parts();
    let bytes = tokio::time::timeout(PATIENCE, body.collect())
        .await
        .expect("body in time")
        .expect("body reads")
        .to_bytes();
    (parts.status, parts.headers, bytes)
}

pub fn full_body(bytes: impl Into<Bytes>) -> Body {
    body::boxed(Full::new(bytes.into()))
}

/// A request body the test feeds piece by piece.
pub fn channel_body() -> (Sender<Bytes, edgeseo::body::BoxError>, Body) {
    let (tx, channel) = Channel::<Bytes, edgeseo::body::BoxError>::new(2);
    (tx, body::boxed(channel))
}

pub type Shared<T> = Arc<Mutex<T>>;

/// A small deterministic generator for random chunk boundaries; the seed comes from
/// `EDGESEO_SEED` when set, so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn from_env(default: u64) -> (Rng, u64) {
        let seed = std::env::var("EDGESEO_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default);
        (Rng(seed.max(1)), seed)
    }

    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    /// Splits `len` bytes into random pieces (1 byte up to `max`).
    pub fn split(&mut self, len: usize, max: usize) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < len {
            let n = 1 + self.below(max);
            let end = (at + n).min(len);
            out.push(at..end);
            at = end;
        }
        out
    }
}

/// Runs `input` through edgeseo's rewriter in the given pieces and returns the output.
pub async fn rewrite_in_pieces(
    input: &[u8],
    pieces: &[std::ops::Range<usize>],
    opts: edgeseo::rewrite::RewriteOptions,
) -> Vec<u8> {
    let (mut tx, body) = channel_body();
    let chunks: Vec<Bytes> = pieces
        .iter()
        .map(|r| Bytes::copy_from_slice(&input[r.clone()]))
        .collect();
    tokio::spawn(async move {
        for chunk in chunks {
            if tx.send_data(chunk).await.is_err() {
                return;
            }
        }
    });
    let out = edgeseo::rewrite::rewrite(body, opts);
    tokio::time::timeout(PATIENCE, out.collect())
        .await
        .expect("rewrite finishes")
        .expect("rewrite succeeds")
        .to_bytes()
        .to_vec()
}

/// Runs `input` through the rewriter as one piece.
pub async fn rewrite_whole(input: &[u8], opts: edgeseo::rewrite::RewriteOptions) -> Vec<u8> {
    let all = std::iter::once(0..input.len()).collect::<Vec<_>>();
    rewrite_in_pieces(input, &all, opts).await
}

/// The SEO rules of the fixture site (tests/fixtures/rules/shop).
pub fn fixture_seo() -> Arc<edgeseo::config::SiteSeo> {
    let rules = edgeseo::config::Rules::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rules"
    )))
    .expect("fixture rules load");
    rules.sites[0]
        .seo
        .clone()
        .expect("fixture site has SEO rules")
}

/// Rewrite options for a page of the fixture site.
pub fn fixture_options(
    locale: edgeseo::locale::Locale,
    path: &str,
    charset: Option<&'static encoding_rs::Encoding>,
) -> edgeseo::rewrite::RewriteOptions {
    site_options(fixture_seo(), locale, path, charset)
}

/// Rewrite options for a page of a site served as `https://shop.example`.
pub fn site_options(
    seo: Arc<edgeseo::config::SiteSeo>,
    locale: edgeseo::locale::Locale,
    path: &str,
    charset: Option<&'static encoding_rs::Encoding>,
) -> edgeseo::rewrite::RewriteOptions {
    let plan = edgeseo::seo::HeadPlan::build(
        &seo,
        edgeseo::seo::PageRequest {
            locale,
            origin_path: path,
            base: "https://shop.example",
        },
    );
    edgeseo::rewrite::RewriteOptions {
        plan: Arc::new(plan),
        charset,
        coding: edgeseo::codec::Coding::Identity,
        output: edgeseo::codec::Coding::Identity,
        max_memory: seo.rewrite.max_memory,
        own_host: Arc::new(|h: &str| edgeseo::sites::normalize_host(h) == "shop.example"),
        body_end: None,
        translations: seo.translations.get(&locale).cloned(),
    }
}

/// Path of a file under ../shared/data, or `None` (with a note) where shared data is absent.
pub fn shared_data(rel: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/data")
        .join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "skipping: {} is absent (../shared not checked out beside the repo)",
            path.display()
        );
        None
    }
}

/// A response body decoded by its `Content-Encoding`, with each coding's reference library.
pub fn decode(headers: &http::HeaderMap, body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match headers.get("content-encoding").map(|v| v.to_str().unwrap()) {
        None => out = body.to_vec(),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("valid gzip");
        }
        Some("deflate") => {
            flate2::read::ZlibDecoder::new(body)
                .read_to_end(&mut out)
                .expect("valid deflate");
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("valid brotli");
        }
        Some("zstd") => out = zstd::decode_all(body).expect("valid zstd"),
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

/// Polls `check` until it holds, for at most 10 s.
pub async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let start = std::time::Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "never: {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
