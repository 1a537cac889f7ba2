//! Fault injection per endpoint pattern with a probability, drawn from a seeded generator so a
//! run with the same seed and the same request order sees the same faults.

use parking_lot::{Mutex, RwLock};

use crate::rng::Rng;

/// What goes wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// 503 `serviceNotAvailable`.
    ServiceUnavailable,
    /// 504 `gatewayTimeout`.
    GatewayTimeout,
    /// 429 `TooManyRequests`.
    TooManyRequests,
    /// Connection dropped without a response.
    ConnectionReset,
    /// Response delayed by `stall_ms`.
    Stall,
    /// Body cut in the middle, connection dropped.
    TruncatedBody,
    /// 200 with a body that is not valid JSON.
    MalformedJson,
    /// 410 `resyncRequired` (delta) with a `Location` to restart from.
    ResyncRequired,
    /// 404 `itemNotFound`, as for an item deleted mid-run.
    ItemNotFound,
}

/// One fault rule.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaultRule {
    /// Substring of the request path (after `/v1.0`; `*` matches everything).
    pub pattern: String,
    /// Only this method (e.g. `GET`), or any.
    #[serde(default)]
    pub method: Option<String>,
    /// Fault.
    pub kind: FaultKind,
    /// Probability in `[0, 1]`.
    #[serde(default = "one")]
    pub probability: f64,
    /// `Retry-After` seconds for 503/504/429 (none = header absent).
    #[serde(default)]
    pub retry_after: Option<f64>,
    /// Stall duration.
    #[serde(default)]
    pub stall_ms: Option<u64>,
    /// How many times it may still fire (none = unlimited).
    #[serde(default)]
    pub remaining: Option<u64>,
}

fn one() -> f64 {
    1.0
}

/// The configured rules.
pub struct Faults {
    rules: RwLock<Vec<FaultRule>>,
    rng: Mutex<Rng>,
}

impl Faults {
    /// No rules; draws from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            rules: RwLock::new(Vec::new()),
            rng: Mutex::new(Rng::new(seed)),
        }
    }

    /// Replaces the rules and reseeds.
    pub fn set(&self, rules: Vec<FaultRule>, seed: u64) {
        *self.rules.write() = rules;
        *self.rng.lock() = Rng::new(seed);
    }

    /// Adds a rule.
    pub fn add(&self, rule: FaultRule) {
        self.rules.write().push(rule);
    }

    /// The rules.
    #[must_use]
    pub fn list(&self) -> Vec<FaultRule> {
        self.rules.read().clone()
    }

    /// The fault to inject for this request, if any.
    #[must_use]
    pub fn pick(&self, method: &str, path: &str) -> Option<FaultRule> {
        if self.rules.read().is_empty() {
            return None;
        }
        let mut rules = self.rules.write();
        for rule in rules.iter_mut() {
            let path_ok =
                rule.pattern == "*" || path.to_lowercase().contains(&rule.pattern.to_lowercase());
            let method_ok = rule
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method));
            if !path_ok || !method_ok || rule.remaining == Some(0) {
                continue;
            }
            if self.rng.lock().chance(rule.probability) {
                if let Some(r) = rule.remaining.as_mut() {
                    *r -= 1;
                }
                return Some(rule.clone());
            }
        }
        None
    }
}
