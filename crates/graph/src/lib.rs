//! Backhome's Microsoft Graph client: the only code that speaks HTTP to Microsoft.
//!
//! - [`Credential`]: the application's certificate from a password-protected `.pfx`.
//! - [`Cloud`] and [`ClientConfig`]: which Microsoft cloud, tenant and application.
//! - [`Client`]: app-only tokens (RS256 client assertion), per-resource and global concurrency
//!   limits, retries (`Retry-After`, backoff with jitter), paging, delta, `$batch`, streaming
//!   downloads and resumable uploads, counters ([`ClientStats`]).
//! - [`models`]: typed Graph resources, tolerant of unknown and missing fields.
//!
//! ```no_run
//! use backhome_graph::{Call, Client, ClientConfig, Cloud, Credential, models::User};
//! use futures_util::TryStreamExt;
//!
//! # async fn example() -> Result<(), backhome_graph::Error> {
//! let credential = Credential::from_pkcs12_file("/volume1/backhome/app.pfx", "secret")?;
//! let config = ClientConfig::new(Cloud::Global, "contoso.onmicrosoft.com", "00000000-0000-0000-0000-000000000000");
//! let client = Client::new(config, credential)?;
//! let users: Vec<User> = client.items(Call::get("/users")).try_collect().await?;
//! for user in users {
//!     println!("{}", user.user_principal_name.unwrap_or_default());
//! }
//! # Ok(()) }
//! ```

mod batch;
mod call;
mod client;
mod cloud;
mod config;
mod credential;
mod download;
mod error;
mod limits;
pub mod models;
mod paging;
mod probe;
mod retry;
mod stats;
mod token;
mod upload;

pub use batch::{BatchRequest, BatchResponse, MAX_BATCH};
pub use call::{Call, encode_segment, is_exchange_path};
pub use client::{Client, Response};
pub use cloud::{Cloud, is_loopback};
pub use config::{ClientConfig, SIMPLE_UPLOAD_MAX, Timeouts, UPLOAD_FRAGMENT_UNIT, user_agent};
pub use credential::Credential;
pub use download::Download;
pub use error::{AuthError, ConfigError, CredentialError, Error, ErrorClass, GraphError};
pub use limits::Limits;
pub use paging::{DeltaPage, Page, Removed};
pub use retry::{RetryPolicy, parse_retry_after};
pub use stats::ClientStats;
pub use token::{TokenInfo, client_assertion, token_roles};
pub use upload::{ConflictBehavior, FileSource, UploadOptions, UploadSource};
