//! Registers the Entra ID application a task uses, from the NAS: a certificate made here, the
//! device authorization flow for the admin's sign-in, and the app, its key and consent created
//! through Microsoft Graph.
//!
//! - [`flow`]: "register the app for me" — [`begin`] makes the certificate (the key never
//!   leaves the NAS) and gets a sign-in code; [`Pending::create`] waits for the admin's sign-in
//!   and creates the application with exactly the [`permissions::REQUIRED`] application
//!   permissions, its certificate, its service principal and admin consent, then drops the
//!   admin's token; [`Created::wait_ready`] waits with backoff until the app signs in.
//! - [`jobs`]: the same as background jobs the service's wizard polls.
//! - [`cert`]: certificates made here, `.cer` export, imported `.pfx` checks, expiry status.
//! - [`permissions`]: the permissions with why, and the guide for registering by hand.
//! - [`renew`]: a new certificate without downtime (`addKey`, switch, `removeKey`).

pub mod app;
pub mod cert;
pub mod device;
mod error;
pub mod flow;
mod http;
pub mod jobs;
pub mod permissions;
pub mod record;
pub mod renew;

pub use app::{RegisterOptions, Registration, Step, wait_until_ready};
pub use device::DeviceCode;
pub use error::RegisterError;
pub use flow::{Created, Pending, begin, register};
pub use jobs::{JobState, JobView, Registrations};
pub use renew::{Renewal, renew, renew_task};
