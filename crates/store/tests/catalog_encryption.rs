//! The catalog of an encrypted repository is encrypted at rest: neither `catalog.db` nor its WAL
//! (nor an exported copy) contains the names, subjects, senders or bodies it indexes, while an
//! unencrypted repository keeps a plain SQLite catalog.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};

use backhome_store::{
    CreateOptions, KdfParams, NewVersion, NodeKind, Repository, RunId, SearchFilter, SearchText,
    StoreError, VerifyMode,
};

const SECRETS: &[&str] = &[
    "Quarterly merger with Plumbago Industries",
    "wilhelmina.obscura@example.com",
    "bartholomew.quill@example.com",
    "The codename is heliotrope-vortex",
    "Merger-plan-final.docx",
    "Ingrid Vantablack",
];

fn opts(pass: Option<&str>) -> CreateOptions {
    CreateOptions {
        passphrase: pass.map(str::to_string),
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
        },
        no_subvolume: true,
        ..CreateOptions::default()
    }
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// The secrets found in the raw bytes of `path` (none when the file does not exist).
fn leaked(path: &Path) -> Vec<&'static str> {
    let Ok(bytes) = std::fs::read(path) else {
        return Vec::new();
    };
    SECRETS
        .iter()
        .copied()
        .filter(|s| {
            // Each secret and its longest word, as SQLite or FTS5 would store them.
            let word = s
                .split([' ', '.', '@', '-'])
                .max_by_key(|w| w.len())
                .unwrap();
            [s.as_bytes(), word.as_bytes()]
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == *n))
        })
        .collect()
}

/// Writes one run with an object, a folder and a searchable message; returns (folder, run).
fn write_secrets(repo: &Repository) -> (backhome_store::NodeId, RunId) {
    let mut run = repo.begin_run().unwrap();
    let obj = run
        .upsert_object(&backhome_store::ObjectInfo {
            kind: backhome_store::ObjectKind::User,
            graph_id: "u-1".into(),
            name: SECRETS[5].into(),
            address: Some(SECRETS[2].into()),
            extra: serde_json::Value::Null,
        })
        .unwrap();
    let f = common::folder(&mut run, obj, "inbox", None, "Inbox");
    let n = run.node(obj, "m-1", NodeKind::Message).unwrap();
    let c = run.put_bytes(SECRETS[3].as_bytes()).unwrap();
    run.put_version(
        n,
        &NewVersion {
            parent: Some(f),
            name: SECRETS[0].into(),
            content: Some(c.content),
            metadata: serde_json::json!({ "from": SECRETS[1] }),
            search: Some(SearchText {
                subject: SECRETS[0].into(),
                sender: SECRETS[1].into(),
                recipients: SECRETS[2].into(),
                body: SECRETS[3].into(),
                path: format!("Inbox/{}", SECRETS[4]),
            }),
            ..NewVersion::default()
        },
    )
    .unwrap();
    let report = run.commit(&serde_json::json!({})).unwrap();
    (f, report.run)
}

#[test]
fn encrypted_repository_catalog_leaks_nothing_and_needs_the_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("enc");
    let catalog = root.join("catalog.db");
    let repo = Repository::create(&root, &opts(Some("correct horse"))).unwrap();
    // A pooled read connection stays open, so the run's writes stay in the WAL.
    assert!(repo.latest_run().unwrap().is_none());
    let (folder, run) = write_secrets(&repo);
    let wal = with_suffix(&catalog, "-wal");
    assert!(std::fs::metadata(&wal).unwrap().len() > 0);
    assert_eq!(leaked(&catalog), Vec::<&str>::new());
    assert_eq!(leaked(&wal), Vec::<&str>::new());
    assert!(
        !std::fs::read(&catalog)
            .unwrap()
            .starts_with(b"SQLite format 3")
    );
    let export = dir.path().join("catalog-copy.db");
    repo.export_catalog(&export).unwrap();
    assert!(std::fs::metadata(&export).unwrap().len() >= 4096);
    assert!(
        !std::fs::read(&export)
            .unwrap()
            .starts_with(b"SQLite format 3")
    );
    assert_eq!(leaked(&export), Vec::<&str>::new());
    drop(repo);
    assert_eq!(leaked(&catalog), Vec::<&str>::new());
    assert_eq!(leaked(&wal), Vec::<&str>::new());

    assert!(matches!(
        Repository::open(&root, Some("wrong")),
        Err(StoreError::WrongPassphrase)
    ));
    assert!(matches!(
        Repository::open(&root, None),
        Err(StoreError::PassphraseRequired)
    ));
    let repo = Repository::open(&root, Some("correct horse")).unwrap();
    let kids = repo.list_children(folder, run).unwrap();
    assert_eq!(kids[0].name, SECRETS[0]);
    let hits = repo.search("heliotrope", run, None, 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].snippet, "The codename is [heliotrope]-vortex",
        "{hits:?}"
    );
    let hits = repo
        .search_filtered(
            &SearchFilter {
                sender: Some("wilhelmina".into()),
                limit: 10,
                ..SearchFilter::default()
            },
            run,
        )
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert!(repo.verify(VerifyMode::Full).unwrap().is_ok());
    drop(repo);
    // Read-only opens (restores from snapshots) key the catalog too.
    let ro = Repository::open_read_only(&root, Some("correct horse")).unwrap();
    assert_eq!(ro.list_children(folder, run).unwrap().len(), 1);
}

/// The control: without encryption the catalog is a plain SQLite file, and the same grep finds
/// the same strings (so the check above can fail).
#[test]
fn unencrypted_repository_keeps_a_plain_sqlite_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("plain");
    let repo = Repository::create(&root, &opts(None)).unwrap();
    write_secrets(&repo);
    drop(repo);
    let catalog = root.join("catalog.db");
    assert!(
        std::fs::read(&catalog)
            .unwrap()
            .starts_with(b"SQLite format 3\0")
    );
    let found = leaked(&catalog);
    for s in [SECRETS[0], SECRETS[1], SECRETS[2], SECRETS[5]] {
        assert!(found.contains(&s), "{s} not found in the plain catalog");
    }
}
