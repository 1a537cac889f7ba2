//! Errors of the simulator's library API.
//!
//! Policy: startup and configuration problems are [`SimError`] values returned to the caller;
//! problems with a client's request are never errors of the library — they become Graph or
//! Entra error responses (see `http.rs` and `auth.rs`).

/// Why the simulator could not start or a control operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Binding or file I/O failed.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// OpenSSL failed (key or certificate generation, TLS setup).
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
    /// Serialising the ready file failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// An option had an invalid value.
    #[error("invalid option: {0}")]
    Invalid(String),
}
