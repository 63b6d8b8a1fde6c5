//! TLS on both sides: HTTPS clients choosing a site by SNI (HTTP/1.1 and HTTP/2 by ALPN), and an
//! https origin trusted through a site's `ca_file`.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use edgeseo::body::{self, Body};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    fn new() -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    /// Writes `<dir>/<host>/cert.pem` and `key.pem` for `host`, signed by this CA.
    fn issue(&self, dir: &Path, host: &str) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![host.to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        let host_dir = dir.join(host);
        std::fs::create_dir_all(&host_dir).unwrap();
        std::fs::write(host_dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(host_dir.join("key.pem"), key.serialize_pem()).unwrap();
    }

    fn connector(&self) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from(self.issuer.der().to_vec()))
            .unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        TlsConnector::from(Arc::new(config))
    }
}

/// edgeseo with an HTTPS listener serving the certificates under `certs`.
async fn start_tls(rules: &RulesDir, certs: &Path) -> edgeseo::app::App {
    start_proxy_with(
        rules.path(),
        Some("127.0.0.1:0".parse().unwrap()),
        certs.to_path_buf(),
    )
    .await
}

/// One HTTPS request over a fresh connection with the given SNI; HTTP/2 when ALPN picks it.
async fn https_get(
    ca: &TestCa,
    addr: std::net::SocketAddr,
    sni: &str,
    host: &str,
) -> (http::Version, StatusCode, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = ca
        .connector()
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .expect("TLS handshake");
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let req: Request<Body> = if h2 {
        Request::get(format!("https://{host}/headers"))
            .body(body::empty())
            .unwrap()
    } else {
        Request::get("/headers")
            .header("host", host)
            .body(body::empty())
            .unwrap()
    };
    let resp = if h2 {
        let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        tokio::spawn(conn);
        sender.send_request(req).await.unwrap()
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        sender.send_request(req).await.unwrap()
    };
    let version = resp.version();
    let status = resp.status();
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    (version, status, String::from_utf8_lossy(&text).into_owned())
}

#[tokio::test]
async fn https_clients_pick_the_site_by_sni() {
    let origin = Origin::start().await;
    let ca = TestCa::new();
    let certs = tempfile::tempdir().unwrap();
    ca.issue(certs.path(), "shop.test");
    ca.issue(certs.path(), "other.test");
    let rules = RulesDir::new()
        .site("shop", &site_for(origin.addr, ""))
        .site(
            "other",
            &format!(
                "hosts = [\"other.test\"]\n[origin]\nurl = \"http://{}\"\n",
                origin.addr
            ),
        );
    let app = start_tls(&rules, certs.path()).await;
    let addr = app.https_addr.unwrap();

    let (version, status, seen) = https_get(&ca, addr, "shop.test", "shop.test").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(version, http::Version::HTTP_2, "ALPN offers h2");
    assert!(seen.contains("x-forwarded-proto: https"), "{seen}");

    let (_, status, _) = https_get(&ca, addr, "other.test", "other.test").await;
    assert_eq!(status, StatusCode::OK);

    // A connection opened for one site must not be used to reach another.
    let (_, status, _) = https_get(&ca, addr, "shop.test", "other.test").await;
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
}

/// Whether a TLS handshake for `sni` succeeds with `ca` as the only trusted root.
async fn handshake(ca: &TestCa, addr: std::net::SocketAddr, sni: &str) -> bool {
    let tcp = TcpStream::connect(addr).await.unwrap();
    ca.connector()
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .is_ok()
}

#[tokio::test]
async fn certificates_changed_on_disk_serve_new_handshakes() {
    let origin = Origin::start().await;
    let (old_ca, new_ca) = (TestCa::new(), TestCa::new());
    let certs = tempfile::tempdir().unwrap();
    old_ca.issue(certs.path(), "shop.test");
    let rules = RulesDir::new()
        .site("shop", &site_for(origin.addr, ""))
        .file("server.toml", "[reload]\ndebounce = \"100ms\"\n");
    let app = start_tls(&rules, certs.path()).await;
    let addr = app.https_addr.unwrap();
    assert!(handshake(&old_ca, addr, "shop.test").await);
    assert!(!handshake(&new_ca, addr, "shop.test").await);

    // A key that does not parse is refused; the certificate in use stays.
    std::fs::write(certs.path().join("shop.test/key.pem"), "not a key").unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    assert!(handshake(&old_ca, addr, "shop.test").await);

    // Renewed (by another CA here, to tell them apart) and a host added: no restart.
    new_ca.issue(certs.path(), "shop.test");
    new_ca.issue(certs.path(), "new.test");
    let start = std::time::Instant::now();
    while !(handshake(&new_ca, addr, "shop.test").await
        && handshake(&new_ca, addr, "new.test").await)
    {
        assert!(
            start.elapsed().as_secs() < 10,
            "the new certificates are never served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(!handshake(&old_ca, addr, "shop.test").await);
}

#[tokio::test]
async fn https_origin_is_trusted_through_ca_file() {
    let ca = TestCa::new();
    let origin_certs = tempfile::tempdir().unwrap();
    ca.issue(origin_certs.path(), "localhost");
    let (acceptor, _) =
        edgeseo::tls::acceptor(origin_certs.path(), Default::default(), false).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls_addr = tcp.local_addr().unwrap();
    let (_stop, shutdown) = edgeseo::server::Shutdown::new();
    tokio::spawn(edgeseo::server::serve(
        edgeseo::server::Listener {
            tcp,
            tls: Some(acceptor),
        },
        Arc::new(TlsOrigin),
        Default::default(),
        shutdown,
    ));

    let rules = RulesDir::new()
        .file("shop/ca.pem", &ca.issuer.pem())
        .site(
            "shop",
            &format!(
                "hosts = [\"shop.test\"]\n[origin]\nurl = \"https://localhost:{}\"\nca_file = \"ca.pem\"\n",
                tls_addr.port()
            ),
        );
    let app = start_proxy(&rules).await;
    let (status, _, body) = fetch(
        &http1_client(),
        get(app.http_addr, "shop.test", "/tls-origin"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(&body[..], b"served over TLS");

    // Without the private CA the same origin is refused.
    let untrusted = RulesDir::new().site(
        "shop",
        &format!(
            "hosts = [\"shop.test\"]\n[origin]\nurl = \"https://localhost:{}\"\n",
            tls_addr.port()
        ),
    );
    let app = start_proxy(&untrusted).await;
    let (status, _, _) = fetch(
        &http1_client(),
        get(app.http_addr, "shop.test", "/tls-origin"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY);
}

/// A minimal TLS origin answering every request itself.
struct TlsOrigin;

impl edgeseo::server::Handler for TlsOrigin {
    async fn handle(
        &self,
        req: Request<hyper::body::Incoming>,
        conn: &edgeseo::server::ConnInfo,
    ) -> http::Response<Body> {
        assert!(conn.tls);
        assert_eq!(req.uri().path(), "/tls-origin");
        http::Response::new(body::full("served over TLS"))
    }
}

#[tokio::test]
async fn plain_http_is_redirected_and_https_carries_hsts() {
    let origin = Origin::start().await;
    origin.serve("/about", CannedPage::html("<p>about</p>"));
    origin.serve(
        "/.well-known/acme-challenge/token-1",
        CannedPage::new("text/plain", "token-1.key"),
    );
    let ca = TestCa::new();
    let certs = tempfile::tempdir().unwrap();
    ca.issue(certs.path(), "shop.test");
    ca.issue(certs.path(), "plain.test");
    let https = "[https]\nredirect = true\nport = 8443\nhsts_max_age = \"365d\"\nhsts_include_subdomains = true\n";
    let rules = RulesDir::new()
        .site("shop", &site_for(origin.addr, https))
        .site(
            "plain",
            &format!(
                "hosts = [\"plain.test\"]\n[origin]\nurl = \"http://{}\"\n",
                origin.addr
            ),
        );
    let app = start_tls(&rules, certs.path()).await;
    let client = http1_client();

    let (status, headers, _) = fetch(
        &client,
        get(app.http_addr, "shop.test:8080", "/about?q=rice%20cooker"),
    )
    .await;
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        headers["location"],
        "https://shop.test:8443/about?q=rice%20cooker"
    );
    assert!(
        !headers.contains_key("strict-transport-security"),
        "never over plain HTTP"
    );
    // An ACME HTTP-01 challenge must be answered over plain HTTP.
    let (status, _, body) = fetch(
        &client,
        get(
            app.http_addr,
            "shop.test",
            "/.well-known/acme-challenge/token-1",
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&body[..], b"token-1.key");
    // A site without [https] is served over plain HTTP as before.
    let (status, _, _) = fetch(&client, get(app.http_addr, "plain.test", "/about")).await;
    assert_eq!(status, StatusCode::OK);

    let tcp = TcpStream::connect(app.https_addr.unwrap()).await.unwrap();
    let tls = ca
        .connector()
        .connect(ServerName::try_from("shop.test").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get("https://shop.test/about")
                .body(body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains"
    );
}

#[test]
fn hsts_preload_without_its_requirements_is_refused_with_its_position() {
    let site = site_for(
        "127.0.0.1:9".parse().unwrap(),
        "[https]\nhsts_max_age = \"1d\"\nhsts_preload = true\nport = 70000\n",
    );
    let rules = RulesDir::new().site("shop", &site);
    let err = edgeseo::config::Rules::load(rules.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("site.toml:8:16"), "{err}");
    assert!(err.contains("hsts_preload needs"), "{err}");
    assert!(err.contains("site.toml:9:8: port must be"), "{err}");
}
