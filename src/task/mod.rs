//! Backup tasks: their definitions and where they are kept.

pub mod spec;
pub mod store;

pub use spec::{AutoDiscovery, Retention, Schedule, Service, TaskSpec};
pub use store::{Credentials, TaskStore, TaskStoreError};
