//! Assembles a running edgeseo: loads the rules, starts the embedded origins they name, binds the
//! listeners and serves until shut down. Reloading builds a complete new [`Runtime`] and swaps it in
//! only when the new rules are valid, so a broken edit never stops a site.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::acme::{self, Challenges};
use crate::admin::Admin;
use crate::cache::PageCache;
use crate::config::{EmbeddedSite, OriginTarget, Rules, RulesError, ServerSettings};
use crate::control::{Control, ReloadError};
use crate::demo::DemoSite;
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::proxy::Proxy;
use crate::server::{self, Listener, Shutdown};
use crate::sites::{BuildError, Runtime};
use crate::tls::{self, TlsError};
use crate::upstream::EmbeddedOrigins;

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub rules_dir: PathBuf,
    pub listen: SocketAddr,
    pub tls_listen: Option<SocketAddr>,
    pub certs_dir: PathBuf,
    /// Where an embedded site (the demo) listens when the rules name one.
    pub embedded_listen: SocketAddr,
    /// The admin listener (health, metrics, purge, reload), if wanted.
    pub admin_listen: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Not a `source`: the message already lists every diagnostic, and a printed error chain
    /// would list them twice.
    #[error("invalid rules:\n{0}")]
    Rules(RulesError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error(
        "the admin listener needs a token: set [admin] token in server.toml or EDGESEO_ADMIN_TOKEN"
    )]
    NoAdminToken,
    #[error(
        "EDGESEO_ADMIN_TOKEN must be at least {} characters",
        crate::config::MIN_ADMIN_TOKEN
    )]
    WeakAdminToken,
    #[error("[fleet] redis: {0}")]
    Fleet(#[from] redis::RedisError),
}

impl From<RulesError> for StartError {
    fn from(e: RulesError) -> Self {
        StartError::Rules(e)
    }
}

pub struct App {
    pub http_addr: SocketAddr,
    pub https_addr: Option<SocketAddr>,
    pub admin_addr: Option<SocketAddr>,
    pub embedded: EmbeddedOrigins,
    pub control: Arc<Control>,
    /// Reload the rules and the certificates when their files change (`[reload] watch`).
    _watchers: Vec<crate::watch::DirWatcher>,
    stop_proxy: watch::Sender<bool>,
    proxy_tasks: JoinSet<()>,
    stop_embedded: watch::Sender<bool>,
    embedded_tasks: JoinSet<()>,
}

impl App {
    pub async fn start(opts: ServeOptions) -> Result<App, StartError> {
        let rules = Rules::load(&opts.rules_dir)?;
        let settings = rules.server.clone();

        let (stop_embedded, embedded_shutdown) = Shutdown::new();
        let mut embedded_tasks = JoinSet::new();
        let mut embedded = EmbeddedOrigins::default();
        let wants_demo = rules
            .sites
            .iter()
            .any(|s| s.origin.target == OriginTarget::Embedded(EmbeddedSite::Demo));
        if wants_demo {
            let tcp = bind(opts.embedded_listen).await?;
            embedded.demo = Some(local_addr(&tcp, opts.embedded_listen)?);
            let listener = Listener { tcp, tls: None };
            embedded_tasks.spawn(server::serve(
                listener,
                Arc::new(DemoSite),
                ServerSettings::default(),
                embedded_shutdown,
            ));
        }

        let cache = PageCache::new(settings.cache_max_size);
        let fleet = settings.fleet.clone().map(Fleet::start).transpose()?;
        let runtime = Arc::new(ArcSwap::from_pointee(Runtime::build(
            rules,
            &embedded,
            fleet.as_ref(),
        )?));
        let metrics = Arc::new(Metrics::new());
        let challenges = Arc::new(Challenges::default());
        let proxy = Arc::new(Proxy::new(
            runtime.clone(),
            cache.clone(),
            metrics.clone(),
            challenges.clone(),
        ));
        let (stop_proxy, proxy_shutdown) = Shutdown::new();
        let mut proxy_tasks = JoinSet::new();

        let tcp = bind(opts.listen).await?;
        let http_addr = local_addr(&tcp, opts.listen)?;
        proxy_tasks.spawn(server::serve(
            Listener { tcp, tls: None },
            proxy.clone(),
            settings.clone(),
            proxy_shutdown.clone(),
        ));
        let control = Arc::new(Control::new(
            opts.rules_dir.clone(),
            embedded.clone(),
            runtime,
            cache,
            metrics,
            fleet.clone(),
        ));
        if let Some(fleet) = fleet {
            let (control, mut shutdown) = (control.clone(), proxy_shutdown.clone());
            proxy_tasks.spawn(async move {
                tokio::select! {
                    _ = crate::fleet::listen(fleet, control) => {}
                    _ = shutdown.wait() => {}
                }
            });
        }
        let mut watchers = Vec::new();
        if settings.watch_rules {
            let watched =
                crate::watch::rules(&opts.rules_dir, settings.watch_debounce, control.clone());
            // Without a watcher the rules still reload on SIGHUP and `POST /reload`.
            watchers.extend(
                watched
                    .inspect_err(|e| tracing::warn!(error = %e, "cannot watch the rules directory; reload with SIGHUP or POST /reload"))
                    .ok(),
            );
        }
        let mut admin_addr = None;
        if let Some(addr) = opts.admin_listen {
            let from_env = std::env::var("EDGESEO_ADMIN_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
            if from_env
                .as_ref()
                .is_some_and(|t| t.len() < crate::config::MIN_ADMIN_TOKEN)
            {
                return Err(StartError::WeakAdminToken);
            }
            let token = from_env
                .or_else(|| settings.admin_token.clone())
                .ok_or(StartError::NoAdminToken)?;
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "the admin listener (purge, reload, metrics) is reachable beyond this machine; only its token protects it");
            }
            let tcp = bind(addr).await?;
            admin_addr = Some(local_addr(&tcp, addr)?);
            proxy_tasks.spawn(server::serve(
                Listener { tcp, tls: None },
                Arc::new(Admin::new(token, control.clone())),
                ServerSettings::default(),
                proxy_shutdown.clone(),
            ));
        }
        // Limiter state of chat clients not seen lately is dropped, so memory stays bounded.
        {
            let control = control.clone();
            let mut shutdown = proxy_shutdown.clone();
            proxy_tasks.spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
                loop {
                    tokio::select! {
                        _ = tick.tick() => control.runtime().sites().filter_map(|s| s.chat.as_ref()).for_each(|c| c.prune()),
                        _ = shutdown.wait() => return,
                    }
                }
            });
        }
        let mut https_addr = None;
        let mut live_certs = None;
        if let Some(addr) = opts.tls_listen {
            let any_acme = control.runtime().sites().any(|s| s.config.acme.is_some());
            let (acceptor, live) = tls::acceptor(&opts.certs_dir, challenges.clone(), any_acme)?;
            live_certs = Some(live.clone());
            if settings.watch_rules {
                let watched =
                    crate::watch::certificates(&opts.certs_dir, settings.watch_debounce, live);
                watchers.extend(
                    watched
                        .inspect_err(|e| tracing::warn!(error = %e, "cannot watch the certificates directory; restart to change certificates"))
                        .ok(),
                );
            }
            let tcp = bind(addr).await?;
            https_addr = Some(local_addr(&tcp, addr)?);
            proxy_tasks.spawn(server::serve(
                Listener {
                    tcp,
                    tls: Some(acceptor),
                },
                proxy,
                settings.clone(),
                proxy_shutdown.clone(),
            ));
        }
        // Idle while no site has `[tls] acme`; a reload that adds one is picked up.
        let certs_dir = opts.certs_dir.clone();
        let on_issued = Box::new(move || {
            if let Some(live) = &live_certs
                && let Err(e) = live.reload(&certs_dir)
            {
                tracing::error!(
                    "new certificate written but the directory cannot be used; the previous certificates keep serving: {e}"
                );
            }
        });
        proxy_tasks.spawn(
            acme::Manager::new(opts.certs_dir.clone(), challenges, on_issued).run(
                control.clone(),
                settings.acme_check_every,
                proxy_shutdown,
            ),
        );

        Ok(App {
            http_addr,
            https_addr,
            admin_addr,
            embedded,
            control,
            _watchers: watchers,
            stop_proxy,
            proxy_tasks,
            stop_embedded,
            embedded_tasks,
        })
    }

    /// See [`Control::reload`].
    pub fn reload(&self, trigger: &'static str) -> Result<(), ReloadError> {
        self.control.reload(trigger)
    }

    pub fn cache(&self) -> &Arc<PageCache> {
        &self.control.cache
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain timeout), then stops the
    /// embedded origins, which in-flight proxied requests may still have needed.
    pub async fn shutdown(mut self) {
        let _ = self.stop_proxy.send(true);
        while self.proxy_tasks.join_next().await.is_some() {}
        let _ = self.stop_embedded.send(true);
        while self.embedded_tasks.join_next().await.is_some() {}
    }
}

/// For a command that talks to one site's origin (`edgeseo translate extract`): starts the site
/// compiled into the binary that `site` names, on a loopback port, until the returned sender
/// is dropped.
pub async fn start_embedded_origin(
    site: &crate::config::Site,
) -> Result<(EmbeddedOrigins, tokio::sync::watch::Sender<bool>), StartError> {
    let (stop, shutdown) = Shutdown::new();
    let mut embedded = EmbeddedOrigins::default();
    if site.origin.target == OriginTarget::Embedded(EmbeddedSite::Demo) {
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let tcp = bind(addr).await?;
        embedded.demo = Some(local_addr(&tcp, addr)?);
        tokio::spawn(server::serve(
            Listener { tcp, tls: None },
            Arc::new(DemoSite),
            ServerSettings::default(),
            shutdown,
        ));
    }
    Ok((embedded, stop))
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

fn local_addr(tcp: &TcpListener, addr: SocketAddr) -> Result<SocketAddr, StartError> {
    tcp.local_addr()
        .map_err(|source| StartError::Bind { addr, source })
}
