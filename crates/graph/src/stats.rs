//! Counters for progress and metrics.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the client's counters since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ClientStats {
    /// HTTP requests sent to Graph and to download/upload hosts (retries included).
    pub requests: u64,
    /// Attempts that were retries of an earlier failed attempt.
    pub retries: u64,
    /// 429 answers received (batch items included).
    pub throttled: u64,
    /// Token requests sent to Entra ID.
    pub token_requests: u64,
    /// Response body bytes received.
    pub bytes_received: u64,
    /// Request body bytes sent.
    pub bytes_sent: u64,
    /// Requests currently in flight.
    pub in_flight: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) requests: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) throttled: AtomicU64,
    pub(crate) token_requests: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) in_flight: AtomicU64,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> ClientStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            requests: get(&self.requests),
            retries: get(&self.retries),
            throttled: get(&self.throttled),
            token_requests: get(&self.token_requests),
            bytes_received: get(&self.bytes_received),
            bytes_sent: get(&self.bytes_sent),
            in_flight: get(&self.in_flight),
        }
    }
}
