//! What the admin listener, the rules watcher and signals act on: the live rules, the cache and
//! the metrics. A module of its own so that the rooms that use it (admin, watch) and the one that
//! builds it (app) each depend on it, and not on each other.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::cache::PageCache;
use crate::config::{Rules, RulesError};
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::sites::{BuildError, Runtime};
use crate::upstream::EmbeddedOrigins;

/// Why a reload was refused; the running rules stay.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// Not a `source`: the message already lists every diagnostic.
    #[error("invalid rules:\n{0}")]
    Rules(RulesError),
    #[error(transparent)]
    Build(#[from] BuildError),
}

pub struct Control {
    rules_dir: PathBuf,
    embedded: EmbeddedOrigins,
    runtime: Arc<ArcSwap<Runtime>>,
    pub cache: Arc<PageCache>,
    /// What the request path counts, for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The other instances, when `[fleet]` shares quotas, purges and reloads with them.
    pub fleet: Option<Arc<Fleet>>,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    /// Why the rules on disk were last refused, until a reload succeeds.
    refused: Mutex<Option<String>>,
    /// One reload at a time (a file change and a SIGHUP at once).
    reloading: Mutex<()>,
}

impl Control {
    pub fn new(
        rules_dir: PathBuf,
        embedded: EmbeddedOrigins,
        runtime: Arc<ArcSwap<Runtime>>,
        cache: Arc<PageCache>,
        metrics: Arc<Metrics>,
        fleet: Option<Arc<Fleet>>,
    ) -> Self {
        Self {
            fleet,
            rules_dir,
            embedded,
            runtime,
            cache,
            metrics,
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            refused: Mutex::new(None),
            reloading: Mutex::new(()),
        }
    }

    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.load_full()
    }

    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// Why the rules on disk were refused at the last reload, or `None` if it succeeded (the
    /// rules serving are then the ones on disk).
    pub fn refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the rules again and swaps them in; on any error the running rules stay. Cached
    /// pages were rendered by the old rules, so a successful reload empties the cache. Logged
    /// here, whatever asked for it (`trigger`: a signal, the admin API, a file change).
    pub fn reload(&self, trigger: &'static str) -> Result<(), ReloadError> {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        let built = Rules::load(&self.rules_dir)
            .map_err(ReloadError::Rules)
            .and_then(|rules| {
                if rules.server.fleet.as_ref() != self.fleet.as_ref().map(|f| f.settings()) {
                    tracing::warn!(
                        "[fleet] changed in server.toml: takes effect when edgeseo restarts"
                    );
                }
                Ok(Runtime::build(rules, &self.embedded, self.fleet.as_ref())?)
            });
        match built {
            Ok(runtime) => {
                self.runtime.store(Arc::new(runtime));
                self.cache.purge_all();
                self.reloads.fetch_add(1, Ordering::Relaxed);
                *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = None;
                tracing::info!(trigger, "rules reloaded");
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    trigger,
                    "reload refused, the previous rules keep serving: {e}"
                );
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                *self.refused.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
                Err(e)
            }
        }
    }
}
