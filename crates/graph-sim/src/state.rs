//! Shared state of a running simulator.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;

use parking_lot::Mutex;

use crate::auth::{App, Entra};
use crate::certs::CertKey;
use crate::counters::Counters;
use crate::error::SimError;
use crate::faults::Faults;
use crate::tenant::Tenant;
use crate::throttle::Throttle;

/// An open drive upload session.
#[derive(Clone, Debug)]
pub struct UploadSession {
    /// Drive number.
    pub drive: u32,
    /// Parent folder serial.
    pub parent: u32,
    /// File name.
    pub name: String,
    /// `fail`, `replace` or `rename`.
    pub conflict: String,
    /// Declared size, known after the first fragment when not given.
    pub total: Option<u64>,
    /// Bytes received so far (fragments arrive in order), spooled to a file.
    pub data: crate::spool::SpoolWriter,
    /// Expiry (Unix seconds).
    pub expires: i64,
    /// `fileSystemInfo` to apply: (created, modified).
    pub fs_info: (Option<i64>, Option<i64>),
}

/// Everything the handlers share.
pub struct SimState {
    /// The tenant.
    pub tenant: Tenant,
    /// Entra (apps and tokens).
    pub entra: Entra,
    /// Absolute base URL (`http://127.0.0.1:PORT`).
    pub base: String,
    /// Counters.
    pub counters: Counters,
    /// Throttling.
    pub throttle: Throttle,
    /// Fault injection.
    pub faults: Faults,
    /// Added service time per request (milliseconds).
    pub latency_ms: AtomicU64,
    /// Open upload sessions by id.
    pub uploads: Mutex<HashMap<String, UploadSession>>,
    /// Where uploaded content is spooled (the state directory).
    pub spool_dir: std::path::PathBuf,
    /// Key that signs pre-authenticated download URLs.
    pub url_key: Vec<u8>,
    /// The pre-registered app's id.
    pub app_id: uuid::Uuid,
    /// The pre-registered app's key and certificate.
    pub app_cert: CertKey,
    /// Applications, service principals and consent created through Graph.
    pub registry: crate::apps::Registry,
    /// Device codes of the device authorization grant.
    pub device: crate::device::DeviceFlows,
}

impl SimState {
    /// The Graph base URL with `/v1.0`.
    #[must_use]
    pub fn graph(&self) -> String {
        format!("{}/v1.0", self.base)
    }

    /// Issues an access token for the pre-registered app directly (tests and benchmarks that do
    /// not exercise the token endpoint).
    #[must_use]
    pub fn access_token(&self) -> String {
        self.token_for(self.app_id)
    }

    /// Issues an access token for a registered app, with its current roles.
    #[must_use]
    pub fn token_for(&self, app_id: uuid::Uuid) -> String {
        let lifetime = *self.entra.token_lifetime.read();
        let app = App {
            id: app_id,
            roles: self.entra_roles(app_id),
            certs: Vec::new(),
        };
        self.entra.issue(&app, lifetime)
    }

    fn entra_roles(&self, app_id: uuid::Uuid) -> Vec<String> {
        self.entra.roles(app_id).unwrap_or_default()
    }

    /// Registers another app with its own certificate and `roles` (empty = not consented).
    ///
    /// # Errors
    /// Key or certificate generation failed.
    pub fn register_app(&self, roles: Vec<String>) -> Result<(uuid::Uuid, CertKey), SimError> {
        let ck = crate::certs::self_signed("graph-sim extra app", false)?;
        let (sha1, sha256) = crate::certs::thumbprints(&ck.cert)?;
        let id = uuid::Uuid::new_v4();
        let key = openssl::pkey::PKey::public_key_from_der(&ck.key.public_key_to_der()?)?;
        self.entra.register(App {
            id,
            roles,
            certs: vec![crate::auth::RegisteredCert { sha1, sha256, key }],
        });
        Ok((id, ck))
    }
}
