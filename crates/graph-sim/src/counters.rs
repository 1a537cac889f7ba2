//! Request counters tests and benchmarks read through the control API.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde_json::{Value, json};

#[derive(Default)]
struct Maps {
    by_kind: BTreeMap<String, u64>,
    by_mailbox: BTreeMap<u32, u64>,
    max_concurrency: BTreeMap<u32, usize>,
    throttled_by_mailbox: BTreeMap<u32, u64>,
}

/// Counters since start or the last reset.
#[derive(Default)]
pub struct Counters {
    maps: Mutex<Maps>,
    requests: AtomicU64,
    throttled: AtomicU64,
    faults: AtomicU64,
    bytes_served: AtomicU64,
    content_bytes: AtomicU64,
    tokens: AtomicU64,
}

impl Counters {
    /// Counts a Graph request of `kind`, against `mailbox` when it targets one.
    pub fn request(&self, kind: &str, mailbox: Option<u32>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut m = self.maps.lock();
        *m.by_kind.entry(kind.to_string()).or_default() += 1;
        if let Some(mb) = mailbox {
            *m.by_mailbox.entry(mb).or_default() += 1;
        }
    }

    /// Records the concurrency seen on a mailbox.
    pub fn concurrency(&self, mailbox: u32, in_flight: usize) {
        let mut m = self.maps.lock();
        let e = m.max_concurrency.entry(mailbox).or_default();
        *e = (*e).max(in_flight);
    }

    /// Counts a 429.
    pub fn throttled(&self) {
        self.throttled.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a 429 a mailbox's limits caused (on top of [`Counters::throttled`]).
    pub fn mailbox_throttled(&self, mailbox: u32) {
        *self
            .maps
            .lock()
            .throttled_by_mailbox
            .entry(mailbox)
            .or_default() += 1;
    }

    /// Counts an injected fault.
    pub fn fault(&self) {
        self.faults.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a token issued.
    pub fn token(&self) {
        self.tokens.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts response body bytes.
    pub fn bytes(&self, n: u64) {
        self.bytes_served.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts file/MIME content bytes served.
    pub fn content(&self, n: u64) {
        self.content_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Total 429s sent.
    #[must_use]
    pub fn throttled_total(&self) -> u64 {
        self.throttled.load(Ordering::Relaxed)
    }

    /// Highest concurrency seen on a mailbox.
    #[must_use]
    pub fn max_concurrency(&self, mailbox: u32) -> usize {
        self.maps
            .lock()
            .max_concurrency
            .get(&mailbox)
            .copied()
            .unwrap_or(0)
    }

    /// All counters as JSON.
    #[must_use]
    pub fn snapshot(&self) -> Value {
        let m = self.maps.lock();
        json!({
            "requests": self.requests.load(Ordering::Relaxed),
            "requests_by_kind": m.by_kind,
            "requests_by_mailbox": m.by_mailbox.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "max_concurrency_by_mailbox": m.max_concurrency.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "throttled": self.throttled.load(Ordering::Relaxed),
            "throttled_by_mailbox": m.throttled_by_mailbox.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "faults": self.faults.load(Ordering::Relaxed),
            "tokens_issued": self.tokens.load(Ordering::Relaxed),
            "bytes_served": self.bytes_served.load(Ordering::Relaxed),
            "content_bytes_served": self.content_bytes.load(Ordering::Relaxed),
        })
    }

    /// Resets everything to zero.
    pub fn reset(&self) {
        *self.maps.lock() = Maps::default();
        for a in [
            &self.requests,
            &self.throttled,
            &self.faults,
            &self.bytes_served,
            &self.content_bytes,
            &self.tokens,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }
}
