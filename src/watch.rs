//! Reloads the rules when their files change, as SIGHUP and `POST /reload` do.
//!
//! Owns: watching the rules directory and turning a burst of file events into one reload.
//! The directory is watched recursively, never single files: editors save by writing a new
//! file and renaming it over the old one, which a watch on the old file would not see.
//! Must never: reload on events that reading the rules itself causes (opening, reading), which
//! would reload forever.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer};

use crate::app::Control;

/// Watches while it lives.
pub struct RulesWatcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

/// Starts watching `dir`: once events stop for `debounce`, the rules are reloaded through
/// `control` (an invalid edit is refused there and the old rules keep serving).
pub fn watch(
    dir: &Path,
    debounce: Duration,
    control: Arc<Control>,
) -> Result<RulesWatcher, notify::Error> {
    let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
        match result {
            Ok(events) if events.iter().any(|e| changes_content(&e.kind)) => {
                match control.reload() {
                    Ok(()) => tracing::info!("rules changed on disk: reloaded"),
                    Err(e) => tracing::error!(
                        "rules changed on disk but are invalid; the previous rules keep serving: {e}"
                    ),
                }
            }
            Ok(_) => {}
            Err(errors) => {
                for e in errors {
                    tracing::warn!(error = %e, "watching the rules directory");
                }
            }
        }
    })?;
    debouncer.watch(dir, RecursiveMode::Recursive)?;
    Ok(RulesWatcher {
        _debouncer: debouncer,
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
