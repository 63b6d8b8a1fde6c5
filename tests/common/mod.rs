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
    pub requests: Arc<AtomicUsize>,
    pub release: Arc<Notify>,
    stop: watch::Sender<bool>,
}

struct OriginHandler {
    requests: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

pub const STREAM_FIRST: usize = 1 << 20;
pub const STREAM_REST: usize = 3 << 20;

impl Handler for OriginHandler {
    async fn handle(&self, req: Request<Incoming>, _conn: &ConnInfo) -> Response<Body> {
        self.requests.fetch_add(1, Ordering::SeqCst);
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
        let handler = Arc::new(OriginHandler {
            requests: requests.clone(),
            release: release.clone(),
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
            requests,
            release,
            stop,
        }
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

/// The usual one-site rules in front of `origin`, answering for `shop.test`.
pub fn site_for(origin: SocketAddr, extra: &str) -> String {
    format!(
        "hosts = [\"shop.test\", \"127.0.0.1\"]\n[origin]\nurl = \"http://{origin}\"\nresponse_timeout = \"1s\"\nconnect_timeout = \"1s\"\n{extra}"
    )
}

pub async fn start_proxy(rules: &RulesDir) -> App {
    start_proxy_with(rules.path(), None, PathBuf::new()).await
}

pub async fn start_proxy_with(rules: &Path, tls: Option<SocketAddr>, certs: PathBuf) -> App {
    App::start(ServeOptions {
        rules_dir: rules.to_path_buf(),
        listen: "127.0.0.1:0".parse().unwrap(),
        tls_listen: tls,
        certs_dir: certs,
        embedded_listen: "127.0.0.1:0".parse().unwrap(),
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
