//! Throttling modelled on Exchange (per app + mailbox: concurrency and a request budget per
//! window) and SharePoint (per tenant resource units per minute). Off unless enabled.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::counters::Counters;

/// Throttling limits.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ThrottleConfig {
    /// Whether throttling is applied at all.
    pub enabled: bool,
    /// Concurrent requests per app and mailbox (Exchange: 4).
    pub mailbox_concurrency: usize,
    /// Requests per app and mailbox per window (Exchange: 10,000 per 10 minutes).
    pub mailbox_requests: u64,
    /// Window length in milliseconds.
    pub window_ms: u64,
    /// Upload bytes (POST/PUT/PATCH bodies) per app and mailbox per upload window (Exchange:
    /// 150 MB per 5 minutes).
    pub mailbox_upload_bytes: u64,
    /// Upload window length in milliseconds.
    pub upload_window_ms: u64,
    /// SharePoint resource units per app per tenant per minute.
    pub file_units_per_minute: u64,
    /// `Retry-After` sent with 429s, in seconds (fractional allowed).
    pub retry_after: f64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            mailbox_concurrency: 4,
            mailbox_requests: 10_000,
            window_ms: 600_000,
            mailbox_upload_bytes: 150 * 1024 * 1024,
            upload_window_ms: 300_000,
            file_units_per_minute: 1_200,
            retry_after: 1.0,
        }
    }
}

/// What a request is charged against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// An Exchange mailbox, with the bytes the request uploads.
    Mailbox(u32, u64),
    /// OneDrive/SharePoint with a resource-unit cost.
    Files(u64),
    /// Not throttled.
    None,
}

#[derive(Default)]
struct MailboxState {
    in_flight: usize,
    window_start: Option<Instant>,
    count: u64,
    upload_start: Option<Instant>,
    uploaded: u64,
}

/// Throttling state.
pub struct Throttle {
    /// Limits (changed through the control API).
    pub config: RwLock<ThrottleConfig>,
    mailboxes: Mutex<HashMap<(uuid::Uuid, u32), MailboxState>>,
    files: Mutex<(Option<Instant>, u64)>,
}

/// Releases a mailbox slot when dropped.
pub struct Slot<'a> {
    throttle: &'a Throttle,
    key: Option<(uuid::Uuid, u32)>,
    /// SharePoint `RateLimit-*` values (limit, remaining, reset seconds), sent once 80 % of
    /// the minute's resource units are used.
    pub rate_limit: Option<(u64, u64, u64)>,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            if let Some(s) = self.throttle.mailboxes.lock().get_mut(&key) {
                s.in_flight = s.in_flight.saturating_sub(1);
            }
        }
    }
}

impl Throttle {
    /// Throttling with `config`.
    #[must_use]
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config: RwLock::new(config),
            mailboxes: Mutex::new(HashMap::new()),
            files: Mutex::new((None, 0)),
        }
    }

    /// Admits a request or answers with the `Retry-After` seconds of a 429.
    ///
    /// # Errors
    /// The `Retry-After` value when the request is throttled.
    pub fn admit(
        &self,
        app: uuid::Uuid,
        scope: Scope,
        counters: &Counters,
    ) -> Result<Slot<'_>, f64> {
        let config = self.config.read().clone();
        match scope {
            Scope::None => Ok(Slot {
                throttle: self,
                key: None,
                rate_limit: None,
            }),
            Scope::Mailbox(mb, upload) => {
                let key = (app, mb);
                let mut map = self.mailboxes.lock();
                let s = map.entry(key).or_default();
                let now = Instant::now();
                let start = *s.window_start.get_or_insert(now);
                if now.duration_since(start).as_millis() >= u128::from(config.window_ms) {
                    s.window_start = Some(now);
                    s.count = 0;
                }
                if config.enabled
                    && (s.in_flight >= config.mailbox_concurrency
                        || s.count >= config.mailbox_requests)
                {
                    let retry = if s.count >= config.mailbox_requests {
                        let left = u128::from(config.window_ms)
                            .saturating_sub(now.duration_since(start).as_millis());
                        (left as f64 / 1000.0).max(config.retry_after)
                    } else {
                        config.retry_after
                    };
                    counters.mailbox_throttled(mb);
                    return Err(retry);
                }
                let up_start = *s.upload_start.get_or_insert(now);
                if now.duration_since(up_start).as_millis() >= u128::from(config.upload_window_ms) {
                    s.upload_start = Some(now);
                    s.uploaded = 0;
                }
                if config.enabled && upload > 0 && s.uploaded + upload > config.mailbox_upload_bytes
                {
                    let left = u128::from(config.upload_window_ms)
                        .saturating_sub(now.duration_since(up_start).as_millis());
                    counters.mailbox_throttled(mb);
                    return Err((left as f64 / 1000.0).max(config.retry_after));
                }
                s.uploaded += upload;
                s.count += 1;
                s.in_flight += 1;
                counters.concurrency(mb, s.in_flight);
                Ok(Slot {
                    throttle: self,
                    key: Some(key),
                    rate_limit: None,
                })
            }
            Scope::Files(cost) => {
                let mut f = self.files.lock();
                let now = Instant::now();
                let start = *f.0.get_or_insert(now);
                if now.duration_since(start).as_millis() >= 60_000 {
                    *f = (Some(now), 0);
                }
                if config.enabled && f.1 + cost > config.file_units_per_minute {
                    let left = 60_000u128.saturating_sub(now.duration_since(start).as_millis());
                    return Err((left as f64 / 1000.0).max(config.retry_after));
                }
                f.1 += cost;
                let limit = config.file_units_per_minute;
                let rate_limit = (config.enabled && f.1 * 5 >= limit * 4).then(|| {
                    let reset = 60u64
                        .saturating_sub(now.duration_since(start).as_secs())
                        .max(1);
                    (limit, limit.saturating_sub(f.1), reset)
                });
                Ok(Slot {
                    throttle: self,
                    key: None,
                    rate_limit,
                })
            }
        }
    }

    /// Forgets all windows and in-flight counts.
    pub fn reset(&self) {
        self.mailboxes.lock().clear();
        *self.files.lock() = (None, 0);
    }
}
