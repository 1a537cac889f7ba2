//! Encryption of the catalog at rest. In an encrypted repository `catalog.db` (names, subjects,
//! senders, the full-text index) is an SQLCipher database: every page, in the main file and in
//! the WAL, is AES-256 encrypted and authenticated with an HMAC, under a raw key derived from
//! the repository's master keys (so the passphrase opens it and nothing more is stored).
//! Unencrypted repositories keep a plain SQLite file.
//!
//! A repository encrypted before its catalog was (an older version of Backhome) is converted
//! when opened for writing: a keyed copy is written next to the catalog with `sqlcipher_export`,
//! synced, checked and renamed over it. A kill before the rename leaves the plaintext catalog,
//! converted at the next open; after it, the encrypted one.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};

use crate::error::{DbContext, IoContext, Result, StoreError};
use crate::id::hex;

/// The first 16 bytes of every plaintext SQLite database.
const PLAIN_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Whether `path` holds a plaintext SQLite database (false when it is missing, empty or
/// encrypted: an SQLCipher file starts with its random salt).
pub(crate) fn is_plaintext(path: &Path) -> Result<bool> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(StoreError::io(path, e)),
    };
    let mut head = [0u8; 16];
    let mut got = 0;
    while got < head.len() {
        match f.read(&mut head[got..]).at(path)? {
            0 => return Ok(false),
            n => got += n,
        }
    }
    Ok(&head == PLAIN_HEADER)
}

fn key_literal(key: &[u8; 32]) -> String {
    format!("x'{}'", hex(key))
}

/// Keys a freshly opened connection (this must be its first statement) and checks that the key
/// opens the catalog.
pub(crate) fn apply_key(conn: &Connection, key: &[u8; 32]) -> Result<()> {
    conn.pragma_update(None, "key", key_literal(key))
        .ctx("keying the catalog")?;
    conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    })
    .ctx("decrypting the catalog (the repository key does not open it: damaged, or not this repository's)")?;
    Ok(())
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// What [`encrypt_in_place`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Conversion {
    /// The catalog is now encrypted.
    Encrypted,
    /// Another connection keeps the catalog's WAL busy; the catalog stays plaintext for now.
    Busy,
}

/// Converts the plaintext catalog at `path` into an SQLCipher database under `key`. The caller
/// holds the writer lock.
pub(crate) fn encrypt_in_place(path: &Path, key: &[u8; 32]) -> Result<Conversion> {
    let tmp = sibling(path, ".encrypting");
    for leftover in [&tmp, &sibling(&tmp, "-journal"), &sibling(&tmp, "-wal")] {
        remove_if_present(leftover)?;
    }
    let tmp_str = tmp
        .to_str()
        .ok_or_else(|| StoreError::Invalid("the repository path is not UTF-8".into()))?;
    let schema_version = {
        let conn = Connection::open(path).ctx("opening the plaintext catalog")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))
            .ctx("setting busy timeout")?;
        // Everything in the WAL goes into the main file and the WAL is emptied, so that no
        // plaintext frame can be replayed onto the encrypted file after the rename.
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .ctx("checkpointing the plaintext catalog")?;
        if busy != 0 {
            return Ok(Conversion::Busy);
        }
        conn.execute(
            "ATTACH DATABASE ?1 AS encrypted KEY ?2",
            params![tmp_str, key_literal(key)],
        )
        .ctx("creating the encrypted catalog")?;
        conn.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))
            .ctx("copying the catalog into the encrypted one")?;
        conn.execute_batch("DETACH DATABASE encrypted")
            .ctx("closing the encrypted catalog")?;
        crate::schema::version(&conn)?
    };
    // The plaintext connection is closed: SQLite removed its (empty) WAL. A WAL still holding
    // frames belongs to another process's connection: keep the plaintext catalog for now.
    let wal = sibling(path, "-wal");
    if fs::metadata(&wal).is_ok_and(|m| m.len() > 0) {
        remove_if_present(&tmp)?;
        return Ok(Conversion::Busy);
    }
    File::open(&tmp).and_then(|f| f.sync_all()).at(&tmp)?;
    {
        let check = Connection::open(&tmp).ctx("opening the encrypted catalog")?;
        apply_key(&check, key)?;
        let v = crate::schema::version(&check)?;
        if v != schema_version {
            return Err(StoreError::Invalid(format!(
                "the encrypted copy of the catalog has schema version {v} instead of {schema_version}"
            )));
        }
    }
    remove_if_present(&sibling(&tmp, "-wal"))?;
    fs::rename(&tmp, path).at(path)?;
    crate::fsutil::sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    remove_if_present(&wal)?;
    remove_if_present(&sibling(path, "-shm"))?;
    Ok(Conversion::Encrypted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CreateOptions, KdfParams, NewVersion, NodeKind, ObjectInfo, ObjectKind};
    use crate::{Repository, SearchText};

    fn raw_contains(path: &Path, needle: &str) -> bool {
        let Ok(bytes) = fs::read(path) else {
            return false;
        };
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    }

    /// An encrypted repository whose catalog is plaintext (as older versions wrote it) is
    /// converted on open, keeps its data and its search index, and leaks nothing afterwards.
    #[test]
    fn plaintext_catalog_of_an_encrypted_repository_is_converted_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("repo");
        let opts = CreateOptions {
            passphrase: Some("pw".into()),
            kdf: KdfParams {
                memory_kib: 1024,
                iterations: 1,
            },
            no_subvolume: true,
            ..CreateOptions::default()
        };
        let repo = Repository::create(&root, &opts).unwrap();
        let mut run = repo.begin_run().unwrap();
        let obj = run
            .upsert_object(&ObjectInfo {
                kind: ObjectKind::User,
                graph_id: "u".into(),
                name: "Quintessa".into(),
                address: None,
                extra: serde_json::Value::Null,
            })
            .unwrap();
        let n = run.node(obj, "m", NodeKind::Message).unwrap();
        let c = run.put_bytes(b"payload").unwrap();
        run.put_version(
            n,
            &NewVersion {
                name: "Zanzibarquest".into(),
                content: Some(c.content),
                search: Some(SearchText {
                    subject: "Zanzibarquest".into(),
                    sender: "grumplestiltskin@example.com".into(),
                    body: "flibbertigibbet".into(),
                    ..SearchText::default()
                }),
                ..NewVersion::default()
            },
        )
        .unwrap();
        let committed = run.commit(&serde_json::json!({})).unwrap().run;
        let key = repo.inner.codec.catalog_key().unwrap();
        let catalog = repo.catalog_path();
        drop(repo);

        // Write the catalog back in plaintext, as a repository of an older version has it.
        let plain = dir.path().join("plain.db");
        {
            let c = Connection::open(&catalog).unwrap();
            apply_key(&c, &key).unwrap();
            c.execute(
                "ATTACH DATABASE ?1 AS plain KEY ''",
                [plain.to_str().unwrap()],
            )
            .unwrap();
            c.query_row("SELECT sqlcipher_export('plain')", [], |_| Ok(()))
                .unwrap();
            c.execute_batch("DETACH DATABASE plain").unwrap();
        }
        fs::rename(&plain, &catalog).unwrap();
        remove_if_present(&sibling(&catalog, "-wal")).unwrap();
        remove_if_present(&sibling(&catalog, "-shm")).unwrap();
        assert!(is_plaintext(&catalog).unwrap());
        assert!(raw_contains(&catalog, "flibbertigibbet"));

        // A read-only open reads it as it is, without converting it.
        let ro = Repository::open_read_only(&root, Some("pw")).unwrap();
        assert_eq!(
            ro.search("zanzibarquest", committed, None, 5)
                .unwrap()
                .len(),
            1
        );
        drop(ro);
        assert!(is_plaintext(&catalog).unwrap());

        // Opening for writing converts it.
        let repo = Repository::open(&root, Some("pw")).unwrap();
        assert!(!is_plaintext(&catalog).unwrap());
        assert!(!sibling(&catalog, ".encrypting").exists());
        let hits = repo.search("flibbertigibbet", committed, None, 5).unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].version.name, "Zanzibarquest");
        let mut run = repo.begin_run().unwrap();
        let m2 = run.node(obj, "m2", NodeKind::Message).unwrap();
        run.put_version(
            m2,
            &NewVersion {
                name: "second".into(),
                ..NewVersion::default()
            },
        )
        .unwrap();
        run.commit(&serde_json::json!({})).unwrap();
        drop(repo);
        for f in [catalog.clone(), sibling(&catalog, "-wal")] {
            for s in [
                "flibbertigibbet",
                "Zanzibarquest",
                "grumplestiltskin",
                "Quintessa",
            ] {
                assert!(!raw_contains(&f, s), "{s} in {}", f.display());
            }
        }
        assert!(matches!(
            Repository::open(&root, Some("wrong")),
            Err(StoreError::WrongPassphrase)
        ));
        let again = Repository::open(&root, Some("pw")).unwrap();
        assert_eq!(
            again
                .search("zanzibarquest", committed, None, 5)
                .unwrap()
                .len(),
            1
        );
    }
}
