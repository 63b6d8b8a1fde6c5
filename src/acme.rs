//! Certificates from an ACME CA (RFC 8555) for the hosts of sites with `[tls] acme = true`:
//! ordered when missing, renewed ahead of expiry, proven by TLS-ALPN-01 (RFC 8737) or HTTP-01,
//! and written to `certs/<host>/{cert.pem,key.pem}`, the files an operator would place by hand,
//! which the TLS listener then serves without a restart.
//!
//! Owns: the order flow, the challenge answers while an order is open ([`Challenges`], read by
//! the TLS certificate resolver and by the route stage), the account keys under `certs/.acme/`,
//! and the renewal schedule with backoff after failures.
//! Must never: order for a name no site lists (names come from the rules, never from a client's
//! SNI or Host), answer a challenge no open order asked for, or leave a host's directory with a
//! key and a certificate that do not belong together.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

use crate::config::{AcmeChallenge, AcmeSettings};
use crate::control::Control;
use crate::server::Shutdown;

/// The protocol a TLS-ALPN-01 validation offers; never one a browser asks for.
pub const TLS_ALPN_PROTOCOL: &[u8] = b"acme-tls/1";

/// Where HTTP-01 tokens are fetched.
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// An order has this long, from creating it to the certificate, before it counts as failed.
const ORDER_DEADLINE: Duration = Duration::from_secs(180);

/// After the n-th failure in a row a host waits `FIRST_RETRY * 2^(n-1)`, at most `LAST_RETRY`:
/// a CA's rate limits (Let's Encrypt: 5 failed validations per host per hour) are not hammered.
const FIRST_RETRY: Duration = Duration::from_secs(60);
const LAST_RETRY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("ACME: {0}")]
    Protocol(#[from] instant_acme::Error),
    #[error("the CA offers no {0:?} challenge for this host")]
    NoChallenge(AcmeChallenge),
    #[error("authorization ended {0:?}")]
    Authorization(AuthorizationStatus),
    #[error("order ended {0:?} (the CA's validation failed)")]
    Order(OrderStatus),
    #[error("the order took longer than {0:?}")]
    Deadline(Duration),
    #[error("challenge certificate: {0}")]
    ChallengeCert(String),
    #[error("{path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("account file {path}: {message}")]
    AccountFile { path: PathBuf, message: String },
    #[error("TLS client: {0}")]
    Tls(#[from] rustls::Error),
}

/// The answers to the challenges of the orders open now.
#[derive(Default)]
pub struct Challenges {
    /// HTTP-01: token → key authorization.
    http: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01: host → the self-signed certificate that carries the key authorization.
    tls_alpn: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for Challenges {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenges").finish_non_exhaustive()
    }
}

impl Challenges {
    /// The body to answer a request for `path` with, when it is an open HTTP-01 token.
    pub fn http01(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        lock(&self.http).get(token).cloned()
    }

    /// The certificate for a TLS-ALPN-01 handshake naming `host`, while its order is open.
    pub fn tls_alpn01(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        lock(&self.tls_alpn)
            .get(&host.to_ascii_lowercase())
            .cloned()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes a challenge's answer when the order is done with it, however it ended.
struct Answer<'a> {
    challenges: &'a Challenges,
    kind: AcmeChallenge,
    key: String,
}

impl Drop for Answer<'_> {
    fn drop(&mut self) {
        match self.kind {
            AcmeChallenge::Http01 => drop(lock(&self.challenges.http).remove(&self.key)),
            AcmeChallenge::TlsAlpn01 => drop(lock(&self.challenges.tls_alpn).remove(&self.key)),
        }
    }
}

/// Failures in a row and when the host may be tried again.
struct Backoff {
    failures: u32,
    next_try: Instant,
}

/// Keeps the certificates of every ACME host fresh, for as long as it runs.
pub struct Manager {
    certs_dir: PathBuf,
    challenges: Arc<Challenges>,
    provider: Arc<CryptoProvider>,
    /// Called after new files are written (the TLS listener reads the directory again).
    on_issued: Box<dyn Fn() + Send + Sync>,
    backoff: HashMap<String, Backoff>,
    accounts: HashMap<PathBuf, Account>,
}

impl Manager {
    pub fn new(
        certs_dir: PathBuf,
        challenges: Arc<Challenges>,
        on_issued: Box<dyn Fn() + Send + Sync>,
    ) -> Self {
        Self {
            certs_dir,
            challenges,
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            on_issued,
            backoff: HashMap::new(),
            accounts: HashMap::new(),
        }
    }

    /// Checks every `every` (sooner when a host's retry is due) until `shutdown`. The hosts are
    /// read from the rules in force at each check, so a reload adds or drops hosts.
    pub async fn run(mut self, control: Arc<Control>, every: Duration, mut shutdown: Shutdown) {
        loop {
            let wanted: Vec<(String, Arc<AcmeSettings>)> = control
                .runtime()
                .sites()
                .filter_map(|s| s.config.acme.clone().map(|a| (s.config.hosts.clone(), a)))
                .flat_map(|(hosts, acme)| hosts.into_iter().map(move |h| (h, acme.clone())))
                .collect();
            for (host, settings) in &wanted {
                let check = self.check(host, settings);
                tokio::select! {
                    _ = check => {}
                    _ = shutdown.wait() => return,
                }
            }
            let now = Instant::now();
            let wake = self
                .backoff
                .values()
                .map(|b| b.next_try.saturating_duration_since(now))
                .fold(every, Duration::min)
                .max(Duration::from_millis(100));
            tokio::select! {
                _ = tokio::time::sleep(wake) => {}
                _ = shutdown.wait() => return,
            }
        }
    }

    /// Orders a certificate for `host` if it has none or it is due for renewal, unless a
    /// failure put the host in backoff.
    async fn check(&mut self, host: &str, settings: &AcmeSettings) {
        if self
            .backoff
            .get(host)
            .is_some_and(|b| b.next_try > Instant::now())
        {
            return;
        }
        let cert_path = self.certs_dir.join(host).join("cert.pem");
        let expiry = validity(&cert_path);
        if !due(expiry, settings.renew_before, SystemTime::now()) {
            return;
        }
        tracing::info!(
            host,
            renewal = expiry.is_some(),
            directory = %settings.directory,
            "ordering a certificate"
        );
        let ordered = tokio::time::timeout(ORDER_DEADLINE, self.order(host, settings)).await;
        match ordered.unwrap_or(Err(AcmeError::Deadline(ORDER_DEADLINE))) {
            Ok(()) => {
                self.backoff.remove(host);
                tracing::info!(host, "certificate issued and in use");
                (self.on_issued)();
            }
            Err(e) => {
                let failures = self.backoff.get(host).map_or(0, |b| b.failures) + 1;
                let wait = FIRST_RETRY
                    .saturating_mul(1 << (failures - 1).min(20))
                    .min(LAST_RETRY);
                tracing::warn!(host, error = %e, failures, retry_in = ?wait, "certificate order failed; the certificate in use (if any) stays");
                self.backoff.insert(
                    host.to_string(),
                    Backoff {
                        failures,
                        next_try: Instant::now() + wait,
                    },
                );
            }
        }
    }

    /// One order for `host`, from the account to the files.
    async fn order(&mut self, host: &str, settings: &AcmeSettings) -> Result<(), AcmeError> {
        let account = self.account(settings).await?;
        let ids = [Identifier::Dns(host.to_string())];
        let mut order = account.new_order(&NewOrder::new(&ids)).await?;
        let mut answers = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let mut authz = authz?;
            match authz.status {
                AuthorizationStatus::Valid => continue,
                AuthorizationStatus::Pending => {}
                other => return Err(AcmeError::Authorization(other)),
            }
            let kind = settings.challenge;
            let wanted = match kind {
                AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
                AcmeChallenge::Http01 => ChallengeType::Http01,
            };
            let mut challenge = authz
                .challenge(wanted)
                .ok_or(AcmeError::NoChallenge(kind))?;
            let key_auth = challenge.key_authorization();
            let key = match kind {
                AcmeChallenge::Http01 => {
                    lock(&self.challenges.http)
                        .insert(challenge.token.clone(), key_auth.as_str().to_string());
                    challenge.token.clone()
                }
                AcmeChallenge::TlsAlpn01 => {
                    let cert = alpn_certificate(host, key_auth.digest().as_ref(), &self.provider)?;
                    lock(&self.challenges.tls_alpn).insert(host.to_string(), Arc::new(cert));
                    host.to_string()
                }
            };
            answers.push(Answer {
                challenges: &self.challenges,
                kind,
                key,
            });
            challenge.set_ready().await?;
        }
        let polls = RetryPolicy::new()
            .initial_delay(Duration::from_millis(250))
            .timeout(Duration::from_secs(90));
        let status = order.poll_ready(&polls).await?;
        if status != OrderStatus::Ready {
            return Err(AcmeError::Order(status));
        }
        let key_pem = order.finalize().await?;
        let chain_pem = order.poll_certificate(&polls).await?;
        drop(answers);
        self.install(host, &chain_pem, &key_pem)
    }

    /// The account for the settings' directory and contact: read from `certs/.acme/`, or
    /// registered and saved there.
    async fn account(&mut self, settings: &AcmeSettings) -> Result<Account, AcmeError> {
        let path = self.certs_dir.join(".acme").join(account_file(settings));
        if let Some(account) = self.accounts.get(&path) {
            return Ok(account.clone());
        }
        let http = http_client(settings, self.provider.clone())?;
        let account = match std::fs::read(&path) {
            Ok(bytes) => {
                let credentials: AccountCredentials =
                    serde_json::from_slice(&bytes).map_err(|e| AcmeError::AccountFile {
                        path: path.clone(),
                        message: e.to_string(),
                    })?;
                Account::builder_with_http(http)
                    .from_credentials(credentials)
                    .await?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let (account, credentials) = Account::builder_with_http(http)
                    .create(
                        &NewAccount {
                            contact: &[&settings.contact],
                            terms_of_service_agreed: true,
                            only_return_existing: false,
                        },
                        settings.directory.clone(),
                        None,
                    )
                    .await?;
                let json = serde_json::to_vec_pretty(&credentials).map_err(|e| {
                    AcmeError::AccountFile {
                        path: path.clone(),
                        message: e.to_string(),
                    }
                })?;
                write_private(&path, &json)?;
                tracing::info!(directory = %settings.directory, file = %path.display(), "ACME account registered");
                account
            }
            Err(source) => return Err(AcmeError::File { path, source }),
        };
        self.accounts.insert(path, account.clone());
        Ok(account)
    }

    /// Writes the key, then the chain, each by rename: a reader between the two renames finds a
    /// key that does not match the old chain and keeps the certificates it has.
    fn install(&self, host: &str, chain_pem: &str, key_pem: &str) -> Result<(), AcmeError> {
        let dir = self.certs_dir.join(host);
        write_private(&dir.join("key.pem"), key_pem.as_bytes())?;
        write_private(&dir.join("cert.pem"), chain_pem.as_bytes())
    }
}

/// Whether a certificate valid over `validity` (not before, not after) must be renewed `now`:
/// when less than `renew_before` is left, or a third of its lifetime when that is unset (what
/// Let's Encrypt advises). No certificate at all is due at once.
pub fn due(
    validity: Option<(SystemTime, SystemTime)>,
    renew_before: Option<Duration>,
    now: SystemTime,
) -> bool {
    let Some((not_before, not_after)) = validity else {
        return true;
    };
    let lifetime = not_after.duration_since(not_before).unwrap_or_default();
    let margin = renew_before.unwrap_or(lifetime / 3);
    now + margin >= not_after
}

/// The validity of the first certificate in a PEM file, if it can be read.
pub fn validity(path: &Path) -> Option<(SystemTime, SystemTime)> {
    let pem = std::fs::read(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let at = |t: x509_parser::time::ASN1Time| {
        let secs = u64::try_from(t.timestamp()).unwrap_or(0);
        UNIX_EPOCH + Duration::from_secs(secs)
    };
    Some((
        at(cert.validity().not_before),
        at(cert.validity().not_after),
    ))
}

/// The account file's name: one account per directory and contact.
fn account_file(settings: &AcmeSettings) -> String {
    let digest = Sha256::digest(format!("{}\n{}", settings.directory, settings.contact));
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("account-{hex}.json")
}

/// Writes `bytes` to `path` by a rename, readable by the owner only (keys and account keys).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), AcmeError> {
    let file_err = |source| AcmeError::File {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(file_err)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("new")
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(file_err)?;
    file.write_all(bytes).map_err(file_err)?;
    file.sync_all().map_err(file_err)?;
    std::fs::rename(&tmp, path).map_err(file_err)
}

/// The self-signed certificate of a TLS-ALPN-01 answer: the host as its only name and the key
/// authorization's digest in the critical `acmeIdentifier` extension (RFC 8737 §3).
fn alpn_certificate(
    host: &str,
    digest: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, AcmeError> {
    let err = |e: &dyn std::fmt::Display| AcmeError::ChallengeCert(e.to_string());
    let mut params = rcgen::CertificateParams::new(vec![host.to_string()]).map_err(|e| err(&e))?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(|e| err(&e))?;
    let cert = params.self_signed(&key).map_err(|e| err(&e))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `CertifiedKey::from_der`: its key check parses the certificate as a server certificate,
    // which refuses the critical extension that this one exists to carry.
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| err(&e))?;
    Ok(CertifiedKey::new(
        vec![CertificateDer::from(cert.der().to_vec())],
        signing_key,
    ))
}

/// The HTTPS client that talks to the CA: the web's roots plus the site's `ca_file`.
struct AcmeHttp(Client<hyper_rustls::HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>);

impl HttpClient for AcmeHttp {
    fn request(
        &self,
        req: http::Request<BodyWrapper<Bytes>>,
    ) -> Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>> {
        let response = self.0.request(req);
        Box::pin(async move {
            response
                .await
                .map(BytesResponse::from)
                .map_err(|e| instant_acme::Error::Other(Box::new(e)))
        })
    }
}

fn http_client(
    settings: &AcmeSettings,
    provider: Arc<CryptoProvider>,
) -> Result<Box<dyn HttpClient>, AcmeError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in &settings.extra_roots {
        roots.add(cert.clone())?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(Duration::from_secs(10)));
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(http);
    Ok(Box::new(AcmeHttp(
        Client::builder(TokioExecutor::new()).build(https),
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn renewal_is_due_in_the_last_third_or_the_configured_margin() {
        let day = 86_400;
        let ninety = Some((at(0), at(90 * day)));
        assert!(due(None, None, at(0)));
        assert!(!due(ninety, None, at(59 * day)));
        assert!(due(ninety, None, at(60 * day)));
        assert!(!due(
            ninety,
            Some(Duration::from_secs(10 * day)),
            at(79 * day)
        ));
        assert!(due(
            ninety,
            Some(Duration::from_secs(10 * day)),
            at(80 * day)
        ));
        assert!(due(ninety, None, at(100 * day)));
    }

    #[test]
    fn answers_only_open_challenges() {
        let c = Challenges::default();
        lock(&c.http).insert("tok".into(), "tok.thumb".into());
        assert_eq!(
            c.http01("/.well-known/acme-challenge/tok").as_deref(),
            Some("tok.thumb")
        );
        assert_eq!(c.http01("/.well-known/acme-challenge/other"), None);
        assert_eq!(c.http01("/tok"), None);
        {
            let _answer = Answer {
                challenges: &c,
                kind: AcmeChallenge::Http01,
                key: "tok".into(),
            };
        }
        assert_eq!(c.http01("/.well-known/acme-challenge/tok"), None);
    }

    #[test]
    fn alpn_certificate_names_the_host_and_carries_the_digest() {
        let provider = rustls::crypto::ring::default_provider();
        let digest = [7u8; 32];
        let key = alpn_certificate("shop.example", &digest, &provider).unwrap();
        let der = key.cert[0].as_ref();
        let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(names, ["DNSName(shop.example)"]);
        let ext = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .unwrap();
        assert!(ext.critical);
        // OCTET STRING of 32 bytes.
        assert_eq!(&ext.value[..2], &[0x04, 0x20]);
        assert_eq!(&ext.value[2..], &digest);
    }
}
