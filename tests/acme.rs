//! Automatic HTTPS against a real ACME server: Debian's `pebble` (with `pebble-challtestsrv`
//! resolving every name to 127.0.0.1), started here on loopback ports with its validation ports
//! pointed at edgeseo's listeners. One site proves its host by TLS-ALPN-01, another by HTTP-01;
//! both certificates land in certs/<host>/, are served without a restart, and are renewed when
//! due. Skipped with a message without pebble, unless `EDGESEO_REQUIRE_ACME=1` (set by .ci/run,
//! which installs it).

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use edgeseo::app::{App, ServeOptions};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn installed(program: &str) -> bool {
    let found = Command::new(program)
        .arg("-h")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var_os("EDGESEO_REQUIRE_ACME").is_none(),
            "{program} is required (apt-get install pebble)"
        );
        eprintln!("skipped: {program} not installed (apt-get install pebble)");
    }
    found
}

/// pebble and its DNS, serving the directory at `directory` over HTTPS signed by `ca_pem`.
struct Pebble {
    _dns: Running,
    _ca: Running,
    directory: String,
    management: SocketAddr,
    ca_pem: String,
}

impl Pebble {
    async fn start(dir: &Path, http_port: u16, tls_port: u16) -> Pebble {
        // pebble's own HTTPS certificate, from a CA the ACME client is told to trust.
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        std::fs::write(dir.join("pebble-cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("pebble-key.pem"), key.serialize_pem()).unwrap();

        let dns = format!("127.0.0.1:{}", free_port());
        let challtestsrv = |doh: bool| {
            let mut cmd = Command::new("pebble-challtestsrv");
            cmd.args([
                "-dns01",
                &dns,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
            if doh {
                cmd.args(["-doh", ""]);
            }
            cmd.spawn().expect("pebble-challtestsrv starts")
        };
        // Older builds have no DNS-over-HTTPS listener and refuse `-doh`.
        let mut dns_child = challtestsrv(true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        if dns_child.try_wait().unwrap().is_some() {
            dns_child = challtestsrv(false);
        }
        let listen = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let management = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": listen.to_string(),
                "managementListenAddress": management.to_string(),
                "certificate": dir.join("pebble-cert.pem"),
                "privateKey": dir.join("pebble-key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false
            }
        });
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let log = std::fs::File::create(dir.join("pebble.log")).unwrap();
        let ca_child = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            .args(["-dnsserver", &dns, "-strict"])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let pebble = Pebble {
            _dns: Running(dns_child),
            _ca: Running(ca_child),
            directory: format!("https://{listen}/dir"),
            management,
            ca_pem: ca.pem(),
        };
        let start = Instant::now();
        while std::net::TcpStream::connect(listen).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "pebble did not start: {}",
                std::fs::read_to_string(dir.join("pebble.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pebble
    }

    /// The root that pebble signs certificates under (new each time pebble starts).
    async fn issuing_root(&self) -> CertificateDer<'static> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let tls = client_config(roots, vec![]);
        let stream = TcpStream::connect(self.management).await.unwrap();
        let mut tls = TlsConnector::from(Arc::new(tls))
            .connect(ServerName::try_from("localhost").unwrap(), stream)
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tls.write_all(b"GET /roots/0 HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        let mut response = Vec::new();
        let _ = tls.read_to_end(&mut response).await;
        let text = String::from_utf8_lossy(&response);
        let pem = &text[text.find("-----BEGIN").expect("a PEM root")..];
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }
}

use rustls::pki_types::pem::PemObject;

fn client_config(roots: rustls::RootCertStore, alpn: Vec<Vec<u8>>) -> rustls::ClientConfig {
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn;
    config
}

/// The certificate edgeseo serves for `host`, verified against `root`; `None` if the handshake
/// fails.
async fn served(
    addr: SocketAddr,
    host: &str,
    root: &CertificateDer<'static>,
) -> Option<CertificateDer<'static>> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let connector = TlsConnector::from(Arc::new(client_config(roots, vec![b"http/1.1".to_vec()])));
    let stream = TcpStream::connect(addr).await.ok()?;
    let tls = connector
        .connect(ServerName::try_from(host.to_string()).unwrap(), stream)
        .await
        .ok()?;
    tls.get_ref().1.peer_certificates()?.first().cloned()
}

fn site(host: &str, challenge: &str, directory: &str) -> String {
    format!(
        "hosts = [\"{host}\"]\n[origin]\nurl = \"http://127.0.0.1:9\"\n\
         [tls]\nacme = true\nemail = \"ops@shop.test\"\ndirectory = \"{directory}\"\n\
         challenge = \"{challenge}\"\nca_file = \"pebble-ca.pem\"\nrenew_before = \"100000d\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_issued_by_both_challenges_served_and_renewed() {
    if !installed("pebble") || !installed("pebble-challtestsrv") {
        return;
    }
    let _ = tracing_subscriber::fmt()
        .with_env_filter("edgeseo=info")
        .with_test_writer()
        .try_init();
    let work = tempfile::tempdir().unwrap();
    let (http_port, tls_port) = (free_port(), free_port());
    let pebble = Pebble::start(work.path(), http_port, tls_port).await;

    // Renewal is due at once (renew_before beyond pebble's five-year certificates): each check,
    // one second apart, orders anew, which is how the test sees a renewal.
    let rules = RulesDir::new()
        .file("server.toml", "[acme]\ncheck_every = \"1s\"\n")
        .site(
            "alpn",
            &site("alpn.shop.test", "tls-alpn-01", &pebble.directory),
        )
        .file("alpn/pebble-ca.pem", &pebble.ca_pem)
        .site(
            "plain",
            &site("plain.shop.test", "http-01", &pebble.directory),
        )
        .file("plain/pebble-ca.pem", &pebble.ca_pem);
    let certs = work.path().join("certs");
    let app = App::start(ServeOptions {
        rules_dir: rules.path().to_path_buf(),
        listen: SocketAddr::from(([127, 0, 0, 1], http_port)),
        tls_listen: Some(SocketAddr::from(([127, 0, 0, 1], tls_port))),
        certs_dir: certs.clone(),
        embedded_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: None,
    })
    .await
    .expect("edgeseo starts with an empty certificates directory");
    let https = app.https_addr.unwrap();
    let root = pebble.issuing_root().await;

    let mut first = Vec::new();
    for host in ["alpn.shop.test", "plain.shop.test"] {
        let start = Instant::now();
        let cert = loop {
            if let Some(cert) = served(https, host, &root).await {
                break cert;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no certificate for {host}; pebble said: {}",
                std::fs::read_to_string(work.path().join("pebble.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // The files an operator would have placed by hand, the key readable by the owner only.
        let on_disk = std::fs::read(certs.join(host).join("cert.pem")).unwrap();
        assert!(!on_disk.is_empty());
        let key = certs.join(host).join("key.pem");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "key.pem is private");
        }
        first.push((host, cert));
    }
    // The account is registered once and kept for the next orders.
    let accounts = std::fs::read_dir(certs.join(".acme")).unwrap().count();
    assert_eq!(accounts, 1, "one account per directory and contact");

    // Renewal: a newer certificate is served, on the same listener, with no restart.
    for (host, old) in &first {
        let start = Instant::now();
        loop {
            match served(https, host, &root).await {
                Some(cert) if cert != *old => break,
                _ => {}
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "{host} was never renewed"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // Never for a name no site lists: nothing is ordered for it, and a validation handshake
    // for it gets no certificate.
    assert!(served(https, "other.shop.test", &root).await.is_none());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let alpn_only =
        TlsConnector::from(Arc::new(client_config(roots, vec![b"acme-tls/1".to_vec()])));
    let stream = TcpStream::connect(https).await.unwrap();
    assert!(
        alpn_only
            .connect(ServerName::try_from("other.shop.test").unwrap(), stream)
            .await
            .is_err()
    );
    let dirs: Vec<String> = std::fs::read_dir(&certs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    let mut dirs = dirs;
    dirs.sort();
    assert_eq!(dirs, ["alpn.shop.test", "plain.shop.test"]);
    app.shutdown().await;
}

#[test]
fn acme_settings_are_checked_with_their_positions() {
    let load = |tls: &str| {
        let site = format!(
            "hosts = [\"shop.test\", \"*.shop.test\"]\n[origin]\nurl = \"http://127.0.0.1:9\"\n[tls]\n{tls}"
        );
        let rules = RulesDir::new().site("shop", &site);
        edgeseo::config::Rules::load(rules.path())
            .unwrap_err()
            .to_string()
    };
    let err = load("acme = true\nemail = \"ops@shop.test\"\n");
    assert!(
        err.contains("site.toml:5:8: acme cannot prove `*.shop.test`"),
        "{err}"
    );
    let err = load("acme = true\nemail = \"ops\"\nchallenge = \"dns-01\"\n");
    assert!(err.contains("site.toml:6:9: email must be"), "{err}");
    let err = load("email = \"ops@shop.test\"\n");
    assert!(
        err.contains("site.toml:5:9: [tls] settings apply with acme = true only"),
        "{err}"
    );

    let ok = RulesDir::new().site(
        "shop",
        "hosts = [\"shop.test\"]\n[origin]\nurl = \"http://127.0.0.1:9\"\n[tls]\nacme = true\nemail = \"ops@shop.test\"\nchallenge = \"dns-01\"\ndirectory = \"http://ca.test/dir\"\n",
    );
    let err = edgeseo::config::Rules::load(ok.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("site.toml:8:13: directory must be an https URL"),
        "{err}"
    );

    let ok = RulesDir::new().site(
        "shop",
        "hosts = [\"shop.test\"]\n[origin]\nurl = \"http://127.0.0.1:9\"\n[tls]\nacme = true\nemail = \"ops@shop.test\"\n",
    );
    let rules = edgeseo::config::Rules::load(ok.path()).unwrap();
    let acme = rules.sites[0].acme.as_ref().unwrap();
    assert_eq!(acme.directory, edgeseo::config::LETS_ENCRYPT);
    assert_eq!(acme.contact, "mailto:ops@shop.test");
    assert_eq!(acme.challenge, edgeseo::config::AcmeChallenge::TlsAlpn01);
}
