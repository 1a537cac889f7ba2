//! Backhome's Microsoft Graph client: the only code that speaks HTTP to Microsoft.
//!
//! - [`Credential`]: the application's certificate from a password-protected `.pfx`.
//! - [`Cloud`] and [`ClientConfig`]: which Microsoft cloud, tenant and application.
//! - [`Client`]: app-only tokens (RS256 client assertion), per-resource and global concurrency
//!   limits, retries (`Retry-After`, backoff with jitter), paging, delta, `$batch`, streaming
//!   downloads and resumable uploads, counters ([`ClientStats`]).
//! - [`models`]: typed Graph resources, tolerant of unknown and missing fields.
//!
//! Every request is a [`Call`]: a path relative to `/v1.0` (or an absolute link on the Graph
//! host), plus the resource key it counts against (a mailbox or drive id), `Prefer` values and a
//! body. The client retries what may succeed later; what it returns as [`Error`] is classed by
//! [`Error::class`] so the caller knows whether to skip an item, mark a user as having no
//! mailbox, or list a container again ([`ErrorClass::Resync`]).
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
//!
//! A delta round driven page by page, so that the caller can checkpoint after each page:
//!
//! ```no_run
//! use backhome_graph::{Call, Client, Error, models::Message};
//!
//! # async fn round(client: &Client, user: &str, folder: &str, saved: Option<String>) -> Result<String, Error> {
//! let first = Call::get(format!("/users/{user}/mailFolders/{folder}/messages/delta"))
//!     .resource(user) // counts against the mailbox's 4 concurrent requests
//!     .max_page_size(100);
//! let mut call = match saved {
//!     Some(delta_link) => first.follow(delta_link),
//!     None => first.clone(),
//! };
//! loop {
//!     let page = match client.delta_page::<Message>(call.clone()).await {
//!         Ok(page) => page,
//!         // The token expired: list the folder again from the start.
//!         Err(Error::Resync { .. }) => {
//!             call = first.clone();
//!             continue;
//!         }
//!         Err(e) => return Err(e),
//!     };
//!     for message in &page.items { /* store message.meta / message.raw, fetch $value */ }
//!     for removed in &page.removed { /* close the version of removed.id */ }
//!     match (page.next_link, page.delta_link) {
//!         (Some(next), _) => call = first.follow(next),
//!         (None, Some(delta_link)) => return Ok(delta_link),
//!         (None, None) => return Err(Error::InvalidRequest("no delta link".into())),
//!     }
//! }
//! # }
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

#[cfg(test)]
mod send_check {
    //! The client's futures and streams can be spawned on a multi-threaded runtime.
    use super::*;

    fn is_send<T: Send>(_: &T) {}

    #[test]
    fn futures_are_send() {
        fn check(c: &Client) {
            is_send(&c.json::<serde_json::Value>(Call::get("/users")));
            is_send(&c.page::<models::User>(Call::get("/users")));
            is_send(&c.delta_page::<models::Message>(Call::get("/x/delta")));
            is_send(&c.items::<models::User>(Call::get("/users")));
            is_send(&c.download(Call::get("/drives/d/items/i/content")));
            is_send(&c.batch(Vec::new(), None));
            is_send(&c.has_mailbox("u"));
            let source = bytes::Bytes::new();
            is_send(&c.upload("d", "p", "n", &source, &UploadOptions::default()));
        }
        let _ = check;
    }

    #[test]
    fn errors_work_with_anyhow_style_handlers() {
        fn bounds<T: std::error::Error + Send + Sync + 'static>() {}
        bounds::<Error>();
        bounds::<GraphError>();
        fn shared<T: Send + Sync + Clone + 'static>() {}
        shared::<Client>();
        shared::<Credential>();
    }
}
