//! Backhome for Microsoft 365: backs up a Microsoft 365 tenant onto a Synology NAS and restores from it.
//!
//! The crate is the service and the command line; the repository lives in `backhome-store`,
//! the Microsoft Graph client in `backhome-graph`. See `ARCHITECTURE.md`.

pub mod api;
pub mod backup;
pub mod cli;
pub mod config;
pub mod connect;
#[cfg(feature = "demo")]
pub mod demo;
pub mod export;
pub mod jobs;
pub mod logging;
pub mod notify;
pub mod paths;
pub mod register;
pub mod render;
pub mod restore;
pub mod secrets;
pub mod serve;
pub mod service;
pub mod task;
