//! Configuration of a [`crate::Client`].

use std::path::PathBuf;
use std::time::Duration;

use crate::cloud::Cloud;
use crate::error::ConfigError;
use crate::limits::Limits;
use crate::retry::RetryPolicy;

/// Timeouts of the transport.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing a connection (TCP + TLS).
    pub connect: Duration,
    /// Receiving the response headers, and reading a buffered (JSON) body.
    pub request: Duration,
    /// Longest silence inside a streamed body (download) before it counts as broken.
    pub stall: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            request: Duration::from_secs(120),
            stall: Duration::from_secs(60),
        }
    }
}

/// Everything a [`crate::Client`] needs besides the certificate.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The cloud (login and Graph hosts).
    pub cloud: Cloud,
    /// Tenant GUID or verified domain.
    pub tenant_id: String,
    /// Application (client) id.
    pub app_id: String,
    /// An extra trusted CA certificate (PEM), e.g. for an HTTPS simulator.
    pub extra_ca_pem: Option<PathBuf>,
    /// Concurrency limits.
    pub limits: Limits,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// The token scope, overriding [`Cloud::scope`] (e.g. `https://graph.microsoft.com/.default`
    /// for a proxy in front of global Graph).
    pub scope: Option<String>,
    /// Steps of a large upload (rounded down to a multiple of 320 KiB).
    pub upload_chunk_size: usize,
}

/// Uploads up to this size use a single PUT; larger ones an upload session.
pub const SIMPLE_UPLOAD_MAX: u64 = 4 * 1024 * 1024;

/// Upload session fragments must be multiples of this (320 KiB).
pub const UPLOAD_FRAGMENT_UNIT: usize = 320 * 1024;

impl ClientConfig {
    /// A configuration with default limits, retries and timeouts.
    #[must_use]
    pub fn new(cloud: Cloud, tenant_id: impl Into<String>, app_id: impl Into<String>) -> Self {
        Self {
            cloud,
            tenant_id: tenant_id.into(),
            app_id: app_id.into(),
            extra_ca_pem: None,
            scope: None,
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            timeouts: Timeouts::default(),
            upload_chunk_size: 32 * UPLOAD_FRAGMENT_UNIT,
        }
    }

    /// Checks tenant and application ids (they become part of URLs and tokens).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let tenant = self.tenant_id.trim();
        if tenant.is_empty()
            || tenant.len() > 255
            || !tenant
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        {
            return Err(ConfigError::BadTenant(self.tenant_id.clone()));
        }
        let app = self.app_id.trim();
        if app.is_empty()
            || app.len() > 255
            || !app.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ConfigError::BadAppId(self.app_id.clone()));
        }
        Ok(())
    }
}

/// The `User-Agent` Microsoft asks ISVs to send.
#[must_use]
pub fn user_agent() -> String {
    format!("ISV|Backhome|Backhome/{}", env!("CARGO_PKG_VERSION"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        let ok = ClientConfig::new(
            Cloud::Global,
            "contoso.onmicrosoft.com",
            "00000000-0000-0000-0000-000000000001",
        );
        ok.validate().unwrap();
        let bad = ClientConfig::new(Cloud::Global, "contoso/../x", "app");
        assert!(matches!(bad.validate(), Err(ConfigError::BadTenant(_))));
        let bad = ClientConfig::new(Cloud::Global, "t", "");
        assert!(matches!(bad.validate(), Err(ConfigError::BadAppId(_))));
    }

    #[test]
    fn user_agent_is_isv_format() {
        assert!(user_agent().starts_with("ISV|Backhome|Backhome/"));
    }
}
