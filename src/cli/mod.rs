//! The command line: `backhome [--data-dir DIR] <command>`.

pub mod browse;
pub mod commands;
pub mod export;
pub mod restore;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Backhome for Microsoft 365.
#[derive(Parser, Debug)]
#[command(version, about)]
pub struct Cli {
    /// Where configuration, secrets and task definitions live.
    #[arg(long, global = true, env = "BACKHOME_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// Runs the service that the DSM desktop app and the portal talk to.
    Serve {
        /// Address to listen on (loopback only); `listen` in config.toml when absent.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
        /// The built UI; `ui_dir` in config.toml, or found next to the binary, when absent.
        #[arg(long)]
        ui_dir: Option<PathBuf>,
    },
    /// Starts a simulated tenant, backs it up and serves the app on localhost.
    #[cfg(feature = "demo")]
    Demo {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:8418")]
        listen: std::net::SocketAddr,
        /// The built UI (default: `ui/dist` of the source checkout).
        #[arg(long)]
        ui_dir: Option<PathBuf>,
    },
    /// Creates, lists, shows and deletes backup tasks.
    Task {
        /// The task command.
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// Runs one backup of a task to its end.
    Backup {
        /// The task.
        #[arg(long)]
        task: String,
        /// Prints one JSON summary instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Lists a task's runs.
    Runs {
        /// The task.
        #[arg(long)]
        task: String,
        /// Prints JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verifies a task's repository.
    Verify {
        /// The task.
        #[arg(long)]
        task: String,
        /// Re-reads, decompresses and re-hashes everything.
        #[arg(long)]
        full: bool,
    },
    /// Lists the children (or the whole subtree) of a backup path at a point in time.
    Ls {
        /// The task.
        #[arg(long)]
        task: String,
        /// A run id or an RFC 3339 time; the newest run when absent.
        #[arg(long)]
        at: Option<String>,
        /// Prints a JSON array.
        #[arg(long)]
        json: bool,
        /// Lists the whole subtree.
        #[arg(long)]
        recursive: bool,
        /// The path (`/users/<upn>/mail/Inbox`); the top when absent.
        path: Option<String>,
    },
    /// Prints an item's content: a message's MIME, a file's bytes, an event's or contact's JSON.
    Cat {
        /// The task.
        #[arg(long)]
        task: String,
        /// A run id or an RFC 3339 time; the newest run when absent.
        #[arg(long)]
        at: Option<String>,
        /// The item's path.
        path: String,
    },
    /// Exports paths as a ZIP (folder tree, .eml/.ics/.vcf/.html, files) or an MBOX of their mail.
    Export {
        /// The task.
        #[arg(long)]
        task: String,
        /// A run id or an RFC 3339 time; the newest run when absent.
        #[arg(long)]
        at: Option<String>,
        /// `zip` or `mbox`.
        #[arg(long, value_enum)]
        format: export::Format,
        /// The output file, or `-` for standard output.
        #[arg(long)]
        out: PathBuf,
        /// The paths to export.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Restores paths to Microsoft 365: to their place, another account or a "Restored …" folder.
    Restore(restore::RestoreArgs),
}

/// `backhome task …`.
#[derive(Subcommand, Debug)]
pub enum TaskCommand {
    /// Creates a task.
    Create(Box<commands::CreateArgs>),
    /// Lists the tasks.
    List,
    /// Shows one task.
    Show {
        /// The task.
        name: String,
    },
    /// Deletes a task's definition and secrets (its repository stays).
    Delete {
        /// The task.
        name: String,
    },
}

/// The data dir: `--data-dir`, `BACKHOME_DATA_DIR`, the package's var folder on DSM, or
/// `~/.local/share/backhome`.
#[must_use]
pub fn data_dir(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("SYNOPKG_PKGVAR").map(PathBuf::from))
        .or_else(|| std::env::var_os("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("backhome")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/backhome"))
        })
        .unwrap_or_else(|| PathBuf::from("backhome-data"))
}
