//! Rule files, parsed once into validated, typed structs.
//!
//! Layout of a rules directory:
//! ```text
//! rules/server.toml          optional: listener limits shared by every site
//! rules/<site>/site.toml     one directory per site: hosts, origin, limits
//! ```
//! Loading reads every file, reports every problem as `path:line:col: message` and returns either a
//! complete [`Rules`] or all the diagnostics; it never returns half a configuration.

mod chat;
mod diag;
mod knowledge;
mod raw;
mod seo;

use std::collections::HashMap;
use std::fs;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Uri};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde::de::DeserializeOwned;
use toml::Spanned;

pub use chat::{
    ApiKey, BaseChat, ChatBackend, ChatExample, ChatLimits, ChatLlm, ChatRules, DEFAULT_THRESHOLD,
    base_chat, parse_examples,
};
use diag::file_diagnostic;
pub use diag::{Diagnostic, Position, RulesError, SourceFile};
pub use knowledge::{Market, RegEntry, base_regulations};
use raw::{RawOrigin, RawServer, RawSite};
pub use seo::{
    Alternatives, Field, Keyword, Keywords, Lead, Localized, Merchant, Organization, PageKind,
    PageRule, Pages, Part, PathPattern, Product, Products, ReturnCategory, ReturnFees,
    ReturnPolicy, ReviewRules, RewriteSettings, Shipping, SiteSeo, SuggestMode, Switcher, Template,
    is_date,
};

/// Everything loaded from one rules directory.
#[derive(Debug, Clone)]
pub struct Rules {
    pub dir: PathBuf,
    pub server: ServerSettings,
    pub sites: Vec<Site>,
}

/// Settings shared by every site (`rules/server.toml`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSettings {
    /// Memory for cached responses of all sites together (bytes of body and headers).
    pub cache_max_size: u64,
    /// Bearer token of the admin listener; `EDGESEO_ADMIN_TOKEN` in the environment also works.
    pub admin_token: Option<String>,
    /// Largest request head accepted; larger ones get 431.
    pub max_header_size: usize,
    /// Time a client has to send a complete request head (slowloris defence).
    pub header_read_timeout: Duration,
    /// A connection with no request in flight and no traffic for this long is closed.
    pub idle_timeout: Duration,
    /// On shutdown, in-flight requests get this long to finish.
    pub drain_timeout: Duration,
    /// Connections beyond this wait in the kernel's accept queue.
    pub max_connections: usize,
    /// HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Reload the rules when their files change (besides SIGHUP and `POST /reload`).
    pub watch_rules: bool,
    /// Quiet time after the last file event before reloading: one reload per save.
    pub watch_debounce: Duration,
    /// Instances sharing chat quotas, purges and reloads through Redis; `None` alone.
    pub fleet: Option<FleetSettings>,
    /// How often the certificates of `[tls] acme` sites are checked for renewal.
    pub acme_check_every: Duration,
}

/// `[fleet]`: the Redis server through which several instances act as one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetSettings {
    /// `redis://[user:password@]host[:port][/db]` or `redis+unix:///path/to/socket`.
    pub redis: String,
    /// Namespace of edgeseo's keys and channel in Redis (several fleets may share one server).
    pub key_prefix: String,
    /// Longest a request waits for Redis before the instance's own limits decide.
    pub timeout: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            cache_max_size: 256 << 20,
            admin_token: None,
            max_header_size: 64 * 1024,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(75),
            drain_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_concurrent_streams: 200,
            watch_rules: true,
            watch_debounce: Duration::from_millis(300),
            fleet: None,
            acme_check_every: Duration::from_secs(3600),
        }
    }
}

/// One site: the hosts it answers for and the origin behind it.
#[derive(Debug, Clone)]
pub struct Site {
    /// The directory name under `rules/`.
    pub name: String,
    /// Lower-case host names without port; `*.example.com` matches any subdomain.
    pub hosts: Vec<String>,
    pub origin: Origin,
    pub limits: SiteLimits,
    pub cache: CachePolicy,
    pub compress: Compress,
    pub https: Https,
    /// `[tls] acme`: certificates for the site's hosts from an ACME CA; `None` when the
    /// operator places them under certs/ by hand.
    pub acme: Option<Arc<AcmeSettings>>,
    pub websocket: Websocket,
    /// The customer-service chat endpoint; `None` when the site has no `[chat]`.
    pub chat: Option<Arc<ChatRules>>,
    /// Localized SEO rewriting; `None` for a site without `pages.toml` (plain proxying).
    pub seo: Option<Arc<SiteSeo>>,
    /// `[organization]`: the company behind the site, for structured data and chat answers.
    pub organization: Option<Arc<Organization>>,
}

#[derive(Debug, Clone)]
pub struct Origin {
    pub target: OriginTarget,
    /// Host header sent upstream; `None` sends the origin URL's authority.
    pub host: Option<HeaderValue>,
    pub connect_timeout: Duration,
    /// Time from sending the request until the origin's response head arrives.
    pub response_timeout: Duration,
    /// Extra trust anchors for an https origin with a private CA.
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub max_idle_connections: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginTarget {
    /// A real origin: scheme and authority only.
    Url {
        scheme: Scheme,
        authority: Authority,
    },
    /// A site compiled into the binary and served on a loopback port (`embedded = "demo"`).
    Embedded(EmbeddedSite),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EmbeddedSite {
    Demo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteLimits {
    /// Larger request bodies get 413.
    pub max_request_body: u64,
}

/// How a site's responses are cached (`[cache]` in site.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePolicy {
    pub enabled: bool,
    /// Larger responses stream through uncached.
    pub max_entry_size: usize,
    /// Longest a stale response is served while one refresh runs (the origin may ask for less).
    pub stale_while_revalidate: Duration,
    /// Longest a stale response stands in for an origin that is down or failing.
    pub stale_if_error: Duration,
    /// Requests carrying any of these cookies are never answered from, or stored in, the cache.
    pub session_cookies: Vec<String>,
    /// Cookies that never personalise a page (names, or prefixes ending in `*`); any other cookie
    /// limits a request to responses the origin marks `public`. edgeseo's own locale cookie is
    /// always among them.
    pub ignore_cookies: Vec<String>,
    /// Statuses that may be stored (each under its own status).
    pub statuses: Vec<u16>,
}

impl Default for CachePolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entry_size: 8 << 20,
            stale_while_revalidate: Duration::from_secs(60),
            stale_if_error: Duration::from_secs(600),
            session_cookies: Vec::new(),
            ignore_cookies: DEFAULT_IGNORED_COOKIES
                .iter()
                .map(|c| c.to_string())
                .collect(),
            statuses: vec![200, 203, 204, 300, 301, 308, 404, 410],
        }
    }
}

/// Shortest admin token accepted, from server.toml as from `EDGESEO_ADMIN_TOKEN`.
pub const MIN_ADMIN_TOKEN: usize = 16;

/// Analytics, advertising and consent cookies that browsers send with every page view.
pub const DEFAULT_IGNORED_COOKIES: [&str; 12] = [
    "_ga", "_ga_*", "_gid", "_gat*", "_gcl_*", "_fbp", "_fbc", "_hj*", "_clck", "_clsk", "_uetsid",
    "_uetvid",
];

impl CachePolicy {
    /// Whether a cookie of this name leaves the page the same for everyone.
    pub fn ignores_cookie(&self, name: &str) -> bool {
        name == crate::suggest::COOKIE
            || self
                .ignore_cookies
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => name == pattern,
                })
    }
}

/// HTTPS for visitors (`[https]` in site.toml).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Https {
    /// Plain-HTTP requests get 308 to the same URL over HTTPS (ACME HTTP-01 challenges excepted).
    pub redirect: bool,
    /// The public HTTPS port in redirects, when not 443.
    pub port: Option<u16>,
    /// The `Strict-Transport-Security` value sent on HTTPS responses, if any.
    pub hsts: Option<HeaderValue>,
}

/// Where and how a site's certificates are ordered (`[tls]` with `acme = true`).
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeSettings {
    /// The account's contact, `mailto:` and the address.
    pub contact: String,
    /// The CA's directory URL.
    pub directory: String,
    pub challenge: AcmeChallenge,
    /// Renew when less than this is left; `None`: when a third of the lifetime is left.
    pub renew_before: Option<Duration>,
    /// Extra trust anchors for the directory's HTTPS (a private CA such as a test server).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// Let's Encrypt's production directory, the default.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// How the CA checks that edgeseo answers for a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// A certificate presented on the HTTPS port to the protocol `acme-tls/1` (RFC 8737).
    TlsAlpn01,
    /// A token served at `/.well-known/acme-challenge/` on the HTTP port.
    Http01,
}

/// Upgraded connections (`[websocket]` in site.toml): WebSocket, and any other protocol a client
/// asks to switch to, passed to the origin and back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Websocket {
    /// `false`: the `Upgrade` header is dropped and the request proxied as plain HTTP.
    pub enabled: bool,
    /// An upgraded connection with no message (or, for other protocols, no byte) in either
    /// direction for this long is closed.
    pub idle_timeout: Duration,
    /// Largest WebSocket message, either direction; a larger one closes the connection with
    /// status 1009 (message too big) to both ends.
    pub max_message: usize,
}

impl Default for Websocket {
    fn default() -> Self {
        Self {
            enabled: true,
            idle_timeout: Duration::from_secs(60),
            max_message: 1 << 20,
        }
    }
}

/// Compression at the edge (`[compress]` in site.toml).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compress {
    /// Compress text responses the origin sends uncompressed (br, zstd or gzip, as the client
    /// prefers), and send rewritten pages in the client's preferred coding.
    pub enabled: bool,
    /// Smaller bodies of known size go out as they are: the coding's framing would outweigh the gain.
    pub min_size: u64,
}

impl Default for Compress {
    fn default() -> Self {
        Self {
            enabled: true,
            min_size: 1024,
        }
    }
}

impl Default for SiteLimits {
    fn default() -> Self {
        Self {
            max_request_body: 8 * 1024 * 1024,
        }
    }
}

impl Rules {
    /// Loads and validates a rules directory, reporting every problem at once.
    pub fn load(dir: &Path) -> Result<Rules, RulesError> {
        let mut diags = Vec::new();
        let server = load_server(&dir.join("server.toml"), &mut diags);
        let mut sites = Vec::new();
        match fs::read_dir(dir) {
            Ok(entries) => {
                // Hidden directories are not sites: `.git`, and the `..data` and timestamped
                // directories through which Kubernetes mounts a ConfigMap's files.
                let mut dirs: Vec<PathBuf> = entries
                    .filter_map(Result::ok)
                    .filter(|e| !e.file_name().as_encoded_bytes().starts_with(b"."))
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect();
                dirs.sort();
                for site_dir in dirs {
                    if let Some(site) = load_site(&site_dir, &mut diags) {
                        sites.push(site);
                    }
                }
            }
            Err(e) => diags.push(file_diagnostic(
                dir,
                format!("cannot read rules directory: {e}"),
            )),
        }
        if sites.is_empty() && diags.is_empty() {
            diags.push(file_diagnostic(
                dir,
                "no site: add a directory with a site.toml",
            ));
        }
        check_unique_hosts(&sites, dir, &mut diags);
        if diags.is_empty() {
            Ok(Rules {
                dir: dir.to_path_buf(),
                server: server.unwrap_or_default(),
                sites,
            })
        } else {
            Err(RulesError { diagnostics: diags })
        }
    }
}

fn read_source(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<SourceFile> {
    match fs::read_to_string(path) {
        Ok(text) => Some(SourceFile::new(path, text)),
        Err(e) => {
            diags.push(file_diagnostic(path, format!("cannot read: {e}")));
            None
        }
    }
}

fn parse_toml<T: DeserializeOwned>(src: &SourceFile, diags: &mut Vec<Diagnostic>) -> Option<T> {
    match toml::from_str(&src.text) {
        Ok(v) => Some(v),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            diags.push(src.diagnostic(span, e.message().trim().to_string()));
            None
        }
    }
}

fn load_server(path: &Path, diags: &mut Vec<Diagnostic>) -> Option<ServerSettings> {
    if !path.exists() {
        return Some(ServerSettings::default());
    }
    let src = read_source(path, diags)?;
    let raw: RawServer = parse_toml(&src, diags)?;
    let mut v = Validator::new(&src, diags);
    let d = ServerSettings::default();
    let l = &raw.limits;
    let admin_token = raw.admin.token.as_ref().and_then(|t| {
        if t.get_ref().len() >= MIN_ADMIN_TOKEN {
            Some(t.get_ref().clone())
        } else {
            v.error(
                t.span(),
                format!("admin token must be at least {MIN_ADMIN_TOKEN} characters"),
            );
            None
        }
    });
    Some(ServerSettings {
        cache_max_size: v.size(&raw.cache.max_size, d.cache_max_size, 1 << 20..=1 << 40),
        admin_token,
        max_header_size: v.size(&l.max_header_size, d.max_header_size as u64, 1024..=1 << 20)
            as usize,
        header_read_timeout: v.duration(&l.header_read_timeout, d.header_read_timeout),
        idle_timeout: v.duration(&l.idle_timeout, d.idle_timeout),
        drain_timeout: v.duration(&l.drain_timeout, d.drain_timeout),
        max_connections: v.count(&l.max_connections, d.max_connections as i64, 1..=1_000_000)
            as usize,
        max_concurrent_streams: v.count(
            &l.max_concurrent_streams,
            i64::from(d.max_concurrent_streams),
            1..=10_000,
        ) as u32,
        watch_rules: raw.reload.watch.unwrap_or(d.watch_rules),
        watch_debounce: v.duration(&raw.reload.debounce, d.watch_debounce),
        fleet: raw.fleet.as_ref().and_then(|f| v.fleet(f)),
        acme_check_every: v.duration(&raw.acme.check_every, d.acme_check_every),
    })
}

fn load_site(dir: &Path, diags: &mut Vec<Diagnostic>) -> Option<Site> {
    let path = dir.join("site.toml");
    if !path.exists() {
        diags.push(file_diagnostic(
            &path,
            "missing: every directory under rules/ is a site and needs a site.toml",
        ));
        return None;
    }
    let name = dir.file_name()?.to_string_lossy().into_owned();
    let src = read_source(&path, diags)?;
    let raw: RawSite = parse_toml(&src, diags)?;
    let before = diags.len();
    // Problems in the site's other files are collected apart while site.toml's validator holds
    // the list, and joined after.
    let mut other_files = Vec::new();
    let mut v = Validator::new(&src, diags);
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        v.error(
            0..0,
            format!("site directory name `{name}` must use only a-z, 0-9, `-` and `_`"),
        );
    }
    let hosts = v.hosts(&raw.hosts);
    let origin = v.origin(&raw.origin, dir);
    let limits = SiteLimits {
        max_request_body: v.size(
            &raw.limits.max_request_body,
            SiteLimits::default().max_request_body,
            0..=1 << 40,
        ),
    };
    let cache = v.cache_policy(&raw.cache);
    let compress = Compress {
        enabled: raw.compress.enabled.unwrap_or(Compress::default().enabled),
        min_size: v.size(
            &raw.compress.min_size,
            Compress::default().min_size,
            0..=1 << 30,
        ),
    };
    let https = v.https(&raw.https);
    let acme = v.acme(&raw.tls, &hosts, dir).map(Arc::new);
    let websocket = Websocket {
        enabled: raw
            .websocket
            .enabled
            .unwrap_or(Websocket::default().enabled),
        idle_timeout: v.duration(
            &raw.websocket.idle_timeout,
            Websocket::default().idle_timeout,
        ),
        max_message: v.size(
            &raw.websocket.max_message,
            Websocket::default().max_message as u64,
            16..=1 << 30,
        ) as usize,
    };
    // The company's facts feed the rewritten pages and the chat's answers.
    let organization = raw.organization.as_ref().map(|org| {
        if raw.chat.is_none() && !dir.join("pages.toml").exists() {
            v.error(
                org.span(),
                "[organization] is used by rewriting (a pages.toml next to site.toml) and by [chat]; this site has neither",
            );
        }
        v.organization(org.get_ref())
    });
    let seo = seo::load(dir, &raw, organization.as_ref(), &mut v, &mut other_files);
    let chat = chat::load(dir, &raw, origin.as_ref(), &mut v, &mut other_files);
    diags.append(&mut other_files);
    let ok = diags.len() == before;
    match origin {
        Some(origin) if ok => Some(Site {
            name,
            hosts,
            origin,
            limits,
            cache,
            compress,
            https,
            acme,
            websocket,
            chat: chat.map(Arc::new),
            seo: seo.map(Arc::new),
            organization: organization.map(Arc::new),
        }),
        _ => None,
    }
}

fn check_unique_hosts(sites: &[Site], dir: &Path, diags: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for site in sites {
        for host in &site.hosts {
            if let Some(first) = seen.insert(host, &site.name) {
                diags.push(file_diagnostic(
                    &dir.join(&site.name).join("site.toml"),
                    format!("host `{host}` is already served by site `{first}`"),
                ));
            }
        }
    }
}

/// Turns raw values into typed ones, recording a diagnostic for each bad value and substituting a
/// default so validation can go on and find the next problem.
struct Validator<'a> {
    src: &'a SourceFile,
    diags: &'a mut Vec<Diagnostic>,
}

impl<'a> Validator<'a> {
    fn new(src: &'a SourceFile, diags: &'a mut Vec<Diagnostic>) -> Self {
        Self { src, diags }
    }

    fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diags.push(self.src.diagnostic(span, message));
    }

    /// An optional text that must pass `ok`: the text, or an error at its position.
    fn checked<'v>(
        &mut self,
        value: Option<&'v toml::Spanned<String>>,
        ok: impl Fn(&str) -> bool,
        message: &str,
    ) -> Option<&'v str> {
        let value = value?;
        if ok(value.get_ref()) {
            Some(value.get_ref())
        } else {
            self.error(value.span(), message);
            None
        }
    }

    /// A CSS selector as lol_html reads it, or an error at its position.
    fn selector(&mut self, value: &toml::Spanned<String>) -> Option<lol_html::Selector> {
        match value.get_ref().parse::<lol_html::Selector>() {
            Ok(selector) => Some(selector),
            Err(e) => {
                self.error(value.span(), format!("invalid CSS selector: {e}"));
                None
            }
        }
    }

    fn fleet(&mut self, raw: &raw::RawFleet) -> Option<FleetSettings> {
        let url = raw.redis.get_ref();
        let supported = ["redis://", "redis+unix://", "unix://"]
            .iter()
            .any(|scheme| url.starts_with(scheme));
        if !supported {
            self.error(
                raw.redis.span(),
                "redis must be a redis://host[:port][/db] or redis+unix:///path URL",
            );
            return None;
        }
        if let Err(e) = redis::Client::open(url.as_str()) {
            self.error(raw.redis.span(), format!("invalid Redis URL: {e}"));
            return None;
        }
        let key_prefix = match &raw.key_prefix {
            None => "edgeseo".to_owned(),
            Some(p) => {
                let ok = !p.get_ref().is_empty()
                    && p.get_ref().len() <= 64
                    && p.get_ref().bytes().all(|b| b.is_ascii_graphic());
                if !ok {
                    self.error(
                        p.span(),
                        "key_prefix must be 1 to 64 visible ASCII characters",
                    );
                    return None;
                }
                p.get_ref().clone()
            }
        };
        let timeout = self.duration(&raw.timeout, Duration::from_millis(100));
        if let Some(t) = &raw.timeout
            && !(Duration::from_millis(1)..=Duration::from_secs(5)).contains(&timeout)
        {
            self.error(t.span(), "timeout must be between 1ms and 5s");
            return None;
        }
        Some(FleetSettings {
            redis: url.clone(),
            key_prefix,
            timeout,
        })
    }

    fn https(&mut self, raw: &raw::RawHttps) -> Https {
        let port = raw
            .port
            .as_ref()
            .and_then(|p| match u16::try_from(*p.get_ref()) {
                Ok(port) if port > 0 => (port != 443).then_some(port),
                _ => {
                    self.error(p.span(), "port must be between 1 and 65535");
                    None
                }
            });
        let include_subdomains = raw.hsts_include_subdomains.unwrap_or(false);
        let hsts = raw.hsts_max_age.as_ref().map(|age| {
            let secs = self.duration(&Some(age.clone()), Duration::ZERO).as_secs();
            let mut value = format!("max-age={secs}");
            if include_subdomains {
                value.push_str("; includeSubDomains");
            }
            if let Some(preload) = &raw.hsts_preload
                && *preload.get_ref()
            {
                // Browsers' preload lists take only these (hstspreload.org).
                if !include_subdomains || secs < 31_536_000 {
                    self.error(
                        preload.span(),
                        "hsts_preload needs hsts_include_subdomains = true and hsts_max_age of at least 365d",
                    );
                }
                value.push_str("; preload");
            }
            HeaderValue::from_str(&value).expect("digits and ASCII words")
        });
        if hsts.is_none()
            && let Some(preload) = &raw.hsts_preload
        {
            self.error(preload.span(), "hsts_preload needs hsts_max_age");
        }
        Https {
            redirect: raw.redirect.unwrap_or(false),
            port,
            hsts,
        }
    }

    fn acme(
        &mut self,
        raw: &raw::RawTls,
        hosts: &[String],
        site_dir: &Path,
    ) -> Option<AcmeSettings> {
        let Some(acme) = raw.acme.as_ref().filter(|a| *a.get_ref()) else {
            let stray = [
                &raw.email,
                &raw.directory,
                &raw.challenge,
                &raw.renew_before,
                &raw.ca_file,
            ];
            if let Some(key) = stray.into_iter().flatten().next() {
                self.error(key.span(), "[tls] settings apply with acme = true only");
            }
            return None;
        };
        if let Some(wild) = hosts.iter().find(|h| h.starts_with("*.")) {
            self.error(
                acme.span(),
                format!("acme cannot prove `{wild}` (HTTP-01 and TLS-ALPN-01 work for exact names): list the host names, or place a wildcard certificate under certs/ by hand"),
            );
        }
        let contact = match &raw.email {
            Some(email) if is_email(email.get_ref()) => format!("mailto:{}", email.get_ref()),
            Some(email) => {
                self.error(
                    email.span(),
                    "email must be an address such as ops@example.com",
                );
                return None;
            }
            None => {
                self.error(acme.span(), "acme = true needs `email`: the CA writes there about expiring certificates and account problems");
                return None;
            }
        };
        let directory = match &raw.directory {
            Some(url) => match url.get_ref().parse::<Uri>() {
                Ok(uri) if uri.scheme() == Some(&Scheme::HTTPS) && uri.host().is_some() => {
                    url.get_ref().clone()
                }
                _ => {
                    self.error(url.span(), "directory must be an https URL");
                    return None;
                }
            },
            None => LETS_ENCRYPT.to_string(),
        };
        let challenge = match raw.challenge.as_ref().map(|c| (c, c.get_ref().as_str())) {
            None | Some((_, "tls-alpn-01")) => AcmeChallenge::TlsAlpn01,
            Some((_, "http-01")) => AcmeChallenge::Http01,
            Some((c, _)) => {
                self.error(c.span(), "challenge must be \"tls-alpn-01\" or \"http-01\"");
                return None;
            }
        };
        let renew_before = raw
            .renew_before
            .as_ref()
            .map(|r| self.duration(&Some(r.clone()), Duration::ZERO));
        let extra_roots = raw
            .ca_file
            .as_ref()
            .map(|f| self.ca_file(f, site_dir))
            .unwrap_or_default();
        Some(AcmeSettings {
            contact,
            directory,
            challenge,
            renew_before,
            extra_roots,
        })
    }

    fn duration(&mut self, value: &Option<Spanned<String>>, default: Duration) -> Duration {
        let Some(value) = value else { return default };
        match humantime::parse_duration(value.get_ref()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.error(value.span(), "duration must be greater than zero");
                default
            }
            Err(e) => {
                self.error(
                    value.span(),
                    format!(
                        "invalid duration `{}` ({e}); write e.g. \"500ms\", \"10s\", \"2m\"",
                        value.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn size(
        &mut self,
        value: &Option<Spanned<String>>,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> u64 {
        let Some(value) = value else { return default };
        match parse_size(value.get_ref()) {
            Some(n) if range.contains(&n) => n,
            Some(n) => {
                self.error(
                    value.span(),
                    format!(
                        "size {n} bytes is out of range {}..={} bytes",
                        range.start(),
                        range.end()
                    ),
                );
                default
            }
            None => {
                self.error(
                    value.span(),
                    format!(
                        "invalid size `{}`; write e.g. \"512KiB\", \"8MiB\", \"1GiB\" or a number of bytes",
                        value.get_ref()
                    ),
                );
                default
            }
        }
    }

    fn count(
        &mut self,
        value: &Option<Spanned<i64>>,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
    ) -> i64 {
        let message = format!("out of range {}..={}", range.start(), range.end());
        self.count_or(value, default, range, |v| format!("{v} is {message}"))
    }

    /// `count` with its own words for a value out of range.
    fn count_or(
        &mut self,
        value: &Option<Spanned<i64>>,
        default: i64,
        range: std::ops::RangeInclusive<i64>,
        message: impl FnOnce(i64) -> String,
    ) -> i64 {
        let Some(value) = value else { return default };
        if range.contains(value.get_ref()) {
            *value.get_ref()
        } else {
            self.error(value.span(), message(*value.get_ref()));
            default
        }
    }

    fn cache_policy(&mut self, raw: &raw::RawSiteCache) -> CachePolicy {
        let d = CachePolicy::default();
        let statuses = match &raw.statuses {
            None => d.statuses.clone(),
            Some(list) => list
                .iter()
                .filter_map(|s| match u16::try_from(*s.get_ref()) {
                    Ok(code @ 200..=599) => Some(code),
                    _ => {
                        self.error(s.span(), "a cacheable status is a number from 200 to 599");
                        None
                    }
                })
                .collect(),
        };
        let session_cookies = raw
            .session_cookies
            .iter()
            .flatten()
            .map(|c| c.get_ref().clone())
            .collect();
        let ignore_cookies = match &raw.ignore_cookies {
            None => d.ignore_cookies.clone(),
            Some(list) => list
                .iter()
                .filter_map(|c| {
                    let name = c.get_ref().strip_suffix('*').unwrap_or(c.get_ref());
                    let token = !name.is_empty()
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}*".contains(&b));
                    if token {
                        Some(c.get_ref().clone())
                    } else {
                        self.error(
                            c.span(),
                            "a cookie name, or a prefix followed by `*` (e.g. \"_ga_*\")",
                        );
                        None
                    }
                })
                .collect(),
        };
        CachePolicy {
            enabled: raw.enabled.unwrap_or(d.enabled),
            max_entry_size: self.size(&raw.max_entry_size, d.max_entry_size as u64, 1..=1 << 30)
                as usize,
            stale_while_revalidate: self
                .duration_or_zero(&raw.stale_while_revalidate, d.stale_while_revalidate),
            stale_if_error: self.duration_or_zero(&raw.stale_if_error, d.stale_if_error),
            session_cookies,
            ignore_cookies,
            statuses,
        }
    }

    /// Like [`Validator::duration`], but `"0s"` is allowed (turns a feature off).
    fn duration_or_zero(&mut self, value: &Option<Spanned<String>>, default: Duration) -> Duration {
        match value {
            Some(v) if v.get_ref().trim() == "0" || v.get_ref().trim() == "0s" => Duration::ZERO,
            _ => self.duration(value, default),
        }
    }

    fn hosts(&mut self, hosts: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
        if hosts.get_ref().is_empty() {
            self.error(hosts.span(), "hosts must name at least one host");
        }
        let mut out = Vec::new();
        for host in hosts.get_ref() {
            match normalize_host_pattern(host.get_ref()) {
                Ok(h) if out.contains(&h) => {
                    self.error(host.span(), format!("host `{h}` is listed twice"))
                }
                Ok(h) => out.push(h),
                Err(msg) => self.error(host.span(), msg),
            }
        }
        out
    }

    fn origin(&mut self, raw: &Spanned<RawOrigin>, site_dir: &Path) -> Option<Origin> {
        let o = raw.get_ref();
        let target = match (&o.url, &o.embedded) {
            (Some(url), None) => self.origin_url(url),
            (None, Some(name)) => match name.get_ref().as_str() {
                "demo" => Some(OriginTarget::Embedded(EmbeddedSite::Demo)),
                other => {
                    self.error(
                        name.span(),
                        format!("unknown embedded site `{other}`; the only one is \"demo\""),
                    );
                    None
                }
            },
            (Some(_), Some(embedded)) => {
                self.error(embedded.span(), "set either `url` or `embedded`, not both");
                None
            }
            (None, None) => {
                self.error(
                    raw.span(),
                    "[origin] needs `url` (e.g. \"https://www.example.com\")",
                );
                None
            }
        };
        let host = o.host.as_ref().and_then(|h| {
            match (
                h.get_ref().parse::<Authority>(),
                HeaderValue::from_str(h.get_ref()),
            ) {
                (Ok(_), Ok(v)) => Some(v),
                _ => {
                    self.error(
                        h.span(),
                        format!("`{}` is not a valid Host header value", h.get_ref()),
                    );
                    None
                }
            }
        });
        let extra_roots = o
            .ca_file
            .as_ref()
            .map(|f| self.ca_file(f, site_dir))
            .unwrap_or_default();
        // Every value is checked before giving up on a bad target, so all problems get reported.
        let connect_timeout = self.duration(&o.connect_timeout, Duration::from_secs(5));
        let response_timeout = self.duration(&o.response_timeout, Duration::from_secs(60));
        let max_idle_connections = self.count(&o.max_idle_connections, 256, 0..=100_000) as usize;
        Some(Origin {
            target: target?,
            host,
            connect_timeout,
            response_timeout,
            extra_roots,
            max_idle_connections,
        })
    }

    fn origin_url(&mut self, url: &Spanned<String>) -> Option<OriginTarget> {
        let (scheme, authority, path) = self.http_url(url, "origin")?;
        if path.is_some() {
            self.error(
                url.span(),
                "origin url must not carry a path or query: request paths are forwarded as they are",
            );
            return None;
        }
        Some(OriginTarget::Url { scheme, authority })
    }

    /// An absolute http(s) URL: scheme, authority and the path and query if it has one beyond `/`.
    fn http_url(
        &mut self,
        url: &Spanned<String>,
        what: &str,
    ) -> Option<(Scheme, Authority, Option<PathAndQuery>)> {
        let text = url.get_ref();
        let uri: Uri = match text.parse() {
            Ok(u) => u,
            Err(e) => {
                self.error(url.span(), format!("invalid {what} url `{text}`: {e}"));
                return None;
            }
        };
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            self.error(
                url.span(),
                format!(
                    "{what} url `{text}` needs a scheme and host, e.g. \"http://10.0.0.5:8080\""
                ),
            );
            return None;
        };
        if *scheme != Scheme::HTTP && *scheme != Scheme::HTTPS {
            self.error(
                url.span(),
                format!("{what} url scheme must be http or https, not `{scheme}`"),
            );
            return None;
        }
        let path = uri
            .path_and_query()
            .filter(|p| p.as_str() != "/" && !p.as_str().is_empty())
            .cloned();
        Some((scheme.clone(), authority.clone(), path))
    }

    fn ca_file(&mut self, file: &Spanned<String>, site_dir: &Path) -> Vec<CertificateDer<'static>> {
        let path = site_dir.join(file.get_ref());
        let certs: Result<Vec<_>, _> = match CertificateDer::pem_file_iter(&path) {
            Ok(iter) => iter.collect(),
            Err(e) => {
                self.error(file.span(), format!("cannot read {}: {e}", path.display()));
                return Vec::new();
            }
        };
        match certs {
            Ok(certs) if !certs.is_empty() => certs,
            Ok(_) => {
                self.error(
                    file.span(),
                    format!("{} holds no PEM certificate", path.display()),
                );
                Vec::new()
            }
            Err(e) => {
                self.error(
                    file.span(),
                    format!("{} is not valid PEM: {e}", path.display()),
                );
                Vec::new()
            }
        }
    }
}

/// A plausible mail address: something, `@`, a domain with a dot, no spaces.
fn is_email(text: &str) -> bool {
    text.split_once('@').is_some_and(|(user, domain)| {
        !user.is_empty() && domain.contains('.') && !text.chars().any(char::is_whitespace)
    })
}

/// Parses "8MiB", "512 KiB", "1GB", "1048576" into bytes.
fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Validates one `hosts` entry: a host name or IP literal without port, optionally `*.` + domain.
fn normalize_host_pattern(host: &str) -> Result<String, String> {
    let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
    let h = h
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .map_or(h.clone(), str::to_string);
    if h.is_empty() {
        return Err("host must not be empty".into());
    }
    if h.parse::<std::net::IpAddr>().is_ok() {
        return Ok(h);
    }
    let name = h.strip_prefix("*.").unwrap_or(&h);
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if valid {
        Ok(h)
    } else {
        Err(format!(
            "`{host}` is not a host name (no port, no scheme; `*.example.com` for subdomains)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("8MiB"), Some(8 << 20));
        assert_eq!(parse_size("512 KiB"), Some(512 << 10));
        assert_eq!(parse_size("1000"), Some(1000));
        assert_eq!(parse_size("2 parsecs"), None);
    }

    #[test]
    fn host_patterns() {
        assert_eq!(
            normalize_host_pattern("WWW.Example.com.").unwrap(),
            "www.example.com"
        );
        assert_eq!(normalize_host_pattern("[::1]").unwrap(), "::1");
        assert_eq!(
            normalize_host_pattern("*.example.com").unwrap(),
            "*.example.com"
        );
        assert!(normalize_host_pattern("example.com:8080").is_err());
        assert!(normalize_host_pattern("http://example.com").is_err());
    }
}
