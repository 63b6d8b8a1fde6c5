//! The process's log: `tracing` to stderr, with warnings and errors limited per call site, so
//! that one attack or one failing origin (hundreds of identical lines a second) cannot bury the
//! rest of the log or slow the server down writing it. What is held back is counted for
//! `/metrics` (`edgeseo_log_suppressed_total`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tracing::callsite::Identifier;
use tracing::subscriber::Interest;
use tracing::{Level, Metadata};
use tracing_subscriber::layer::{Context, Filter};

/// Warnings and errors a call site may write per second; the rest of that second is dropped.
pub const REPEATS_PER_SECOND: u32 = 10;

static SUPPRESSED: AtomicU64 = AtomicU64::new(0);

/// Log lines held back since the process started.
pub fn suppressed() -> u64 {
    SUPPRESSED.load(Ordering::Relaxed)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, its fields at the top level (for log shippers).
    Json,
}

/// Logs to stderr at `level` (any `RUST_LOG`-style directives, e.g. `info` or
/// `warn,edgeseo::proxy=debug`; `RUST_LOG` applies when no level is given), with [`Repeats`] on
/// top. The access log (`edgeseo::access`, one line per request) is on only with `access`.
/// Fails, logging nothing, when `level` is not a valid directive.
pub fn init(
    format: Format,
    level: Option<&str>,
    access: bool,
) -> Result<(), tracing_subscriber::filter::ParseError> {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let env = match level {
        Some(level) => tracing_subscriber::EnvFilter::try_new(level)?,
        None => {
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into())
        }
    };
    let access = if access { "info" } else { "off" };
    let env = env.add_directive(format!("edgeseo::access={access}").parse()?);
    let layer = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let layer = match format {
        Format::Text => layer.boxed(),
        Format::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(env.and(Repeats::new(REPEATS_PER_SECOND))))
        .init();
    Ok(())
}

/// Lets through at most `per_second` warnings and errors of each call site in every second;
/// everything else (info, debug, the access log) passes untouched.
pub struct Repeats {
    per_second: u32,
    start: Instant,
    /// Per call site: the second of the current window and the events let through in it.
    seen: Mutex<HashMap<Identifier, (u64, u32)>>,
}

impl Repeats {
    pub fn new(per_second: u32) -> Self {
        Self {
            per_second,
            start: Instant::now(),
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn allow(&self, callsite: Identifier) -> bool {
        let second = self.start.elapsed().as_secs();
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let (window, count) = seen.entry(callsite).or_insert((second, 0));
        if *window != second {
            (*window, *count) = (second, 0);
        }
        *count += 1;
        let allowed = *count <= self.per_second;
        if !allowed {
            SUPPRESSED.fetch_add(1, Ordering::Relaxed);
        }
        allowed
    }
}

impl<S> Filter<S> for Repeats {
    fn enabled(&self, meta: &Metadata<'_>, _: &Context<'_, S>) -> bool {
        if !meta.is_event() || *meta.level() > Level::WARN {
            return true;
        }
        self.allow(meta.callsite())
    }

    fn callsite_enabled(&self, _: &'static Metadata<'static>) -> Interest {
        // Decided per event: the same call site is let through or not depending on the clock.
        Interest::sometimes()
    }
}

/// What a test's subscriber wrote: clone it into `with_writer(move || lines.clone())`.
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct Lines(std::sync::Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl Lines {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

#[cfg(test)]
impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn a_flood_of_one_warning_is_cut_to_the_limit_and_counted() {
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_filter(Repeats::new(REPEATS_PER_SECOND));
        let subscriber = tracing_subscriber::registry().with(layer);
        let before = suppressed();
        tracing::subscriber::with_default(subscriber, || {
            // Well within one second: one call site, 600 times, as an attack makes it.
            for i in 0..600 {
                tracing::warn!(i, "stream reset by peer");
            }
            tracing::error!("a different failure");
            for i in 0..5 {
                tracing::info!(i, "access");
            }
        });
        let text = lines.text();
        let count = |needle: &str| text.lines().filter(|l| l.contains(needle)).count();
        // A second boundary may fall inside the loop: then two windows' worth pass.
        let resets = count("stream reset by peer");
        assert!(
            (REPEATS_PER_SECOND as usize..=2 * REPEATS_PER_SECOND as usize).contains(&resets),
            "{resets}"
        );
        assert_eq!(count("a different failure"), 1);
        assert_eq!(count("access"), 5);
        assert!(suppressed() - before >= 600 - resets as u64);
    }
}
