//! A simulator of Entra ID and Microsoft Graph v1.0 that serves a seeded, deterministic
//! Microsoft 365 tenant on localhost, for tests, benchmarks and the demo.
//!
//! One server answers the login host (`POST /{tenant}/oauth2/v2.0/token`, client credentials
//! with a certificate-signed assertion), Graph under `/v1.0/…` (bearer token required),
//! pre-authenticated downloads (`/_dl/…`) and upload sessions (`/_up/…`), and the control API
//! under `/_sim/…` (loopback only; see the `control` module for its routes and operations).
//!
//! Graph surface: users (+`$select`, `$filter` eq/ne/startswith, `$top`, `$count`, paging,
//! delta), groups (+delta with `members@delta`), sites (search, `getAllSites`, drives), drives
//! (items, children, root delta with `token=latest`, `/content` → 302 with `Range` support,
//! versions, simple upload ≤ 4 MiB, upload sessions), mail (folders, child folders, hidden and
//! well-known folders, folder delta, message delta, messages, MIME `$value`, attachments,
//! creation from MIME or JSON with extended properties, PATCH, move, delete, `mailboxSettings`,
//! immutable ids), calendars (user and group: events, recurrence, `calendarView/delta`,
//! attachments, creation), contacts (folders, delta, creation), Teams (channels, messages,
//! replies, delta, `getAllMessages`, migration-mode channels, import, `completeMigration`),
//! `$batch`, and group conversations (conversations, threads with `$filter`, posts with
//! `inReplyTo`, attachments; posting only with delegated tokens, as Graph documents).
//! Throttling (off unless enabled) and fault injection apply to every Graph request.
//! Recurring series keep their changed and cancelled occurrences inside the master, as Exchange
//! does (`calendar_series`): occurrence ids, `instances`, PATCH/DELETE/`cancel` of an occurrence,
//! `$select=cancelledOccurrences` and `$expand=exceptionOccurrences` on the master.
//!
//! App registration: the device authorization grant (`POST /{tenant}/oauth2/v2.0/devicecode`,
//! then polling the token endpoint; a test approves or declines the code through `/_sim/device/…`
//! as a chosen user with chosen directory roles), delegated tokens carrying the user's roles
//! (`wids`) and scopes, `/me`, `/applications` (create, get, update, delete, `addKey`/`removeKey`
//! with a proof of possession), `/servicePrincipals` (create, get, `$filter=appId eq '…'`),
//! `appRoleAssignedTo`/`appRoleAssignments`, and the Microsoft Graph service principal with its
//! real app role ids. The token endpoint knows such an app only after a configurable replication
//! delay, and issues tokens only once it has a service principal and admin consent.
//!
//! ```no_run
//! # async fn demo() -> Result<(), graph_sim::SimError> {
//! let sim = graph_sim::Simulator::start(graph_sim::SimOptions::new(graph_sim::Profile::Tiny)).await?;
//! let ready = sim.ready();
//! println!("Graph at {}, app {} with {}", ready.graph_endpoint, ready.app_id, ready.cert_pfx);
//! sim.stop().await;
//! # Ok(()) }
//! ```

#![recursion_limit = "256"]
// Nested `if let`s read better than let-chains in the handlers; closures rendering delta
// entries have long but local types.
#![allow(clippy::collapsible_if, clippy::type_complexity)]

mod apps;
mod auth;
mod batch;
mod calendar;
mod calendar_series;
mod certs;
mod contacts;
mod content;
mod control;
mod conversations;
mod counters;
mod device;
mod directory;
mod error;
mod faults;
mod files;
mod http;
mod ids;
mod mail;
mod mime_parse;
mod msgraph;
mod odata;
mod register_control;
mod rng;
mod router;
mod server;
mod snapshot;
mod spool;
mod state;
mod teams;
mod tenant;
mod time_fmt;
mod words;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use apps::{PROOF_AUDIENCE, Settings as RegistrationSettings};
pub use auth::{FULL_ROLES, client_assertion};
pub use counters::Counters;
pub use error::SimError;
pub use faults::{FaultKind, FaultRule};
pub use msgraph::{APP_ROLES as GRAPH_APP_ROLES, GRAPH_APP_ID};
pub use state::SimState;
pub use tenant::Sizes;
pub use throttle::ThrottleConfig;

mod throttle;

/// Named size profiles.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// About 5 users with a few items each: fast tests.
    #[default]
    Tiny,
    /// About 12 users with realistic content.
    Demo,
    /// 50 users × 1,000 messages: benchmarks.
    Bench,
}

impl Profile {
    /// The sizes of the profile.
    #[must_use]
    pub fn sizes(self) -> Sizes {
        match self {
            Self::Tiny => Sizes {
                users: 5,
                messages_per_user: 12,
                files_per_user: 8,
                events_per_user: 6,
                contacts_per_user: 5,
                groups: 2,
                sites: 1,
                channel_messages: 4,
                max_file_size: 3 * 1024 * 1024,
            },
            Self::Demo => Sizes {
                users: 12,
                messages_per_user: 150,
                files_per_user: 40,
                events_per_user: 30,
                contacts_per_user: 25,
                groups: 4,
                sites: 2,
                channel_messages: 15,
                max_file_size: 200 * 1024 * 1024,
            },
            Self::Bench => Sizes {
                users: 50,
                messages_per_user: 1000,
                files_per_user: 200,
                events_per_user: 100,
                contacts_per_user: 50,
                groups: 8,
                sites: 3,
                channel_messages: 50,
                max_file_size: 500 * 1024 * 1024,
            },
        }
    }
}

/// How to start a simulator.
#[derive(Clone, Debug)]
pub struct SimOptions {
    /// Address to bind (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Size profile.
    pub profile: Profile,
    /// Seed (same seed + sizes → same tenant).
    pub seed: u64,
    /// Overrides of the profile's user count.
    pub users: Option<usize>,
    /// Override of messages per user.
    pub messages_per_user: Option<usize>,
    /// Override of files per user.
    pub files_per_user: Option<usize>,
    /// Serve HTTPS with a self-signed certificate.
    pub tls: bool,
    /// Where `ready.json`, the `.pfx` and the CA certificate go (a fresh temporary directory
    /// when `None`).
    pub state_dir: Option<PathBuf>,
    /// Lifetime of issued access tokens, in seconds.
    pub token_lifetime: i64,
    /// Throttling limits (disabled unless `enabled`).
    pub throttle: ThrottleConfig,
    /// Simulated service time added to every Graph request, in milliseconds.
    pub latency_ms: u64,
    /// HTTP worker threads (default 2).
    pub workers: usize,
}

impl SimOptions {
    /// Options for `profile` with seed 1 on a free loopback port.
    #[must_use]
    pub fn new(profile: Profile) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            profile,
            seed: 1,
            users: None,
            messages_per_user: None,
            files_per_user: None,
            tls: false,
            state_dir: None,
            token_lifetime: 3600,
            throttle: ThrottleConfig::default(),
            latency_ms: 0,
            workers: 2,
        }
    }

    /// The sizes after overrides.
    #[must_use]
    pub fn sizes(&self) -> Sizes {
        let mut s = self.profile.sizes();
        if let Some(u) = self.users {
            s.users = u;
        }
        if let Some(m) = self.messages_per_user {
            s.messages_per_user = m;
        }
        if let Some(f) = self.files_per_user {
            s.files_per_user = f;
        }
        s
    }
}

/// What a started simulator prints and writes to `ready.json`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Ready {
    /// Base URL of Graph (append `/v1.0/...`).
    pub graph_endpoint: String,
    /// Base URL of the login host (append `/{tenant}/oauth2/v2.0/token`).
    pub login_endpoint: String,
    /// Tenant GUID.
    pub tenant_id: String,
    /// Application id of the pre-registered, fully consented app.
    pub app_id: String,
    /// Path of the app's password-protected `.pfx`.
    pub cert_pfx: String,
    /// Password of the `.pfx`.
    pub cert_password: String,
    /// Base URL of the control API (`/_sim`).
    pub control_endpoint: String,
    /// PEM file of the self-signed TLS certificate (only with TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert: Option<String>,
}

/// Entry point of the library.
pub struct Simulator;

impl Simulator {
    /// Generates the tenant, writes the app certificate and `ready.json`, binds and starts
    /// serving in the background of the current Tokio runtime.
    ///
    /// # Errors
    /// Binding, certificate generation or file writes failed.
    pub async fn start(options: SimOptions) -> Result<RunningSim, SimError> {
        server::start(options).await
    }
}

/// A running simulator.
pub struct RunningSim {
    ready: Ready,
    state: Arc<SimState>,
    handle: actix_web::dev::ServerHandle,
    task: tokio::task::JoinHandle<()>,
}

impl RunningSim {
    /// Where it answers and how to authenticate.
    #[must_use]
    pub fn ready(&self) -> &Ready {
        &self.ready
    }

    /// The shared state (tenant, counters, throttling, faults), for in-process tests.
    #[must_use]
    pub fn state(&self) -> &Arc<SimState> {
        &self.state
    }

    /// Stops serving and waits for the workers to finish.
    pub async fn stop(self) {
        self.handle.stop(false).await;
        let _ = self.task.await;
    }

    /// Waits until the server stops (e.g. on a signal).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}
