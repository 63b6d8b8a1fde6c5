//! The connection to a site's origin: one pooled HTTP client per site, http or https (rustls), with
//! connect and response timeouts, and the classification of its failures into [`ProxyError`]s.
//! Clients made for a URL (audit, stress, translation services) may reach it through an HTTP
//! proxy's CONNECT tunnel.

use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, Uri, Version, header};
use http_body_util::LengthLimitError;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::body::{Body, BoxError};
use crate::config::{Origin, OriginTarget};
use crate::error::{ClientBodyError, ProxyError};

/// Where the sites compiled into the binary are listening, once started.
#[derive(Debug, Clone, Default)]
pub struct EmbeddedOrigins {
    pub demo: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the embedded demo site is not running")]
    EmbeddedNotRunning,
    #[error("invalid extra CA certificate: {0}")]
    BadRoot(#[from] rustls::Error),
    #[error("URL {0:?}: expected http(s)://host[:port]/path")]
    BadUrl(String),
    #[error("proxy {0:?}: expected http://host:port")]
    BadProxy(String),
}

/// Timeouts and pool size of a client made for one URL (`Upstream::for_url`).
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub max_idle_connections: usize,
    /// `http://host:port` of an HTTP proxy to reach the URL through (a CONNECT tunnel, for http
    /// and https URLs alike), e.g. one in the buyer's country.
    pub via: Option<String>,
}

/// Straight to the origin, or through a proxy's tunnel.
enum Pool {
    Direct(Client<HttpsConnector<HttpConnector>, Body>),
    Tunnel(Client<HttpsConnector<Tunnel<HttpConnector>>, Body>),
}

impl Pool {
    async fn request(
        &self,
        req: Request<Body>,
    ) -> Result<Response<Incoming>, hyper_util::client::legacy::Error> {
        match self {
            Pool::Direct(client) => client.request(req).await,
            Pool::Tunnel(client) => client.request(req).await,
        }
    }
}

pub struct Upstream {
    client: Pool,
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    response_timeout: Duration,
}

impl Upstream {
    pub fn new(origin: &Origin, embedded: &EmbeddedOrigins) -> Result<Self, UpstreamError> {
        Self::build(origin, embedded, None)
    }

    fn build(
        origin: &Origin,
        embedded: &EmbeddedOrigins,
        via: Option<Uri>,
    ) -> Result<Self, UpstreamError> {
        let (scheme, authority) = match &origin.target {
            OriginTarget::Url { scheme, authority } => (scheme.clone(), authority.clone()),
            OriginTarget::Embedded(_) => {
                let addr = embedded.demo.ok_or(UpstreamError::EmbeddedNotRunning)?;
                let authority = addr
                    .to_string()
                    .parse()
                    .expect("socket address is an authority");
                (Scheme::HTTP, authority)
            }
        };
        let host = match &origin.host {
            Some(h) => h.clone(),
            None => HeaderValue::from_str(authority.as_str()).expect("authority is a header value"),
        };

        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(origin.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));

        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for cert in &origin.extra_roots {
            roots.add(cert.clone())?;
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1();
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(origin.max_idle_connections)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let client = match via {
            None => Pool::Direct(builder.build(https.wrap_connector(http))),
            Some(proxy) => {
                Pool::Tunnel(builder.build(https.wrap_connector(Tunnel::new(proxy, http))))
            }
        };
        // The tunnel is opened to the authority's port, which must therefore be explicit.
        let authority = match (&client, authority.port()) {
            (Pool::Tunnel(_), None) => {
                let port = if scheme == Scheme::HTTPS { 443 } else { 80 };
                format!("{}:{port}", authority.host())
                    .parse()
                    .expect("host and port are an authority")
            }
            _ => authority,
        };
        Ok(Self {
            client,
            scheme,
            authority,
            host,
            response_timeout: origin.response_timeout,
        })
    }

    /// A client for the service at `url` (a machine-translation API, a chat endpoint under load),
    /// and the URL's path, which requests to it go to.
    pub fn for_url(
        url: &str,
        settings: ClientSettings,
    ) -> Result<(Upstream, PathAndQuery), UpstreamError> {
        let bad = || UpstreamError::BadUrl(url.to_owned());
        let uri: Uri = url.parse().map_err(|_| bad())?;
        let scheme = uri.scheme().cloned().ok_or_else(bad)?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(bad());
        }
        let authority = uri.authority().cloned().ok_or_else(bad)?;
        let path = uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let via = match &settings.via {
            None => None,
            Some(proxy) => Some(proxy_uri(proxy)?),
        };
        let origin = Origin {
            target: OriginTarget::Url { scheme, authority },
            host: None,
            connect_timeout: settings.connect_timeout,
            response_timeout: settings.response_timeout,
            extra_roots: Vec::new(),
            max_idle_connections: settings.max_idle_connections,
        };
        Ok((
            Upstream::build(&origin, &EmbeddedOrigins::default(), via)?,
            path,
        ))
    }

    /// Sends a request (path and headers already prepared) and waits for the response head.
    pub async fn send(&self, mut req: Request<Body>) -> Result<Response<Incoming>, ProxyError> {
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path)
            .build()
            .expect("scheme, authority and path are valid");
        // The origin is spoken to over HTTP/1.1 whatever the client used.
        *req.version_mut() = Version::HTTP_11;
        req.headers_mut().insert(header::HOST, self.host.clone());

        match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(e)) => Err(classify(e, self.response_timeout)),
            Err(_) => Err(ProxyError::OriginTimeout(self.response_timeout)),
        }
    }
}

/// `http://host:port` (a trailing `/` allowed) of an HTTP proxy.
fn proxy_uri(proxy: &str) -> Result<Uri, UpstreamError> {
    let bad = || UpstreamError::BadProxy(proxy.to_owned());
    let uri: Uri = proxy.parse().map_err(|_| bad())?;
    let plain = uri.scheme() == Some(&Scheme::HTTP)
        && uri.port().is_some()
        && uri.path_and_query().is_none_or(|p| p.as_str() == "/");
    if plain { Ok(uri) } else { Err(bad()) }
}

fn classify(err: hyper_util::client::legacy::Error, waited: Duration) -> ProxyError {
    // Only the size limit wrapped around the client's body produces this error.
    if find_source::<LengthLimitError>(&err).is_some() {
        return ProxyError::BodyTooLarge;
    }
    if let Some(client) = find_source::<ClientBodyError>(&err) {
        return ProxyError::ClientBody(client.to_string().into());
    }
    let timed_out = find_source::<std::io::Error>(&err)
        .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut);
    if timed_out {
        ProxyError::OriginTimeout(waited)
    } else if err.is_connect() {
        ProxyError::OriginUnreachable(Box::new(err) as BoxError)
    } else {
        ProxyError::OriginProtocol(Box::new(err) as BoxError)
    }
}

fn find_source<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}
