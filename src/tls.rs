//! TLS termination: one certificate per host from `certs/<host>/{cert.pem,key.pem}`, chosen by the
//! server name the client sends (SNI). ALPN offers HTTP/2 and HTTP/1.1, and `acme-tls/1` for
//! the TLS-ALPN-01 validations of an open ACME order (answered from `acme::Challenges` only).
//! The certificates can be read again while serving (`LiveCerts::reload`): new handshakes get
//! the new ones.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::ring;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::acme::{self, Challenges};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("no certificate found under {0} (expected <host>/cert.pem and <host>/key.pem)")]
    Empty(PathBuf),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Certificates by lower-case host name; `*.example.com` directories serve subdomains.
#[derive(Debug)]
struct CertStore {
    by_host: HashMap<String, Arc<CertifiedKey>>,
    /// Used when the client sends no server name and only one certificate exists.
    only: Option<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return self.only.clone();
        };
        let name = name.to_ascii_lowercase();
        if let Some(key) = self.by_host.get(&name) {
            return Some(key.clone());
        }
        let parent = name.split_once('.')?.1;
        self.by_host.get(&format!("*.{parent}")).cloned()
    }
}

/// The certificates in use, swapped whole when the directory is read again.
#[derive(Debug)]
pub struct LiveCerts {
    store: ArcSwap<CertStore>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    challenges: Arc<Challenges>,
    /// Whether an empty directory is fine (ACME fills it).
    allow_empty: bool,
}

impl ResolvesServerCert for LiveCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let validation = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == acme::TLS_ALPN_PROTOCOL));
        if validation {
            // Only a CA validating an open order asks for this; nothing else is served to it.
            return self.challenges.tls_alpn01(hello.server_name()?);
        }
        self.store.load().resolve(hello)
    }
}

impl LiveCerts {
    /// Reads `certs_dir` again; on any error the certificates in use stay. Returns how many
    /// hosts have a certificate now.
    pub fn reload(&self, certs_dir: &Path) -> Result<usize, TlsError> {
        let store = load_store(certs_dir, &self.provider, self.allow_empty)?;
        let hosts = store.by_host.len();
        self.store.store(Arc::new(store));
        Ok(hosts)
    }
}

/// Builds a TLS acceptor from a certificates directory, and the handle to reload them.
/// TLS-ALPN-01 validations are answered from `challenges`. With `allow_empty` (some site gets
/// its certificates by ACME), the directory may start empty.
pub fn acceptor(
    certs_dir: &Path,
    challenges: Arc<Challenges>,
    allow_empty: bool,
) -> Result<(TlsAcceptor, Arc<LiveCerts>), TlsError> {
    let provider = Arc::new(ring::default_provider());
    let live = Arc::new(LiveCerts {
        store: ArcSwap::from_pointee(load_store(certs_dir, &provider, allow_empty)?),
        provider: provider.clone(),
        challenges,
        allow_empty,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(live.clone());
    config.alpn_protocols = vec![
        b"h2".to_vec(),
        b"http/1.1".to_vec(),
        acme::TLS_ALPN_PROTOCOL.to_vec(),
    ];
    Ok((TlsAcceptor::from(Arc::new(config)), live))
}

fn load_store(
    certs_dir: &Path,
    provider: &rustls::crypto::CryptoProvider,
    allow_empty: bool,
) -> Result<CertStore, TlsError> {
    let mut by_host = HashMap::new();
    if allow_empty {
        fs::create_dir_all(certs_dir).map_err(|e| TlsError::File {
            path: certs_dir.to_path_buf(),
            message: e.to_string(),
        })?;
    }
    let entries = fs::read_dir(certs_dir).map_err(|e| TlsError::File {
        path: certs_dir.to_path_buf(),
        message: e.to_string(),
    })?;
    for entry in entries.filter_map(Result::ok) {
        let dir = entry.path();
        if !dir.join("cert.pem").exists() {
            continue;
        }
        let host = entry.file_name().to_string_lossy().to_ascii_lowercase();
        by_host.insert(host, Arc::new(load_key(&dir, provider)?));
    }
    if by_host.is_empty() && !allow_empty {
        return Err(TlsError::Empty(certs_dir.to_path_buf()));
    }
    let only = (by_host.len() == 1)
        .then(|| by_host.values().next().cloned())
        .flatten();
    Ok(CertStore { by_host, only })
}

fn load_key(
    dir: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let file_err = |path: PathBuf| {
        move |e: rustls::pki_types::pem::Error| TlsError::File {
            path,
            message: e.to_string(),
        }
    };
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .map_err(file_err(cert_path.clone()))?
        .collect::<Result<_, _>>()
        .map_err(file_err(cert_path.clone()))?;
    if chain.is_empty() {
        return Err(TlsError::File {
            path: cert_path,
            message: "holds no certificate".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(file_err(key_path.clone()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| TlsError::File {
        path: key_path,
        message: e.to_string(),
    })
}
