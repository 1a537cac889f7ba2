//! Errors of the repository.
//!
//! Policy: one `thiserror` enum for the crate's public API, each variant carrying the context
//! needed to act on it (which path, which pack, which run). Causes are kept as sources, never
//! flattened into strings. Expected outcomes (a deduplicated blob, an unchanged item) are values
//! returned by the API, not errors. Every error is classed by [`StoreError::is_temporary`]:
//! temporary errors (a full volume, a busy lock, an I/O hiccup) may succeed when retried later;
//! permanent ones (a damaged pack, a wrong passphrase, a repository from a newer version) will not.

use std::io;
use std::path::PathBuf;

/// Result type of the repository.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Everything that can go wrong in the repository.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The volume holding the repository is full (ENOSPC). The run that hit it stops; the
    /// repository stays valid and the next run works once space is freed.
    #[error("the volume holding the repository is full ({context})")]
    VolumeFull {
        /// What was being written.
        context: String,
    },
    /// An I/O error on a file of the repository.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An error from the SQLite catalog.
    #[error("catalog error while {context}: {source}")]
    Catalog {
        /// What the catalog was doing.
        context: &'static str,
        /// The underlying error.
        #[source]
        source: rusqlite::Error,
    },
    /// The folder is not a repository (no catalog or no config).
    #[error("{path} is not a Backhome repository")]
    NotARepository {
        /// The folder.
        path: PathBuf,
    },
    /// A repository already exists where one was to be created.
    #[error("a repository already exists at {path}")]
    AlreadyExists {
        /// The folder.
        path: PathBuf,
    },
    /// The repository was written by a newer version of Backhome.
    #[error(
        "the repository has format version {found}, this version of Backhome understands up to {supported}: upgrade Backhome"
    )]
    NewerFormat {
        /// The version found in the repository.
        found: i64,
        /// The newest version this build supports.
        supported: i64,
    },
    /// The repository is encrypted and the passphrase does not open its key.
    #[error("wrong passphrase for the repository key")]
    WrongPassphrase,
    /// The repository is encrypted but no passphrase was given.
    #[error("the repository is encrypted: a passphrase is needed")]
    PassphraseRequired,
    /// The key file is unreadable or malformed.
    #[error("the repository key file is damaged: {0}")]
    BadKeyFile(String),
    /// Another process or writer is writing to the repository.
    #[error("the repository is locked by another writer ({0})")]
    Locked(String),
    /// The repository was opened read-only (for example a snapshot).
    #[error("the repository is open read-only")]
    ReadOnly,
    /// A pack file is damaged.
    #[error("pack {pack} is damaged: {reason}")]
    DamagedPack {
        /// The pack, as hex.
        pack: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob is damaged: its bytes do not decrypt, decompress or hash to its id.
    #[error("blob {blob} in pack {pack} is damaged: {reason}")]
    DamagedBlob {
        /// The blob id, as hex.
        blob: String,
        /// The pack, as hex.
        pack: String,
        /// What is wrong.
        reason: String,
    },
    /// A blob referenced by a content is missing from the index.
    #[error("blob {0} is missing from the repository")]
    MissingBlob(String),
    /// A run id that does not exist, is not committed or was pruned.
    #[error("run {0} is not a committed run of this repository")]
    UnknownRun(i64),
    /// A node, content or object id that does not exist.
    #[error("{kind} {id} does not exist")]
    NotFound {
        /// What was looked for.
        kind: &'static str,
        /// Its id.
        id: String,
    },
    /// An argument that the repository refuses (for example a name with a NUL).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Reading the stream given to `put_content` failed (for example a download broke off).
    /// The writer stays usable; the item can be stored again.
    #[error("reading the content to store failed: {source}")]
    Source {
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// A btrfs command failed where it had to succeed (creating the repository subvolume).
    #[error("btrfs: {0}")]
    Btrfs(String),
}

impl StoreError {
    /// Whether retrying later may succeed (full volume, lock held, I/O trouble, busy catalog).
    #[must_use]
    pub fn is_temporary(&self) -> bool {
        match self {
            Self::VolumeFull { .. } | Self::Locked(_) | Self::Io { .. } | Self::Source { .. } => {
                true
            }
            Self::Catalog { source, .. } => matches!(
                source.sqlite_error_code(),
                Some(
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                )
            ),
            _ => false,
        }
    }

    /// Whether a run writer must stop after this error (its open transaction is abandoned).
    pub(crate) fn breaks_writer(&self) -> bool {
        !matches!(
            self,
            Self::Source { .. } | Self::Invalid(_) | Self::NotFound { .. }
        )
    }

    /// Whether this is [`StoreError::VolumeFull`].
    #[must_use]
    pub fn is_volume_full(&self) -> bool {
        matches!(self, Self::VolumeFull { .. })
    }

    /// Wraps an I/O error on `path`, turning ENOSPC into [`StoreError::VolumeFull`].
    pub fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        let path = path.into();
        if is_enospc(&source) {
            return Self::VolumeFull {
                context: format!("writing {}", path.display()),
            };
        }
        Self::Io { path, source }
    }

    /// Wraps a catalog error, turning SQLITE_FULL into [`StoreError::VolumeFull`].
    pub(crate) fn db(context: &'static str, source: rusqlite::Error) -> Self {
        if source.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return Self::VolumeFull {
                context: format!("catalog: {context}"),
            };
        }
        Self::Catalog { context, source }
    }
}

/// Whether an I/O error means "no space left on device" (or over quota).
pub(crate) fn is_enospc(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || e.raw_os_error() == Some(28)
}

/// Adds a context to rusqlite results.
pub(crate) trait DbContext<T> {
    /// Maps the error into [`StoreError::Catalog`] with `context`.
    fn ctx(self, context: &'static str) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, rusqlite::Error> {
    fn ctx(self, context: &'static str) -> Result<T> {
        self.map_err(|e| StoreError::db(context, e))
    }
}

/// Adds a path to I/O results.
pub(crate) trait IoContext<T> {
    /// Maps the error into [`StoreError::Io`] (or `VolumeFull`) naming `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, io::Error> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| StoreError::io(path, e))
    }
}
