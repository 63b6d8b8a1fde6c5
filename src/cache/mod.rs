//! The page cache: rendered (rewritten) responses kept in memory (moka, bounded in bytes) so the
//! localized site is served at memory speed and survives origin trouble.
//!
//! - Keys never mix sites, locales or content codings; a non-HTML response is stored without the
//!   locale, so `/id/assets/x.css` and `/assets/x.css` share one entry.
//! - Concurrent misses for one key cause one origin fetch: the first request (the leader) streams
//!   its response to its client while a copy fills the cache; the others wait for the entry.
//! - An entry is stored only when its whole body arrived: a client that disconnects mid-stream, or
//!   a body larger than the site's limit, leaves nothing behind.
//! - Entries are kept past freshness for `stale-while-revalidate` / `stale-if-error`.

pub mod policy;

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body::{Body as HttpBody, Frame, SizeHint};
use moka::Expiry;
use moka::future::Cache;
use moka::notification::RemovalCause;
use tokio::sync::watch;

use crate::body::{self, Body, BoxError};
use crate::codec::Coding;
use crate::locale::Locale;
pub use policy::Lifetime;

/// The response header that says how the cache answered.
pub const STATUS_HEADER: &str = "x-edgeseo-cache";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStatus {
    Hit,
    Miss,
    Stale,
    Bypass,
}

impl CacheStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheStatus::Hit => "HIT",
            CacheStatus::Miss => "MISS",
            CacheStatus::Stale => "STALE",
            CacheStatus::Bypass => "BYPASS",
        }
    }

    pub fn header(self) -> HeaderValue {
        HeaderValue::from_static(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub site: Arc<str>,
    /// `None` for responses that are the same at every locale (assets).
    pub locale: Option<Locale>,
    /// Normalized origin path and query.
    pub target: String,
    /// The coding the response is sent in (and the only one asked of the origin): one entry per
    /// coding.
    pub coding: Coding,
    /// `scheme://host` written into a localized page's links when the site names no
    /// `public_origin`: it comes from the request, so pages built for different hosts must not
    /// share an entry (one visitor's Host header would become everyone's canonical URL).
    pub base: Option<Box<str>>,
}

impl Key {
    /// The key of the same resource shared by every locale.
    pub fn shared(&self) -> Key {
        Key {
            locale: None,
            base: None,
            ..self.clone()
        }
    }
}

/// Path and query as a cache key: percent-escapes of unreserved characters decoded and hex digits
/// upper-cased (RFC 3986 section 6.2.2), an empty query dropped. Nothing that could change what the
/// origin serves is normalized away.
pub fn normalize_target(path: &str, query: Option<&str>) -> String {
    let mut out = normalize_escapes(path);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(&normalize_escapes(q));
    }
    out
}

fn normalize_escapes(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            let c = h * 16 + l;
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                out.push(c);
            } else {
                out.extend_from_slice(format!("%{c:02X}").as_bytes());
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    // Only ASCII bytes were decoded or re-cased, so the text stays valid UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A stored response.
pub struct Entry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub lifetime: Lifetime,
    stored: Instant,
    /// Age the response already had when stored (the origin's `Age`).
    initial_age: Duration,
    refreshing: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Past freshness, within `stale-while-revalidate`.
    Revalidate,
    /// Past that, within `stale-if-error`: only a stand-in for a failing origin.
    ErrorOnly,
    Expired,
}

impl Entry {
    pub fn new(status: StatusCode, headers: HeaderMap, body: Bytes, lifetime: Lifetime) -> Entry {
        let initial_age = policy::age(&headers);
        // Header values parsed by hyper are views into its read buffer, which also held the body:
        // keeping them would keep that whole buffer alive next to the copy. Own them instead.
        let headers: HeaderMap = headers
            .iter()
            .filter(|(name, _)| *name != header::AGE && name.as_str() != STATUS_HEADER)
            .filter_map(|(name, value)| {
                HeaderValue::from_bytes(value.as_bytes())
                    .ok()
                    .map(|v| (name.clone(), v))
            })
            .collect();
        Entry {
            status,
            headers,
            body,
            lifetime,
            stored: Instant::now(),
            initial_age,
            refreshing: AtomicBool::new(false),
        }
    }

    pub fn age(&self) -> Duration {
        self.initial_age + self.stored.elapsed()
    }

    pub fn freshness(&self) -> Freshness {
        let elapsed = self.stored.elapsed();
        let l = &self.lifetime;
        if elapsed < l.fresh {
            Freshness::Fresh
        } else if elapsed < l.fresh + l.stale_while_revalidate {
            Freshness::Revalidate
        } else if elapsed < l.fresh + l.stale_if_error {
            Freshness::ErrorOnly
        } else {
            Freshness::Expired
        }
    }

    /// True for exactly one caller until [`Entry::end_refresh`]: the one that refreshes.
    pub fn begin_refresh(&self) -> bool {
        !self.refreshing.swap(true, Ordering::AcqRel)
    }

    pub fn end_refresh(&self) {
        self.refreshing.store(false, Ordering::Release);
    }

    /// Bytes this entry occupies, as the cache's capacity counts them.
    fn weight(&self, key: &Key) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        let total = self.body.len() + headers + key.target.len() + 256;
        u32::try_from(total).unwrap_or(u32::MAX)
    }

    /// The stored response for a request: 304 when the client's validators match, the body left
    /// out for HEAD.
    pub fn respond(
        &self,
        status: CacheStatus,
        request: &HeaderMap,
        head_only: bool,
    ) -> Response<Body> {
        let not_modified = self.status == StatusCode::OK && self.matches_validators(request);
        let mut resp = if not_modified || head_only {
            Response::new(body::empty())
        } else {
            Response::new(body::full(self.body.clone()))
        };
        *resp.status_mut() = if not_modified {
            StatusCode::NOT_MODIFIED
        } else {
            self.status
        };
        let headers = resp.headers_mut();
        *headers = self.headers.clone();
        if not_modified {
            headers.remove(header::CONTENT_LENGTH);
            headers.remove(header::CONTENT_TYPE);
        } else {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(self.body.len()));
        }
        headers.insert(header::AGE, HeaderValue::from(self.age().as_secs()));
        headers.insert(STATUS_HEADER, status.header());
        resp
    }

    fn matches_validators(&self, request: &HeaderMap) -> bool {
        if let Some(inm) = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
        {
            let Some(etag) = self.headers.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
                return false;
            };
            let opaque = |t: &str| t.trim().trim_start_matches("W/").to_string();
            return inm
                .split(',')
                .any(|t| t.trim() == "*" || opaque(t) == opaque(etag));
        }
        let since = request
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let modified = self
            .headers
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        matches!((since, modified), (Some(since), Some(modified)) if modified <= since)
    }
}

struct EntryExpiry;

impl Expiry<Key, Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _: &Key,
        entry: &Arc<Entry>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.lifetime.total())
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    pub hit: AtomicU64,
    pub miss: AtomicU64,
    pub stale: AtomicU64,
    pub bypass: AtomicU64,
}

impl Counters {
    pub fn count(&self, status: CacheStatus) {
        let counter = match status {
            CacheStatus::Hit => &self.hit,
            CacheStatus::Miss => &self.miss,
            CacheStatus::Stale => &self.stale,
            CacheStatus::Bypass => &self.bypass,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct PageCache {
    entries: Cache<Key, Arc<Entry>>,
    /// Keys being fetched by a leader; the receiver completes when the leader is done.
    inflight: Mutex<HashMap<Key, watch::Receiver<()>>>,
    pub counters: Counters,
    pub removals: Arc<Removals>,
}

/// Entries that left the cache, by why (`/metrics`); a replaced entry is not counted.
#[derive(Default)]
pub struct Removals {
    /// Pushed out by newer entries when the cache was full.
    pub evicted: AtomicU64,
    pub expired: AtomicU64,
    /// Purged through the admin API.
    pub purged: AtomicU64,
}

/// What a request that missed should do.
pub enum Fill {
    /// Fetch from the origin; the guard releases waiting followers when dropped.
    Leader(FillGuard),
    /// Another request is fetching this key: wait, then look again.
    Follower(watch::Receiver<()>),
}

pub struct FillGuard {
    cache: Arc<PageCache>,
    key: Key,
    _done: watch::Sender<()>,
}

impl Drop for FillGuard {
    fn drop(&mut self) {
        self.cache
            .inflight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
        // Dropping the sender wakes every follower.
    }
}

impl PageCache {
    pub fn new(max_bytes: u64) -> Arc<PageCache> {
        let removals = Arc::new(Removals::default());
        let counted = removals.clone();
        let entries = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &Key, entry: &Arc<Entry>| entry.weight(key))
            .expire_after(EntryExpiry)
            .support_invalidation_closures()
            .eviction_listener(move |_, _, cause| {
                let counter = match cause {
                    RemovalCause::Size => &counted.evicted,
                    RemovalCause::Expired => &counted.expired,
                    RemovalCause::Explicit => &counted.purged,
                    RemovalCause::Replaced => return,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            })
            .build();
        Arc::new(PageCache {
            entries,
            inflight: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            removals,
        })
    }

    /// The entry for a page, or for the same resource shared by every locale.
    pub async fn get(&self, key: &Key) -> Option<Arc<Entry>> {
        if let Some(entry) = self.entries.get(key).await {
            return Some(entry);
        }
        if key.locale.is_some() {
            return self.entries.get(&key.shared()).await;
        }
        None
    }

    pub fn begin_fill(self: &Arc<Self>, key: &Key) -> Fill {
        let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rx) = inflight.get(key) {
            return Fill::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        inflight.insert(key.clone(), rx);
        Fill::Leader(FillGuard {
            cache: self.clone(),
            key: key.clone(),
            _done: tx,
        })
    }

    pub async fn insert(&self, key: Key, entry: Entry) {
        self.entries.insert(key, Arc::new(entry)).await;
    }

    /// Removes the entries of a site matching a path prefix and a locale (`None`: every locale
    /// and shared entries). Returns how many there were.
    pub fn purge(&self, site: &str, prefix: Option<&str>, locale: Option<Locale>) -> usize {
        let matches = {
            let site = site.to_string();
            let prefix = prefix.unwrap_or("").to_string();
            move |k: &Key| {
                *k.site == *site
                    && k.target.starts_with(&prefix)
                    && (locale.is_none() || k.locale == locale)
            }
        };
        let count = self.entries.iter().filter(|(k, _)| matches(k)).count();
        // The cache is built with invalidation closures, so this cannot fail.
        let _ = self.entries.invalidate_entries_if(move |k, _| matches(k));
        count
    }

    pub fn purge_all(&self) {
        self.entries.invalidate_all();
    }

    /// Entries and bytes held (after pending maintenance).
    pub async fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks().await;
        (self.entries.entry_count(), self.entries.weighted_size())
    }
}

/// What becomes of a response that fills an entry.
pub struct Store {
    pub cache: Arc<PageCache>,
    pub key: Key,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub lifetime: Lifetime,
    /// Larger bodies stream through uncached.
    pub max: usize,
    /// Held until the entry is stored, so followers find it.
    pub guard: FillGuard,
}

/// Streams `inner` to the client while keeping a copy that, once complete, becomes the entry.
pub fn tee(inner: Body, store: Store) -> Body {
    http_body_util::BodyExt::boxed_unsync(Tee {
        inner,
        pending: Some(Pending {
            store,
            chunks: Vec::new(),
            size: 0,
        }),
    })
}

struct Tee {
    inner: Body,
    pending: Option<Pending>,
}

struct Pending {
    store: Store,
    chunks: Vec<Bytes>,
    size: usize,
}

impl Tee {
    /// The body is complete: the copy becomes the entry. The guard is released only once the
    /// entry is in the cache, so a request that was waiting for it finds it.
    fn finish(&mut self) {
        let Some(p) = self.pending.take() else { return };
        let mut body = BytesMut::with_capacity(p.size);
        for chunk in &p.chunks {
            body.extend_from_slice(chunk);
        }
        let Store {
            cache,
            key,
            status,
            headers,
            lifetime,
            guard,
            ..
        } = p.store;
        let entry = Entry::new(status, headers, body.freeze(), lifetime);
        tokio::spawn(async move {
            cache.insert(key, entry).await;
            drop(guard);
        });
    }
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let (Some(data), Some(p)) = (f.data_ref(), self.pending.as_mut()) {
                    p.size += data.len();
                    if p.size > p.store.max {
                        // Too large to keep: it streams through, and followers fetch for themselves.
                        self.pending = None;
                    } else {
                        p.chunks.push(data.clone());
                    }
                }
                // A body that knows it has ended is not polled again.
                if self.inner.is_end_stream() {
                    self.finish();
                }
            }
            Some(Err(_)) => self.pending = None,
            None => self.finish(),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_normalize_only_what_cannot_change_meaning() {
        assert_eq!(normalize_target("/a%7eb", Some("q=%2f")), "/a~b?q=%2F");
        assert_eq!(normalize_target("/p", Some("")), "/p");
        assert_eq!(normalize_target("/p", Some("b=1&a=2")), "/p?b=1&a=2");
    }
}
