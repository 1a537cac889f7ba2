//! The catalog's schema: numbered migrations, each applied in one transaction, the version kept
//! in `meta`. A catalog with a newer version than [`LATEST`] is refused.

use rusqlite::{Connection, OptionalExtension};

use crate::error::{DbContext, Result, StoreError};

/// One migration: SQL, or code for what SQL alone cannot do.
enum Step {
    Sql(&'static str),
    Code(fn(&Connection) -> Result<()>),
    /// SQL that rebuilds tables other tables refer to: run with foreign keys off (SQLite's
    /// table rebuild procedure), then checked with `foreign_key_check` before committing.
    Rebuild(&'static str),
    /// A rebuild that needs code (values SQL cannot compute), run and checked like `Rebuild`.
    RebuildCode(fn(&Connection) -> Result<()>),
}

/// Migrations in order; migration `i` brings the catalog to version `i + 1`.
const MIGRATIONS: &[Step] = &[
    // 1: runs, objects, the node tree and its versions, contents, blobs, packs, delta tokens.
    Step::Sql(
        r"
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE runs(
        id INTEGER PRIMARY KEY,
        started INTEGER NOT NULL,
        finished INTEGER,
        status TEXT NOT NULL CHECK (status IN ('running','committed','failed','pruned')),
        counters TEXT,
        snapshot TEXT
    );
    CREATE TABLE objects(
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        graph_id TEXT NOT NULL,
        name TEXT NOT NULL,
        address TEXT,
        extra TEXT,
        UNIQUE(kind, graph_id)
    );
    CREATE TABLE nodes(
        id INTEGER PRIMARY KEY,
        object INTEGER NOT NULL REFERENCES objects(id),
        graph_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        UNIQUE(object, graph_id)
    );
    CREATE TABLE packs(
        id INTEGER PRIMARY KEY,
        name BLOB NOT NULL UNIQUE,
        size INTEGER NOT NULL,
        blob_count INTEGER NOT NULL,
        created_run INTEGER NOT NULL
    );
    CREATE TABLE blobs(
        id INTEGER PRIMARY KEY,
        hash BLOB NOT NULL UNIQUE,
        pack INTEGER NOT NULL REFERENCES packs(id),
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        raw_length INTEGER NOT NULL,
        flags INTEGER NOT NULL
    );
    CREATE INDEX blobs_pack ON blobs(pack);
    CREATE TABLE contents(
        id INTEGER PRIMARY KEY,
        hash BLOB,
        size INTEGER NOT NULL,
        created_run INTEGER NOT NULL
    );
    CREATE TABLE content_chunks(
        content INTEGER NOT NULL REFERENCES contents(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        blob INTEGER NOT NULL REFERENCES blobs(id),
        PRIMARY KEY(content, seq)
    ) WITHOUT ROWID;
    CREATE INDEX content_chunks_blob ON content_chunks(blob);
    CREATE TABLE node_versions(
        id INTEGER PRIMARY KEY,
        node INTEGER NOT NULL REFERENCES nodes(id),
        parent INTEGER REFERENCES nodes(id),
        name TEXT NOT NULL,
        content INTEGER REFERENCES contents(id),
        size INTEGER NOT NULL,
        modified INTEGER,
        version_tag TEXT,
        metadata TEXT,
        first_run INTEGER NOT NULL,
        last_run INTEGER
    );
    CREATE INDEX nv_node ON node_versions(node, first_run);
    CREATE INDEX nv_parent ON node_versions(parent, first_run);
    CREATE UNIQUE INDEX nv_open ON node_versions(node) WHERE last_run IS NULL;
    CREATE INDEX nv_content ON node_versions(content);
    CREATE TABLE delta_tokens(
        object INTEGER NOT NULL REFERENCES objects(id),
        scope TEXT NOT NULL,
        run INTEGER NOT NULL,
        token TEXT NOT NULL,
        PRIMARY KEY(object, scope, run)
    ) WITHOUT ROWID;
    ",
    ),
    // 2: full-text search over node versions (rowid = node_versions.id).
    Step::Sql(
        r"
    CREATE VIRTUAL TABLE search USING fts5(
        subject, sender, recipients, body, path,
        tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE INDEX nv_last ON node_versions(last_run) WHERE last_run IS NOT NULL;
    ",
    ),
    // 3: the search index becomes contentless; its text is kept once, compressed.
    Step::Code(crate::search_text::migrate_contentless),
    // 4: blobs are found by the first 8 bytes of their id (an expression index of ~17 bytes a
    // blob) instead of a unique index holding every 32-byte id a second time; lookups compare
    // the whole id.
    Step::Rebuild(
        r"
    CREATE TABLE blobs_v4(
        id INTEGER PRIMARY KEY,
        hash BLOB NOT NULL,
        pack INTEGER NOT NULL REFERENCES packs(id),
        offset INTEGER NOT NULL,
        length INTEGER NOT NULL,
        raw_length INTEGER NOT NULL,
        flags INTEGER NOT NULL
    );
    INSERT INTO blobs_v4(id, hash, pack, offset, length, raw_length, flags)
        SELECT id, hash, pack, offset, length, raw_length, flags FROM blobs ORDER BY id;
    DROP TABLE blobs;
    ALTER TABLE blobs_v4 RENAME TO blobs;
    CREATE INDEX blobs_pack ON blobs(pack);
    CREATE INDEX blobs_hash8 ON blobs(substr(hash, 1, 8));
    ",
    ),
    // 5: nodes are found by a 64-bit hash of their Graph id (`key`, an index of ~15 bytes a
    // node) instead of a unique index holding every Graph id a second time (Exchange ids are
    // about 150 characters); lookups compare the whole id.
    Step::RebuildCode(rebuild_nodes_with_key),
    // 6: one index serves both "versions of a node" and "the open version of a node":
    // `(node, ifnull(last_run, -1))`, unique (a node has one open version and its closed
    // versions end in different runs), instead of `nv_node(node, first_run)` and the partial
    // unique `nv_open(node)` holding most versions twice.
    Step::Code(merge_version_indexes),
];

/// Migration 6. A catalog whose versions break the stronger uniqueness (none written by this
/// code) keeps its two indexes: the queries need no particular one.
fn merge_version_indexes(tx: &Connection) -> Result<()> {
    let clashes: i64 = tx
        .query_row(
            "SELECT count(*) FROM (SELECT 1 FROM node_versions
             GROUP BY node, ifnull(last_run, -1) HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .ctx("applying migration")?;
    if clashes > 0 {
        tracing::warn!(
            clashes,
            "versions of a node end in the same run: the version indexes are kept as they are"
        );
        return Ok(());
    }
    tx.execute_batch(
        "DROP INDEX nv_open;
         DROP INDEX nv_node;
         CREATE UNIQUE INDEX nv_node ON node_versions(node, ifnull(last_run, -1));",
    )
    .ctx("applying migration")
}

/// The lookup key of a node's Graph id: the first 8 bytes of its BLAKE3 hash.
pub(crate) fn node_key(graph_id: &str) -> i64 {
    let h = blake3::hash(graph_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    i64::from_le_bytes(b)
}

/// Migration 5: `nodes` rebuilt with its `key` column and `(object, key)` index.
fn rebuild_nodes_with_key(tx: &Connection) -> Result<()> {
    tx.execute_batch(
        "CREATE TABLE nodes_v5(
            id INTEGER PRIMARY KEY,
            object INTEGER NOT NULL REFERENCES objects(id),
            graph_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            key INTEGER NOT NULL
        );",
    )
    .ctx("applying migration")?;
    {
        let mut read = tx
            .prepare("SELECT id, object, graph_id, kind FROM nodes ORDER BY id")
            .ctx("applying migration")?;
        let mut write = tx
            .prepare(
                "INSERT INTO nodes_v5(id, object, graph_id, kind, key) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .ctx("applying migration")?;
        let mut rows = read.query([]).ctx("applying migration")?;
        while let Some(r) = rows.next().ctx("applying migration")? {
            let (id, object, gid, kind): (i64, i64, String, String) = (
                r.get(0).ctx("applying migration")?,
                r.get(1).ctx("applying migration")?,
                r.get(2).ctx("applying migration")?,
                r.get(3).ctx("applying migration")?,
            );
            write
                .execute(rusqlite::params![id, object, gid, kind, node_key(&gid)])
                .ctx("applying migration")?;
        }
    }
    tx.execute_batch(
        "DROP TABLE nodes;
         ALTER TABLE nodes_v5 RENAME TO nodes;
         CREATE INDEX nodes_key ON nodes(object, key);",
    )
    .ctx("applying migration")
}

/// The newest catalog version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

/// Sets the connection's pragmas.
pub(crate) fn configure(conn: &Connection, read_only: bool) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))
        .ctx("setting busy timeout")?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")
            .ctx("enabling WAL")?;
    }
    // journal_size_limit: a WAL that grew during a large transaction is cut back to 4 MiB at
    // the next checkpoint instead of keeping its largest size for as long as the service runs.
    conn.execute_batch(
        "PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-8000;
         PRAGMA journal_size_limit=4194304;",
    )
    .ctx("setting pragmas")?;
    Ok(())
}

/// The catalog's version (0 for an empty database).
pub(crate) fn version(conn: &Connection) -> Result<i64> {
    let has_meta: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='meta'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ctx("reading schema")?
        > 0;
    if !has_meta {
        return Ok(0);
    }
    let v: Option<String> = conn
        .query_row(
            "SELECT value FROM meta WHERE key='schema_version'",
            [],
            |r| r.get(0),
        )
        .optional()
        .ctx("reading schema version")?;
    v.map_or(Ok(0), |v| {
        v.parse()
            .map_err(|_| StoreError::Invalid(format!("bad schema version {v:?}")))
    })
}

/// Brings the catalog up to `target` (normally [`LATEST`]); refuses a newer catalog.
pub(crate) fn migrate_to(conn: &mut Connection, target: i64) -> Result<()> {
    let current = version(conn)?;
    if current > LATEST {
        return Err(StoreError::NewerFormat {
            found: current,
            supported: LATEST,
        });
    }
    for (i, step) in MIGRATIONS.iter().enumerate() {
        let v = i as i64 + 1;
        if v <= current || v > target {
            continue;
        }
        let rebuild = matches!(step, Step::Rebuild(_) | Step::RebuildCode(_));
        if rebuild {
            // Has no effect inside a transaction: switched before it, back on after it.
            conn.pragma_update(None, "foreign_keys", false)
                .ctx("starting migration")?;
        }
        let applied = apply(conn, step, v);
        if rebuild {
            conn.pragma_update(None, "foreign_keys", true)
                .ctx("finishing migration")?;
        }
        if applied? {
            tracing::info!(version = v, "catalog migrated");
        }
    }
    Ok(())
}

/// Applies migration `step` (bringing the catalog to version `v`) in one transaction; false
/// when another process applied it meanwhile.
fn apply(conn: &mut Connection, step: &Step, v: i64) -> Result<bool> {
    {
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("starting migration")?;
        // Another process may have migrated while we waited for the lock.
        if version(&tx)? >= v {
            return Ok(false);
        }
        match step {
            Step::Sql(sql) => tx.execute_batch(sql).ctx("applying migration")?,
            Step::Code(f) => f(&tx)?,
            Step::Rebuild(_) | Step::RebuildCode(_) => {
                match step {
                    Step::Rebuild(sql) => tx.execute_batch(sql).ctx("applying migration")?,
                    Step::RebuildCode(f) => f(&tx)?,
                    _ => {}
                }
                let broken: i64 = tx
                    .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                        r.get(0)
                    })
                    .ctx("checking references after migration")?;
                if broken > 0 {
                    return Err(StoreError::Invalid(format!(
                        "migration {v} would leave {broken} broken references; catalog unchanged"
                    )));
                }
            }
        }
        tx.execute(
            "INSERT INTO meta(key, value) VALUES('schema_version', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [v.to_string()],
        )
        .ctx("recording schema version")?;
        tx.commit().ctx("committing migration")?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_from_the_first_version_keeping_data() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.db");
        let mut c = Connection::open(&p).unwrap();
        configure(&c, false).unwrap();
        migrate_to(&mut c, 1).unwrap();
        assert_eq!(version(&c).unwrap(), 1);
        let long_body = "quarterly numbers attached ".repeat(100);
        c.execute_batch(
            "INSERT INTO runs(id, started, status) VALUES (1, 0, 'committed');
             INSERT INTO objects(id, kind, graph_id, name) VALUES (1, 'user', 'u1', 'Ann');
             INSERT INTO nodes(id, object, graph_id, kind) VALUES (1, 1, 'm1', 'message');
             INSERT INTO node_versions(node, name, size, first_run) VALUES (1, 'Hello', 5, 1);
             INSERT INTO packs(id, name, size, blob_count, created_run) VALUES (1, x'00', 9, 1, 1);
             INSERT INTO blobs(id, hash, pack, offset, length, raw_length, flags)
                 VALUES (7, x'0102030405060708090a', 1, 8, 5, 5, 0);
             INSERT INTO contents(id, size, created_run) VALUES (1, 5, 1);
             INSERT INTO content_chunks(content, seq, blob) VALUES (1, 0, 7);",
        )
        .unwrap();
        drop(c);
        let mut c = Connection::open(&p).unwrap();
        configure(&c, false).unwrap();
        // Version 2 indexed text in an FTS5 table with its own copy of it.
        migrate_to(&mut c, 2).unwrap();
        c.execute(
            "INSERT INTO search(rowid, subject, sender, body) VALUES (1, 'Hello', 'Ann', ?1)",
            [&long_body],
        )
        .unwrap();
        drop(c);
        let mut c = Connection::open(&p).unwrap();
        configure(&c, false).unwrap();
        migrate_to(&mut c, LATEST).unwrap();
        let n: i64 = c
            .query_row(
                "SELECT count(*) FROM search WHERE search MATCH 'quarterly AND sender:ann'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1);
        let packed: Vec<u8> = c
            .query_row("SELECT packed FROM search_text WHERE id = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(packed.len() < long_body.len() / 4);
        assert_eq!(crate::search_text::unpack(&packed)[3], long_body);
        // The contentless index keeps no copy of the text.
        let copies: i64 = c
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name LIKE 'search_%content'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(copies, 0);
        // Blobs keep their rows and references and are found through the 8-byte prefix index.
        let lookup =
            "SELECT id FROM blobs WHERE substr(hash, 1, 8) = substr(?1, 1, 8) AND hash = ?1";
        let hash = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        let id: i64 = c.query_row(lookup, [&hash[..]], |r| r.get(0)).unwrap();
        assert_eq!(id, 7);
        let plan: String = c
            .query_row(&format!("EXPLAIN QUERY PLAN {lookup}"), [&hash[..]], |r| {
                r.get(3)
            })
            .unwrap();
        assert!(plan.contains("blobs_hash8"), "{plan}");
        let fk: bool = c
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert!(fk);
        assert!(c.execute("DELETE FROM blobs WHERE id = 7", []).is_err());
        assert_eq!(version(&c).unwrap(), LATEST);
        let name: String = c
            .query_row("SELECT name FROM node_versions WHERE node = 1", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(name, "Hello");
        let hits = |c: &Connection| -> i64 {
            c.query_row(
                "SELECT count(*) FROM search WHERE search MATCH 'hello'",
                [],
                |r| r.get(0),
            )
            .unwrap()
        };
        assert_eq!(hits(&c), 1);
        // Deleting the version takes it out of the index and drops its text (a trigger).
        c.execute("DELETE FROM node_versions WHERE id = 1", [])
            .unwrap();
        assert_eq!(hits(&c), 0);
        let texts: i64 = c
            .query_row("SELECT count(*) FROM search_text", [], |r| r.get(0))
            .unwrap();
        assert_eq!(texts, 0);
    }

    #[test]
    fn version_4_catalogs_plain_and_encrypted_get_keyed_nodes_and_one_version_index() {
        for key in [None, Some([7u8; 32])] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.db");
            let open = || {
                let c = Connection::open(&p).unwrap();
                if let Some(k) = &key {
                    crate::catalog_crypt::apply_key(&c, k).unwrap();
                }
                configure(&c, false).unwrap();
                c
            };
            let mut c = open();
            migrate_to(&mut c, 4).unwrap();
            let long_id = format!("AAMkAGI2TG93AAA{}=", "x".repeat(130));
            c.execute_batch(
                "INSERT INTO runs(id, started, status) VALUES (1, 0, 'committed');
                 INSERT INTO objects(id, kind, graph_id, name) VALUES (1, 'user', 'u1', 'Ann');
                 INSERT INTO objects(id, kind, graph_id, name) VALUES (2, 'user', 'u2', 'Bob');",
            )
            .unwrap();
            for (id, object, gid) in [(3, 1, "inbox"), (5, 1, long_id.as_str()), (9, 2, "inbox")] {
                c.execute(
                    "INSERT INTO nodes(id, object, graph_id, kind) VALUES (?1, ?2, ?3, 'message')",
                    rusqlite::params![id, object, gid],
                )
                .unwrap();
            }
            c.execute_batch(
                "INSERT INTO node_versions(node, parent, name, size, first_run) VALUES (5, 3, 'Hi', 2, 1);",
            )
            .unwrap();
            drop(c);
            let header = std::fs::read(&p).unwrap();
            assert_eq!(header.starts_with(b"SQLite format 3"), key.is_none());
            let mut c = open();
            migrate_to(&mut c, LATEST).unwrap();
            assert_eq!(version(&c).unwrap(), LATEST);
            // Same ids, keys computed, references intact, the unique copy of the ids gone.
            let find = "SELECT id FROM nodes WHERE object = ?1 AND key = ?2 AND graph_id = ?3";
            for (id, object, gid) in [(3, 1, "inbox"), (5, 1, long_id.as_str()), (9, 2, "inbox")] {
                let got: i64 = c
                    .query_row(find, rusqlite::params![object, node_key(gid), gid], |r| {
                        r.get(0)
                    })
                    .unwrap();
                assert_eq!(got, id);
            }
            let plan: String = c
                .query_row(
                    &format!("EXPLAIN QUERY PLAN {find}"),
                    rusqlite::params![1, 0, "x"],
                    |r| r.get(3),
                )
                .unwrap();
            assert!(plan.contains("nodes_key"), "{plan}");
            let autoindexes: i64 = c
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'sqlite_autoindex_nodes%'",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(autoindexes, 0);
            let parent: i64 = c
                .query_row("SELECT parent FROM node_versions WHERE node = 5", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(parent, 3);
            assert!(c.execute("DELETE FROM nodes WHERE id = 5", []).is_err());
            // Version 6: one index for a node's versions, still one open version per node.
            let plan: String = c
                .query_row(
                    "EXPLAIN QUERY PLAN SELECT id FROM node_versions WHERE node = 5 AND last_run IS NULL",
                    [],
                    |r| r.get(3),
                )
                .unwrap();
            assert!(plan.contains("nv_node"), "{plan}");
            let open_twice = c.execute(
                "INSERT INTO node_versions(node, name, size, first_run) VALUES (5, 'Again', 2, 1)",
                [],
            );
            assert!(open_twice.is_err());
            c.execute("UPDATE node_versions SET last_run = 1 WHERE node = 5", [])
                .unwrap();
            c.execute(
                "INSERT INTO node_versions(node, name, size, first_run) VALUES (5, 'Again', 2, 2)",
                [],
            )
            .unwrap();
            let indexes: i64 = c
                .query_row(
                    "SELECT count(*) FROM sqlite_schema WHERE name IN ('nv_open', 'nv_node')",
                    [],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(indexes, 1);
            let broken: i64 = c
                .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(broken, 0);
        }
    }

    #[test]
    fn newer_catalog_is_refused() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate_to(&mut c, LATEST).unwrap();
        c.execute(
            "UPDATE meta SET value = '999' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
        assert!(matches!(
            migrate_to(&mut c, LATEST),
            Err(StoreError::NewerFormat { found: 999, .. })
        ));
    }
}
