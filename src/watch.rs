//! Reloads what a directory holds when its files change: the rules (as SIGHUP and
//! `POST /reload` do) and the certificates.
//!
//! Owns: watching a directory and turning a burst of file events into one call. The directory
//! is watched recursively, never single files: editors save by writing a new file and renaming
//! it over the old one, and certificate tools replace a host's directory, which a watch on the
//! old file would not see.
//! Must never: react to events that reading the files itself causes (opening, reading), which
//! would reload forever.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use crate::control::Control;

/// Watches while it lives.
pub struct DirWatcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

/// Calls `changed` (on the watcher's thread) once the files under `dir` have changed and then
/// been quiet for `debounce`.
pub fn watch(
    dir: &Path,
    debounce: Duration,
    changed: impl Fn() + Send + 'static,
) -> Result<DirWatcher, notify::Error> {
    let what = dir.display().to_string();
    let mut debouncer =
        new_debouncer(
            debounce,
            None,
            move |result: DebounceEventResult| match result {
                Ok(events) if events.iter().any(|e| changes_content(&e.kind)) => changed(),
                Ok(_) => {}
                Err(errors) => {
                    for e in errors {
                        tracing::warn!(error = %e, dir = %what, "watching a directory");
                    }
                }
            },
        )?;
    debouncer.watch(dir, RecursiveMode::Recursive)?;
    Ok(DirWatcher {
        _debouncer: debouncer,
    })
}

/// Reloads the rules through `control` when their files change; an invalid edit is refused
/// there and the previous rules keep serving.
pub fn rules(
    dir: &Path,
    debounce: Duration,
    control: Arc<Control>,
) -> Result<DirWatcher, notify::Error> {
    // Logged by the reload itself.
    watch(dir, debounce, move || {
        let _ = control.reload("file change");
    })
}

/// Swaps in the certificates under `dir` when their files change; a broken certificate or key
/// is refused and the previous ones keep serving.
pub fn certificates(
    dir: &Path,
    debounce: Duration,
    live: Arc<crate::tls::LiveCerts>,
) -> Result<DirWatcher, notify::Error> {
    let dir_owned = dir.to_path_buf();
    watch(dir, debounce, move || match live.reload(&dir_owned) {
        Ok(hosts) => tracing::info!(hosts, "certificates changed on disk: reloaded"),
        Err(e) => tracing::error!(
            "certificates changed on disk but cannot be used; the previous ones keep serving: {e}"
        ),
    })
}

/// Events that can change what the rules say: files created, written, renamed or removed.
fn changes_content(kind: &EventKind) -> bool {
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}
