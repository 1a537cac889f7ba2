//! The repository: a folder with `config.json`, an optional `key.json`, the SQLite catalog and
//! the pack files; opening, creating, locking and the pool of read connections.

use std::fs::{self, File, OpenOptions as FsOpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::catalog_crypt;
use crate::chunker::ChunkParams;
use crate::crypto::{Codec, KdfParams, Keys};
use crate::error::{DbContext, IoContext, Result, StoreError};
use crate::schema;
use crate::snapshot::{self, FsKind};

/// Newest repository layout this build understands: 2 = small blobs may be compressed with a
/// dictionary kept in `dict/` (a repository is raised from 1 to 2 when its first dictionary is
/// stored).
pub const FORMAT_VERSION: u32 = 2;
/// Layout of a repository without dictionaries (what [`Repository::create`] writes).
const FORMAT_WITHOUT_DICT: u32 = 1;
const CONFIG: &str = "config.json";
const KEY: &str = "key.json";
const CATALOG: &str = "catalog.db";
const LOCK: &str = "lock";
const MAX_IDLE_READERS: usize = 4;

/// Options for [`Repository::create`].
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// Encrypt blobs with a key wrapped by this passphrase (`None`: no encryption).
    pub passphrase: Option<String>,
    /// Cost of the passphrase derivation.
    pub kdf: KdfParams,
    /// Chunker sizes (`None`: [`ChunkParams::DEFAULT`]).
    pub chunking: Option<ChunkParams>,
    /// Do not make the repository a btrfs subvolume even on btrfs (no snapshots).
    pub no_subvolume: bool,
    /// zstd level (`None`: 3, a good speed/size balance for a slow NAS CPU).
    pub compression_level: Option<i32>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Config {
    pub format: u32,
    pub repository_id: String,
    pub encrypted: bool,
    pub created: i64,
    pub chunk_min: usize,
    pub chunk_avg: usize,
    pub chunk_max: usize,
    pub single_blob_limit: usize,
    pub subvolume: bool,
    #[serde(default = "default_level")]
    pub compression_level: i32,
}

fn default_level() -> i32 {
    3
}

impl Config {
    pub(crate) fn chunk_params(&self) -> ChunkParams {
        ChunkParams {
            min: self.chunk_min,
            avg: self.chunk_avg,
            max: self.chunk_max,
            single_blob_limit: self.single_blob_limit,
        }
    }
}

pub(crate) struct Inner {
    pub root: PathBuf,
    pub config: Config,
    pub codec: Codec,
    pub read_only: bool,
    /// Opened read-only because the volume was full.
    pub full_at_open: bool,
    readers: Mutex<Vec<Connection>>,
}

/// A repository. Cheap to clone, `Send + Sync`: many threads may read while one
/// [`crate::RunWriter`] writes. All calls block; call them from `spawn_blocking` in async code.
#[derive(Clone)]
pub struct Repository {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("root", &self.inner.root)
            .field("encrypted", &self.inner.config.encrypted)
            .field("read_only", &self.inner.read_only)
            .finish()
    }
}

impl Repository {
    /// Creates a repository in `path` (which must not exist or be an empty folder). On btrfs the
    /// folder is created as a subvolume so that runs can be snapshotted.
    pub fn create(path: impl AsRef<Path>, opts: &CreateOptions) -> Result<Self> {
        let root = path.as_ref().to_path_buf();
        if root.join(CONFIG).exists() {
            return Err(StoreError::AlreadyExists { path: root });
        }
        let mut subvolume = false;
        if !root.exists() {
            let parent = root.parent().unwrap_or(Path::new("."));
            if !opts.no_subvolume && snapshot::fs_kind(parent) == FsKind::Btrfs {
                match snapshot::create_subvolume(&root) {
                    Ok(()) => subvolume = true,
                    Err(reason) => {
                        tracing::warn!(%reason, "repository created as a plain folder");
                    }
                }
            }
            if !subvolume {
                fs::create_dir_all(&root).at(&root)?;
            }
        } else if fs::read_dir(&root).at(&root)?.next().is_some() {
            return Err(StoreError::AlreadyExists { path: root });
        } else {
            subvolume = snapshot::is_subvolume(&root);
        }
        fs::create_dir_all(root.join("packs")).at(&root)?;
        let keys = match &opts.passphrase {
            Some(p) => {
                let k = Keys::random();
                k.write(&root.join(KEY), p, opts.kdf)?;
                Some(k)
            }
            None => None,
        };
        let mut conn = Connection::open(root.join(CATALOG)).ctx("creating the catalog")?;
        if let Some(k) = &keys {
            catalog_crypt::apply_key(&conn, &k.catalog_key())?;
        }
        // Pages freed by retention and GC go back to the volume (`incremental_vacuum` after a
        // collection) instead of staying in the file; only settable before the first table.
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .ctx("creating the catalog")?;
        schema::configure(&conn, false)?;
        schema::migrate_to(&mut conn, schema::LATEST)?;
        drop(conn);
        let chunk = opts.chunking.unwrap_or_default();
        let config = Config {
            format: FORMAT_WITHOUT_DICT,
            repository_id: crate::id::hex(&rand::random::<[u8; 16]>()),
            encrypted: keys.is_some(),
            created: time::OffsetDateTime::now_utc().unix_timestamp(),
            chunk_min: chunk.min,
            chunk_avg: chunk.avg,
            chunk_max: chunk.max,
            single_blob_limit: chunk.single_blob_limit,
            subvolume,
            compression_level: opts.compression_level.unwrap_or(3).clamp(1, 19),
        };
        let json =
            serde_json::to_vec_pretty(&config).map_err(|e| StoreError::Invalid(e.to_string()))?;
        crate::fsutil::write_atomic(&root.join(CONFIG), &json)?;
        let codec = Codec::new(keys)
            .with_level(config.compression_level)
            .with_dicts(&root);
        Ok(Self::from_parts(root, config, codec, false))
    }

    /// Opens an existing repository for reading and writing, migrating its catalog if it was
    /// written by an older version.
    ///
    /// On a full volume SQLite cannot even create the files it needs to read a catalog in WAL
    /// mode; the repository then opens read-only (restores work), and
    /// [`Repository::begin_run`] returns [`StoreError::VolumeFull`] until it is reopened with
    /// space freed.
    pub fn open(path: impl AsRef<Path>, passphrase: Option<&str>) -> Result<Self> {
        match Self::open_inner(path.as_ref(), passphrase, false) {
            Err(StoreError::VolumeFull { context }) => {
                tracing::warn!(%context, "volume full: repository opened read-only");
                let mut repo = Self::open_inner(path.as_ref(), passphrase, true)?;
                if let Some(inner) = Arc::get_mut(&mut repo.inner) {
                    inner.full_at_open = true;
                }
                Ok(repo)
            }
            other => other,
        }
    }

    /// Opens a repository read-only without changing anything in it: a btrfs snapshot of a
    /// committed run, or a repository on read-only media.
    pub fn open_read_only(path: impl AsRef<Path>, passphrase: Option<&str>) -> Result<Self> {
        Self::open_inner(path.as_ref(), passphrase, true)
    }

    fn open_inner(root: &Path, passphrase: Option<&str>, read_only: bool) -> Result<Self> {
        let cfg_path = root.join(CONFIG);
        let bytes = match fs::read(&cfg_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NotARepository {
                    path: root.to_path_buf(),
                });
            }
            Err(e) => return Err(StoreError::io(&cfg_path, e)),
        };
        let raw: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| StoreError::Invalid(format!("config.json: {e}")))?;
        let format = raw
            .get("format")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        if format > i64::from(FORMAT_VERSION) {
            return Err(StoreError::NewerFormat {
                found: format,
                supported: i64::from(FORMAT_VERSION),
            });
        }
        let config: Config = serde_json::from_value(raw)
            .map_err(|e| StoreError::Invalid(format!("config.json: {e}")))?;
        let keys = if config.encrypted {
            let pass = passphrase.ok_or(StoreError::PassphraseRequired)?;
            Some(Keys::read(&root.join(KEY), pass)?)
        } else {
            None
        };
        let codec = Codec::new(keys)
            .with_level(config.compression_level)
            .with_dicts(root);
        codec.load_current_dict()?;
        let repo = Self::from_parts(root.to_path_buf(), config, codec, read_only);
        if read_only {
            let conn = repo.open_connection()?;
            let v = schema::version(&conn)?;
            if v > schema::LATEST {
                return Err(StoreError::NewerFormat {
                    found: v,
                    supported: schema::LATEST,
                });
            }
        } else {
            repo.encrypt_plaintext_catalog()?;
            let mut conn = repo.open_connection().map_err(|e| repo.refine(e))?;
            schema::migrate_to(&mut conn, schema::LATEST).map_err(|e| repo.refine(e))?;
            repo.give_back(conn);
        }
        Ok(repo)
    }

    fn from_parts(root: PathBuf, config: Config, codec: Codec, read_only: bool) -> Self {
        Self {
            inner: Arc::new(Inner {
                root,
                config,
                codec,
                read_only,
                full_at_open: false,
                readers: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The repository folder.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Whether blobs are encrypted.
    #[must_use]
    pub fn is_encrypted(&self) -> bool {
        self.inner.config.encrypted
    }

    /// Whether the repository was opened read-only.
    #[must_use]
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Whether the repository folder is a btrfs subvolume (runs get snapshots).
    #[must_use]
    pub fn is_subvolume(&self) -> bool {
        self.inner.config.subvolume
    }

    /// Chunker sizes of this repository.
    #[must_use]
    pub fn chunk_params(&self) -> ChunkParams {
        self.inner.config.chunk_params()
    }

    /// Stores a trained compression dictionary (under the writer lock) and makes new small
    /// blobs use it. `config.json` is raised to format 2 first, so an older version refuses
    /// the repository rather than meeting blobs it cannot read.
    pub(crate) fn store_dictionary(&self, raw: &[u8]) -> Result<u32> {
        if self.inner.config.format < 2 {
            let mut config = self.inner.config.clone();
            config.format = 2;
            let json = serde_json::to_vec_pretty(&config)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            crate::fsutil::write_atomic(&self.inner.root.join(CONFIG), &json)?;
        }
        self.inner.codec.install_dict(raw)
    }

    /// Whether new small blobs are compressed with a dictionary.
    pub(crate) fn has_dictionary(&self) -> bool {
        self.inner.codec.dicts().current().is_some()
    }

    pub(crate) fn catalog_path(&self) -> PathBuf {
        self.inner.root.join(CATALOG)
    }

    /// In an encrypted repository, converts a catalog still in plaintext (written by a version
    /// that did not encrypt catalogs) to SQLCipher, under the writer lock. While a run holds the
    /// lock the conversion waits for the next open.
    fn encrypt_plaintext_catalog(&self) -> Result<()> {
        let Some(key) = self.inner.codec.catalog_key() else {
            return Ok(());
        };
        let path = self.catalog_path();
        if !catalog_crypt::is_plaintext(&path)? {
            return Ok(());
        }
        let _lock = match self.lock_writer() {
            Ok(l) => l,
            Err(StoreError::Locked(_)) => {
                tracing::warn!(
                    "catalog not encrypted yet: a run holds the repository; it is encrypted at the next open"
                );
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        match catalog_crypt::encrypt_in_place(&path, &key).map_err(|e| self.refine(e))? {
            catalog_crypt::Conversion::Encrypted => {
                tracing::info!(
                    "catalog of the encrypted repository converted to an encrypted catalog"
                );
            }
            catalog_crypt::Conversion::Busy => {
                tracing::warn!(
                    "catalog not encrypted yet: another process has it open; it is encrypted at the next open"
                );
            }
        }
        Ok(())
    }

    /// A new connection to the catalog (read-write, or immutable for read-only repositories),
    /// keyed when the repository is encrypted.
    pub(crate) fn open_connection(&self) -> Result<Connection> {
        let path = self.catalog_path();
        // A plaintext catalog in an encrypted repository: written by an older version and not
        // converted yet (a read-only open, a snapshot).
        let key = match self.inner.codec.catalog_key() {
            Some(k) if !catalog_crypt::is_plaintext(&path)? => Some(k),
            _ => None,
        };
        let conn = if self.inner.read_only {
            let uri = format!("file:{}?immutable=1", uri_escape(&path));
            Connection::open_with_flags(
                uri,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_URI
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .ctx("opening the catalog read-only")?
        } else {
            if !path.exists() {
                return Err(StoreError::NotARepository {
                    path: self.inner.root.clone(),
                });
            }
            Connection::open(&path).ctx("opening the catalog")?
        };
        if let Some(k) = &key {
            catalog_crypt::apply_key(&conn, k)?;
        }
        schema::configure(&conn, self.inner.read_only)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut pool) = self.inner.readers.lock()
            && pool.len() < MAX_IDLE_READERS
        {
            pool.push(conn);
        }
    }

    /// Runs `f` with a pooled read connection.
    pub(crate) fn with_conn<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.inner.readers.lock().ok().and_then(|mut p| p.pop());
        let conn = match pooled {
            Some(c) => c,
            None => self.open_connection()?,
        };
        let out = f(&conn);
        self.give_back(conn);
        out
    }

    /// Takes the repository's writer lock (one writer across processes and threads).
    pub(crate) fn lock_writer(&self) -> Result<File> {
        if self.inner.full_at_open {
            return Err(StoreError::VolumeFull {
                context: "the repository was opened read-only on a full volume; reopen it once space is freed".into(),
            });
        }
        if self.inner.read_only {
            return Err(StoreError::ReadOnly);
        }
        let p = self.inner.root.join(LOCK);
        let f = FsOpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .at(&p)?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(fs::TryLockError::WouldBlock) => Err(StoreError::Locked(
                "a run, retention or garbage collection is in progress".into(),
            )),
            Err(fs::TryLockError::Error(e)) => Err(StoreError::io(&p, e)),
        }
    }

    /// Writes a consistent copy of the catalog to `dest` (SQLite `VACUUM INTO`) while the
    /// repository stays in use: the catalog is what makes the packs meaningful, so the service
    /// can keep a copy of it on another volume after each run.
    pub fn export_catalog(&self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = dest.as_ref();
        if dest.exists() {
            return Err(StoreError::AlreadyExists {
                path: dest.to_path_buf(),
            });
        }
        let d = dest
            .to_str()
            .ok_or_else(|| StoreError::Invalid("the destination path is not UTF-8".into()))?;
        self.with_conn(|c| {
            c.execute("VACUUM INTO ?1", [d])
                .map_err(|e| StoreError::db("exporting the catalog", e))
        })
        .map(|_| ())
        .map_err(|e| self.refine(e))
    }

    /// Refines an error seen while writing: SQLite reports some ENOSPC failures as generic I/O
    /// errors (for example when it cannot grow its shared-memory file); when the volume is
    /// (nearly) full, such an error is [`StoreError::VolumeFull`].
    pub(crate) fn refine(&self, e: StoreError) -> StoreError {
        let io_failure = match &e {
            StoreError::Catalog { source, .. } => {
                source.sqlite_error_code() == Some(rusqlite::ErrorCode::SystemIoFailure)
            }
            StoreError::Io { .. } => true,
            _ => false,
        };
        if io_failure
            && let Some(free) = free_bytes(&self.inner.root)
            && free < 4 << 20
        {
            return StoreError::VolumeFull {
                context: format!("{e} with {free} bytes free"),
            };
        }
        e
    }

    /// Removes temp files and pack files that no committed catalog transaction knows: leftovers
    /// of a killed writer. Must be called with the writer lock held.
    pub(crate) fn sweep_orphans(&self, conn: &Connection) -> Result<usize> {
        let packs = self.inner.root.join("packs");
        let mut known = std::collections::HashSet::new();
        {
            let mut st = conn
                .prepare("SELECT name FROM packs")
                .ctx("listing packs")?;
            let rows = st
                .query_map([], |r| r.get::<_, Vec<u8>>(0))
                .ctx("listing packs")?;
            for r in rows {
                known.insert(crate::id::hex(&r.ctx("listing packs")?));
            }
        }
        let mut removed = 0;
        let Ok(dirs) = fs::read_dir(&packs) else {
            return Ok(0);
        };
        for d in dirs {
            let d = d.at(&packs)?;
            if !d.file_type().at(&d.path())?.is_dir() {
                continue;
            }
            for f in fs::read_dir(d.path()).at(&d.path())? {
                let f = f.at(&d.path())?;
                let name = f.file_name().to_string_lossy().into_owned();
                let orphan = if let Some(stem) = name.strip_suffix(".pack") {
                    !known.contains(stem)
                } else {
                    name.ends_with(".tmp")
                };
                if orphan {
                    tracing::info!(file = %f.path().display(), "removing leftover of an unfinished write");
                    fs::remove_file(f.path()).at(&f.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}

/// Bytes available to this user on the volume holding `path`.
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    rustix::fs::statvfs(path)
        .ok()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}

fn uri_escape(p: &Path) -> String {
    let s = p.to_string_lossy();
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => o.push_str("%25"),
            '?' => o.push_str("%3f"),
            '#' => o.push_str("%23"),
            _ => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    #[test]
    fn repository_is_send_and_sync() {
        fn check<T: Send + Sync + Clone>() {}
        check::<super::Repository>();
        fn send<T: Send>() {}
        send::<crate::RunWriter>();
        send::<crate::ContentReader>();
    }
}
