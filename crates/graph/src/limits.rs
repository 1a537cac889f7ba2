//! Concurrency limits: one global semaphore and one per resource (mailbox, drive, site…),
//! plus a per-resource pause after a throttling answer.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::stats::Stats;

/// Concurrency limits of a [`crate::Client`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Requests in flight at once, all resources together.
    pub global: usize,
    /// Requests in flight at once for one resource key (Exchange allows 4 per mailbox).
    pub per_resource: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            global: 16,
            per_resource: 4,
        }
    }
}

#[derive(Debug)]
struct Gate {
    semaphore: Arc<Semaphore>,
    paused_until: Mutex<Option<Instant>>,
}

/// Permits held while a request (and its body) is in flight.
#[derive(Debug)]
pub(crate) struct Permits {
    _global: OwnedSemaphorePermit,
    _resource: Option<OwnedSemaphorePermit>,
    stats: Arc<Stats>,
}

impl Drop for Permits {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Debug)]
pub(crate) struct Limiter {
    limits: Limits,
    global: Arc<Semaphore>,
    gates: Mutex<HashMap<String, Arc<Gate>>>,
    stats: Arc<Stats>,
}

impl Limiter {
    pub(crate) fn new(limits: Limits, stats: Arc<Stats>) -> Self {
        let limits = Limits {
            global: limits.global.max(1),
            per_resource: limits.per_resource.max(1),
        };
        Self {
            global: Arc::new(Semaphore::new(limits.global)),
            limits,
            gates: Mutex::new(HashMap::new()),
            stats,
        }
    }

    fn gate(&self, key: &str) -> Arc<Gate> {
        let mut gates = match self.gates.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if gates.len() > 4096 {
            // Forget idle resources; a gate in use is held elsewhere too.
            gates.retain(|_, g| Arc::strong_count(g) > 1);
        }
        gates
            .entry(key.to_owned())
            .or_insert_with(|| {
                Arc::new(Gate {
                    semaphore: Arc::new(Semaphore::new(self.limits.per_resource)),
                    paused_until: Mutex::new(None),
                })
            })
            .clone()
    }

    /// Waits for a pause on the resource to end, then for `weight` resource permits (a `$batch`
    /// that Exchange runs 4 at a time weighs more than one request), then a global one.
    pub(crate) async fn acquire(&self, resource: Option<&str>, weight: u32) -> Permits {
        let resource_permit = match resource {
            Some(key) => {
                let gate = self.gate(key);
                loop {
                    let until = *match gate.paused_until.lock() {
                        Ok(g) => g,
                        Err(p) => p.into_inner(),
                    };
                    match until {
                        Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                        _ => break,
                    }
                }
                // The semaphores are never closed, so acquiring cannot fail.
                let weight = weight.clamp(
                    1,
                    u32::try_from(self.limits.per_resource).unwrap_or(u32::MAX),
                );
                gate.semaphore.clone().acquire_many_owned(weight).await.ok()
            }
            None => None,
        };
        let global = loop {
            if let Ok(p) = self.global.clone().acquire_owned().await {
                break p;
            }
        };
        self.stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Permits {
            _global: global,
            _resource: resource_permit,
            stats: self.stats.clone(),
        }
    }

    /// Holds back new requests to the resource for `delay` (after a 429 with `Retry-After`).
    pub(crate) fn pause(&self, resource: &str, delay: Duration) {
        let gate = self.gate(resource);
        let mut until = match gate.paused_until.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let new = Instant::now() + delay;
        if until.is_none_or(|t| t < new) {
            *until = Some(new);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn per_resource_limit_holds() {
        let limiter = Arc::new(Limiter::new(
            Limits {
                global: 10,
                per_resource: 2,
            },
            Arc::default(),
        ));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..12 {
            let (l, now, peak) = (limiter.clone(), now.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let _p = l.acquire(Some("mbx"), 1).await;
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(n, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                now.fetch_sub(1, Ordering::SeqCst);
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn heavy_requests_take_several_permits() {
        let limiter = Limiter::new(
            Limits {
                global: 10,
                per_resource: 4,
            },
            Arc::default(),
        );
        let heavy = limiter.acquire(Some("mbx"), 9).await;
        let blocked =
            tokio::time::timeout(Duration::from_millis(50), limiter.acquire(Some("mbx"), 1)).await;
        assert!(blocked.is_err(), "a batch weighing 4 fills the mailbox");
        drop(heavy);
        let _ = limiter.acquire(Some("mbx"), 1).await;
    }

    #[tokio::test]
    async fn pause_delays_new_requests() {
        let limiter = Limiter::new(Limits::default(), Arc::default());
        limiter.pause("mbx", Duration::from_millis(150));
        let start = Instant::now();
        let _p = limiter.acquire(Some("other"), 1).await;
        assert!(start.elapsed() < Duration::from_millis(100));
        let _q = limiter.acquire(Some("mbx"), 1).await;
        assert!(start.elapsed() >= Duration::from_millis(150));
    }
}
