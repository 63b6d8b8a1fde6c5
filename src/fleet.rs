//! Several instances acting as one through Redis (`[fleet]` in server.toml): the chat's quotas
//! are counted in Redis, so a client spread over every instance behind a load balancer gets one
//! quota, and a purge or reload asked of one instance's admin listener reaches them all.
//!
//! Owns: the Redis connections, the quota script (GCRA, one round trip per check, on Redis's
//! clock so that the instances' clocks need not agree), the event channel, and the fallback to
//! each instance's own limits while Redis cannot be reached.
//! Must never: refuse or hold up a request because Redis is slow or gone. Every call is bounded
//! by `[fleet] timeout`; after a failure Redis is left alone for `RETRY_AFTER` and the instance's
//! own limits decide, with one log line when that starts and one when it ends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::config::FleetSettings;
use crate::control::Control;
use crate::locale::Locale;

/// How long Redis is left alone after it failed a call.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Longest wait between attempts to reach Redis in the background.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Generic cell rate algorithm on Redis's clock, in microseconds, for several quotas at once:
/// each key holds its theoretical arrival time; ARGV holds each key's emission interval (the
/// period per request) and burst, in pairs. The request is counted against every quota only if
/// every quota allows it. Returns 0 when allowed, else the microseconds to wait.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local next_tat = {}
local wait = 0
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local tat = tonumber(redis.call('GET', key) or now)
  if tat < now then tat = now end
  local allowed_at = tat - interval * (tonumber(ARGV[2 * i]) - 1)
  if now < allowed_at and allowed_at - now > wait then wait = allowed_at - now end
  next_tat[i] = tat + interval
end
if wait > 0 then return wait end
for i, key in ipairs(KEYS) do
  redis.call('SET', key, next_tat[i], 'PX', math.ceil((next_tat[i] - now) / 1000) + 1)
end
return 0
";

/// What one instance tells the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Event {
    Purge {
        site: String,
        path_prefix: Option<String>,
        locale: Option<String>,
    },
    Reload,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    /// The sending instance, which has already acted on its own event.
    from: String,
    #[serde(flatten)]
    event: Event,
}

/// A quota as the chat states it: `burst` requests at once, one more every `interval`.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub interval: Duration,
    pub burst: u32,
}

impl Rate {
    pub fn per_minute(n: u32) -> Rate {
        let n = n.max(1);
        Rate {
            interval: Duration::from_secs(60) / n,
            burst: n,
        }
    }
    pub fn per_second(n: u32) -> Rate {
        let n = n.max(1);
        Rate {
            interval: Duration::from_secs(1) / n,
            burst: n,
        }
    }
}

/// This instance's handle on the fleet.
pub struct Fleet {
    settings: FleetSettings,
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    script: redis::Script,
    channel: String,
    instance: String,
    epoch: Instant,
    /// Milliseconds after `epoch` before which Redis is not asked (0: ask).
    resting_until: AtomicU64,
    /// Whether the last call failed, so that the change is logged once each way.
    unreachable: AtomicBool,
    /// Quota checks the instance's own limits decided because Redis could not.
    pub fallbacks: AtomicU64,
}

impl Fleet {
    /// Starts reaching Redis in the background and returns at once: an instance starts and
    /// serves whether or not Redis is up.
    pub fn start(settings: FleetSettings) -> Result<Arc<Fleet>, redis::RedisError> {
        let client = redis::Client::open(settings.redis.as_str())?;
        let instance = format!(
            "{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let fleet = Arc::new(Fleet {
            channel: format!("{}:events", settings.key_prefix),
            settings,
            client,
            conn: OnceCell::new(),
            script: redis::Script::new(GCRA),
            instance,
            epoch: Instant::now(),
            resting_until: AtomicU64::new(0),
            unreachable: AtomicBool::new(false),
            fallbacks: AtomicU64::new(0),
        });
        tokio::spawn(connect(fleet.clone()));
        Ok(fleet)
    }

    /// Takes one request against each of `quotas` (key, rate), counted across the fleet in one
    /// round trip: `Some(Ok)` allowed by all, `Some(Err(wait))` refused, `None` when Redis could
    /// not tell in time (the caller's own limiters decide then).
    pub async fn take(&self, quotas: &[(String, Rate)]) -> Option<Result<(), Duration>> {
        if quotas.is_empty() {
            return Some(Ok(()));
        }
        let verdict = self.ask(quotas).await;
        if verdict.is_none() {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
        }
        verdict
    }

    async fn ask(&self, quotas: &[(String, Rate)]) -> Option<Result<(), Duration>> {
        let mut conn = self.available()?;
        let mut invocation = self.script.prepare_invoke();
        for (key, rate) in quotas {
            invocation
                .key(format!("{}:quota:{key}", self.settings.key_prefix))
                .arg(rate.interval.as_micros().max(1) as u64)
                .arg(rate.burst);
        }
        let wait = self
            .bounded(invocation.invoke_async::<u64>(&mut conn))
            .await?;
        Some(if wait == 0 {
            Ok(())
        } else {
            Err(Duration::from_micros(wait))
        })
    }

    /// Tells the other instances to purge as this one just did. False if Redis could not be
    /// told: the other instances keep their pages until they expire.
    pub async fn publish_purge(
        &self,
        site: &str,
        path_prefix: Option<&str>,
        locale: Option<Locale>,
    ) -> bool {
        self.publish(Event::Purge {
            site: site.to_owned(),
            path_prefix: path_prefix.map(str::to_owned),
            locale: locale.map(|l| l.code().to_owned()),
        })
        .await
    }

    /// Tells the other instances to reload their rules, as this one just did.
    pub async fn publish_reload(&self) -> bool {
        self.publish(Event::Reload).await
    }

    async fn publish(&self, event: Event) -> bool {
        let Some(mut conn) = self.available() else {
            return false;
        };
        let message = serde_json::to_string(&Envelope {
            from: self.instance.clone(),
            event,
        })
        .expect("plain strings serialize");
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&self.channel).arg(message);
        self.bounded(publish.query_async::<i64>(&mut conn))
            .await
            .is_some()
    }

    /// One call to Redis within `[fleet] timeout`: its answer, or `None` (and Redis rests).
    async fn bounded<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> Option<T> {
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Ok(answer)) => {
                self.reached();
                Some(answer)
            }
            Ok(Err(e)) => {
                self.failed(&e.to_string());
                None
            }
            Err(_) => {
                self.failed("no answer within [fleet] timeout");
                None
            }
        }
    }

    pub fn settings(&self) -> &FleetSettings {
        &self.settings
    }

    /// Whether the last call to Redis was answered.
    pub fn reachable(&self) -> bool {
        self.conn.initialized() && !self.unreachable.load(Ordering::Relaxed)
    }

    /// The connection, unless Redis has not been reached yet or is resting after a failure.
    fn available(&self) -> Option<ConnectionManager> {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.conn
            .get()
            .filter(|_| now >= self.resting_until.load(Ordering::Relaxed))
            .cloned()
    }

    fn reached(&self) {
        if self.unreachable.swap(false, Ordering::Relaxed) {
            tracing::info!(redis = %self.settings.redis, "Redis answers again: chat quotas are the fleet's");
        }
    }

    fn failed(&self, error: &str) {
        let until = (self.epoch.elapsed() + RETRY_AFTER).as_millis() as u64;
        self.resting_until.store(until, Ordering::Relaxed);
        if !self.unreachable.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                redis = %self.settings.redis,
                error,
                "Redis unreachable: chat quotas are this instance's own until it answers"
            );
        }
    }
}

/// Reaches Redis for the first time, retrying with backoff; the connection manager reconnects
/// by itself after that.
async fn connect(fleet: Arc<Fleet>) {
    let timeout = fleet.settings.timeout.max(Duration::from_millis(250));
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(fleet.settings.timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let mut backoff = Duration::from_millis(100);
    loop {
        match fleet
            .client
            .get_connection_manager_with_config(config.clone())
            .await
        {
            Ok(conn) => {
                let _ = fleet.conn.set(conn);
                fleet.reached();
                tracing::info!(redis = %fleet.settings.redis, "fleet: Redis reached");
                return;
            }
            Err(e) => {
                fleet.failed(&e.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Acts on the other instances' events for as long as the process runs. After a lost
/// subscription this instance may have missed purges, so it empties its own cache once back.
pub async fn listen(fleet: Arc<Fleet>, control: Arc<Control>) {
    let mut backoff = Duration::from_millis(100);
    let mut subscribed_before = false;
    loop {
        let subscribed = async {
            let mut pubsub = fleet.client.get_async_pubsub().await?;
            pubsub.subscribe(&fleet.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = match tokio::time::timeout(
            fleet.settings.timeout.max(Duration::from_millis(250)),
            subscribed,
        )
        .await
        {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(e)) => {
                fleet.failed(&e.to_string());
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
            Err(_) => {
                fleet.failed("no answer within [fleet] timeout");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        if subscribed_before {
            control.cache.purge_all();
            tracing::info!(
                "fleet: events may have been missed while Redis was away; cache emptied"
            );
        }
        subscribed_before = true;
        let mut messages = pubsub.into_on_message();
        while let Some(message) = messages.next().await {
            let Ok(payload) = message.get_payload::<String>() else {
                continue;
            };
            match serde_json::from_str::<Envelope>(&payload) {
                Ok(envelope) if envelope.from != fleet.instance => {
                    apply(&control, envelope.event, &envelope.from);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "fleet: unreadable event ignored"),
            }
        }
        fleet.failed("event subscription lost");
    }
}

fn apply(control: &Arc<Control>, event: Event, from: &str) {
    match event {
        Event::Purge {
            site,
            path_prefix,
            locale,
        } => {
            let locale = locale.as_deref().and_then(Locale::from_code);
            let purged = control.cache.purge(&site, path_prefix.as_deref(), locale);
            tracing::info!(from, site, purged, "fleet: purge from another instance");
        }
        Event::Reload => {
            // Training the chat takes a second or two: not on the event loop. Logged by the
            // reload itself, with its trigger.
            let control = control.clone();
            tokio::task::spawn_blocking(move || control.reload("fleet"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_read_back_as_written() {
        let sent = Envelope {
            from: "a".into(),
            event: Event::Purge {
                site: "shop".into(),
                path_prefix: Some("/products".into()),
                locale: Some("id".into()),
            },
        };
        let text = serde_json::to_string(&sent).unwrap();
        assert_eq!(
            text,
            r#"{"from":"a","event":"purge","site":"shop","path_prefix":"/products","locale":"id"}"#
        );
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.event, sent.event);
        let reload: Envelope = serde_json::from_str(r#"{"from":"b","event":"reload"}"#).unwrap();
        assert_eq!(reload.event, Event::Reload);
    }

    #[test]
    fn rates_match_the_local_quotas() {
        let r = Rate::per_minute(30);
        assert_eq!((r.interval, r.burst), (Duration::from_secs(2), 30));
        let r = Rate::per_second(2000);
        assert_eq!((r.interval, r.burst), (Duration::from_micros(500), 2000));
        assert_eq!(Rate::per_minute(0).burst, 1);
    }
}
