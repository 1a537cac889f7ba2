//! Behaviour of the repository on a temp folder, and (as root) on loop-mounted ext4 and btrfs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;

use backhome_store::{
    CreateOptions, KdfParams, NewVersion, NodeKind, Repository, RetentionPolicy, RunId, SearchText,
    SnapshotState, StoreError, VerifyMode, VersionOutcome,
};
use common::{bytes, folder, item, text, user};

fn read_all(repo: &Repository, c: backhome_store::ContentId) -> Vec<u8> {
    let mut v = Vec::new();
    repo.read_content(c).unwrap().read_to_end(&mut v).unwrap();
    v
}

/// The behavioural suite, run in a folder of the filesystem under test.
fn suite(base: &Path, expect_snapshots: bool) {
    let repo = Repository::create(base.join("repo"), &CreateOptions::default()).unwrap();
    assert_eq!(repo.is_subvolume(), expect_snapshots);

    // Run 1: a mailbox with a folder, messages, a large attachment stored twice.
    let big = bytes(5 << 20, 1);
    let mut run = repo.begin_run().unwrap();
    assert_eq!(run.run_id(), RunId(1));
    let ann = user(&mut run, "ann");
    let root = folder(&mut run, ann, "mailbox", None, "Mailbox");
    let inbox = folder(&mut run, ann, "inbox", Some(root), "Inbox");
    let m1 = item(&mut run, ann, "m1", inbox, "Budget", &text(3000, 1), "v1");
    let m2 = item(&mut run, ann, "m2", inbox, "Report", &big, "v1");
    let before = run.stats();
    let m3 = item(&mut run, ann, "m3", inbox, "Report copy", &big, "v1");
    assert!(
        run.stats().blobs_dedup > before.blobs_dedup,
        "identical content is stored once"
    );
    assert_eq!(run.stats().bytes_stored, before.bytes_stored);
    let m4 = run.node(ann, "m4", NodeKind::Message).unwrap();
    let c = run.put_bytes(b"quarterly numbers attached").unwrap();
    run.put_version(
        m4,
        &NewVersion {
            parent: Some(inbox),
            name: "Numbers".into(),
            content: Some(c.content),
            search: Some(SearchText {
                subject: "Numbers".into(),
                sender: "bob@example.com".into(),
                recipients: "ann@example.com".into(),
                body: "quarterly numbers attached".into(),
                path: "Mailbox/Inbox".into(),
            }),
            ..NewVersion::default()
        },
    )
    .unwrap();
    run.set_delta_token(ann, "inbox", "token-1").unwrap();
    assert_eq!(
        run.delta_token(ann, "inbox").unwrap().as_deref(),
        Some("token-1")
    );
    run.checkpoint().unwrap();
    // Readers see the unfinished run's current versions, but not its delta token or versions.
    assert_eq!(
        repo.current_version(ann, "m1")
            .unwrap()
            .unwrap()
            .version_tag
            .as_deref(),
        Some("v1")
    );
    assert_eq!(repo.delta_token(ann, "inbox").unwrap(), None);
    assert_eq!(repo.latest_run().unwrap(), None);
    assert!(matches!(repo.begin_run(), Err(StoreError::Locked(_))));
    let r1 = run.commit(&serde_json::json!({"items": 4})).unwrap();
    match (&r1.snapshot, expect_snapshots) {
        (SnapshotState::Created { path }, true) => assert!(path.exists()),
        (SnapshotState::Unsupported { .. }, false) => {}
        (s, e) => panic!("snapshot state {s:?}, expected snapshots: {e}"),
    }
    assert_eq!(repo.latest_run().unwrap(), Some(RunId(1)));
    assert_eq!(
        repo.delta_token(ann, "inbox").unwrap().as_deref(),
        Some("token-1")
    );

    let kids = repo.list_children(inbox, RunId(1)).unwrap();
    assert_eq!(
        kids.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["Budget", "Numbers", "Report", "Report copy"]
    );
    let report = repo
        .lookup_child_by_name(inbox, "Report", RunId(1))
        .unwrap()
        .unwrap();
    assert_eq!(report.node, m2);
    assert_eq!(read_all(&repo, report.content.unwrap().id), big);
    assert_eq!(
        repo.path_of(m1, RunId(1)).unwrap().as_deref(),
        Some("Mailbox/Inbox/Budget")
    );
    let hits = repo.search("quarterly", RunId(1), Some(ann), 10).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].version.node, m4);
    // Content hashes read back equal BLAKE3 of the stream, for one-blob and chunked contents.
    assert_eq!(hits[0].version.content.unwrap().hash, c.content.hash);
    assert_eq!(
        c.content.hash.0,
        *blake3::hash(b"quarterly numbers attached").as_bytes()
    );
    assert_eq!(
        report.content.unwrap().hash.0,
        *blake3::hash(&big).as_bytes()
    );

    // Run 2: change m1, delete m3, move m2 into a new folder, leave m4.
    let mut run = repo.begin_run().unwrap();
    assert!(!run.is_resumed());
    let ann2 = user(&mut run, "ann");
    assert_eq!(ann2, ann);
    let archive = folder(&mut run, ann, "archive", Some(root), "Archive");
    let m1b = text(3500, 2);
    let n = run.node(ann, "m1", NodeKind::Message).unwrap();
    let c = run.put_bytes(&m1b).unwrap();
    let out = run
        .put_version(
            n,
            &NewVersion {
                parent: Some(inbox),
                name: "Budget".into(),
                content: Some(c.content),
                version_tag: Some("v2".into()),
                ..NewVersion::default()
            },
        )
        .unwrap();
    assert!(matches!(out, VersionOutcome::Replaced(_)));
    assert!(run.delete_node(m3).unwrap());
    let before = run.stats();
    assert!(matches!(
        run.move_node(m2, Some(archive), "Report (final)").unwrap(),
        VersionOutcome::Replaced(_)
    ));
    assert_eq!(
        run.stats().bytes_stored,
        before.bytes_stored,
        "a move stores no data"
    );
    run.set_delta_token(ann, "inbox", "token-2").unwrap();
    run.commit(&serde_json::json!({})).unwrap();

    // Point in time: run 1 and run 2 each see their own state.
    let at1 = repo.list_children(inbox, RunId(1)).unwrap();
    assert_eq!(at1.len(), 4);
    assert_eq!(read_all(&repo, at1[0].content.unwrap().id), text(3000, 1));
    let at2 = repo.list_children(inbox, RunId(2)).unwrap();
    assert_eq!(
        at2.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(),
        ["Budget", "Numbers"]
    );
    assert_eq!(read_all(&repo, at2[0].content.unwrap().id), m1b);
    assert_eq!(
        repo.list_children(archive, RunId(2)).unwrap()[0].name,
        "Report (final)"
    );
    assert!(repo.list_children(archive, RunId(1)).unwrap().is_empty());
    assert_eq!(repo.history(m1).unwrap().len(), 2);
    assert_eq!(
        repo.delta_token(ann, "inbox").unwrap().as_deref(),
        Some("token-2")
    );
    let t = repo.runs().unwrap()[1].finished.unwrap();
    assert_eq!(repo.run_at(t).unwrap(), Some(RunId(2)));
    assert_eq!(repo.run_at(t - time::Duration::days(365)).unwrap(), None);

    // Run 3 fails: its changes are rolled back.
    let mut run = repo.begin_run().unwrap();
    assert_eq!(run.run_id(), RunId(3));
    assert!(run.delete_node(m4).unwrap());
    run.set_delta_token(ann, "inbox", "token-bad").unwrap();
    run.checkpoint().unwrap();
    run.fail(&serde_json::json!({"error": "test"})).unwrap();
    assert!(repo.current_version(ann, "m4").unwrap().is_some());
    assert_eq!(
        repo.delta_token(ann, "inbox").unwrap().as_deref(),
        Some("token-2")
    );
    assert!(matches!(
        repo.list_children(inbox, RunId(3)),
        Err(StoreError::UnknownRun(3))
    ));

    // Run 4 commits nothing new; snapshots of committed runs open read-only.
    let run = repo.begin_run().unwrap();
    run.commit(&serde_json::json!({})).unwrap();
    if expect_snapshots {
        let snaps = repo.snapshots().unwrap();
        assert_eq!(snaps.iter().map(|s| s.run.0).collect::<Vec<_>>(), [1, 2, 4]);
        let old = Repository::open_read_only(&snaps[0].path, None).unwrap();
        assert_eq!(old.latest_run().unwrap(), Some(RunId(1)));
        assert_eq!(read_all(&old, report.content.unwrap().id), big);
        assert!(matches!(old.begin_run(), Err(StoreError::ReadOnly)));
    }

    assert!(repo.verify(VerifyMode::Full).unwrap().is_ok());

    // Retention: keep the newest run only; run 1's old versions go, current data stays.
    let ret = repo
        .apply_retention(
            RetentionPolicy::KeepRuns(1),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    assert_eq!(ret.kept_runs, [RunId(4)]);
    assert_eq!(ret.pruned_runs, [RunId(1), RunId(2)]);
    assert!(ret.versions_removed >= 3, "{ret:?}");
    assert!(ret.gc.contents_removed >= 1, "{ret:?}");
    if expect_snapshots {
        assert_eq!(
            repo.snapshots()
                .unwrap()
                .iter()
                .map(|s| s.run.0)
                .collect::<Vec<_>>(),
            [4]
        );
    }
    assert!(matches!(
        repo.list_children(inbox, RunId(1)),
        Err(StoreError::UnknownRun(1))
    ));
    let now = repo.list_children(inbox, RunId(4)).unwrap();
    assert_eq!(now.len(), 2);
    assert_eq!(read_all(&repo, now[0].content.unwrap().id), m1b);
    let moved = repo.list_children(archive, RunId(4)).unwrap();
    assert_eq!(read_all(&repo, moved[0].content.unwrap().id), big);
    let v = repo.verify(VerifyMode::Full).unwrap();
    assert!(v.is_ok(), "{v:?}");

    // A copy of the catalog opens as a repository next to the same packs.
    let copy = base.join("copy");
    std::fs::create_dir(&copy).unwrap();
    repo.export_catalog(copy.join("catalog.db")).unwrap();
    assert!(repo.export_catalog(copy.join("catalog.db")).is_err());
    std::fs::copy(base.join("repo/config.json"), copy.join("config.json")).unwrap();
    let c = Repository::open_read_only(&copy, None).unwrap();
    assert_eq!(c.latest_run().unwrap(), Some(RunId(4)));
    assert_eq!(c.list_children(inbox, RunId(4)).unwrap().len(), 2);

    // Reopen from disk.
    drop(repo);
    let repo = Repository::open(base.join("repo"), None).unwrap();
    assert_eq!(repo.latest_run().unwrap(), Some(RunId(4)));
}

#[test]
fn suite_on_temp_folder() {
    let dir = tempfile::tempdir().unwrap();
    let on_btrfs = backhome_store::fs_kind(dir.path()) == backhome_store::FsKind::Btrfs;
    suite(dir.path(), on_btrfs);
}

#[test]
fn suite_on_ext4() {
    if !common::root_tests("suite_on_ext4") {
        return;
    }
    let fs = common::LoopFs::new("ext4", 200);
    suite(fs.path(), false);
}

#[test]
fn suite_on_btrfs() {
    if !common::root_tests("suite_on_btrfs") {
        return;
    }
    let fs = common::LoopFs::new("btrfs", 300);
    suite(fs.path(), true);
}

#[test]
fn killed_writer_is_resumed_with_its_checkpointed_work() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::create(dir.path().join("r"), &CreateOptions::default()).unwrap();
    let mut run = repo.begin_run().unwrap();
    let ann = user(&mut run, "ann");
    let f = folder(&mut run, ann, "f", None, "F");
    item(&mut run, ann, "a", f, "A", b"aaa", "t1");
    run.checkpoint().unwrap();
    item(&mut run, ann, "b", f, "B", b"bbb", "t1");
    drop(run); // as if killed: "b" was not checkpointed
    let mut run = repo.begin_run().unwrap();
    assert!(run.is_resumed());
    assert_eq!(run.run_id(), RunId(1));
    assert!(run.current_version(ann, "a").unwrap().is_some());
    assert!(run.current_version(ann, "b").unwrap().is_none());
    item(&mut run, ann, "b", f, "B", b"bbb", "t1");
    // Re-writing an item of the same run updates it in place.
    let n = run.node(ann, "a", NodeKind::Message).unwrap();
    let c = run.put_bytes(b"aaa2").unwrap();
    let out = run
        .put_version(
            n,
            &NewVersion {
                parent: Some(f),
                name: "A".into(),
                content: Some(c.content),
                version_tag: Some("t2".into()),
                ..NewVersion::default()
            },
        )
        .unwrap();
    assert!(matches!(out, VersionOutcome::Updated(_)));
    run.commit(&serde_json::json!({})).unwrap();
    let kids = repo.list_children(f, RunId(1)).unwrap();
    assert_eq!(kids.len(), 2);
    assert_eq!(read_all(&repo, kids[0].content.unwrap().id), b"aaa2");
}

#[test]
fn encrypted_repository_round_trip_and_wrong_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("enc");
    let opts = CreateOptions {
        passphrase: Some("correct horse".into()),
        kdf: KdfParams {
            memory_kib: 8 * 1024,
            iterations: 1,
        },
        ..CreateOptions::default()
    };
    let repo = Repository::create(&p, &opts).unwrap();
    assert!(repo.is_encrypted());
    let secret = text(200_000, 9);
    let mut run = repo.begin_run().unwrap();
    let ann = user(&mut run, "ann");
    let f = folder(&mut run, ann, "f", None, "F");
    item(&mut run, ann, "a", f, "A", &secret, "t");
    run.commit(&serde_json::json!({})).unwrap();
    drop(repo);
    assert!(matches!(
        Repository::open(&p, Some("wrong")),
        Err(StoreError::WrongPassphrase)
    ));
    assert!(matches!(
        Repository::open(&p, None),
        Err(StoreError::PassphraseRequired)
    ));
    let repo = Repository::open(&p, Some("correct horse")).unwrap();
    let v = repo.list_children(f, RunId(1)).unwrap();
    assert_eq!(read_all(&repo, v[0].content.unwrap().id), secret);
    assert!(repo.verify(VerifyMode::Full).unwrap().is_ok());
    // Nothing of the plain text is in the packs.
    for e in walk(&p.join("packs")) {
        let b = std::fs::read(e).unwrap();
        assert!(!b.windows(16).any(|w| w == &secret[..16]));
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn repository_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r");
    Repository::create(&p, &CreateOptions::default()).unwrap();
    let cfg = std::fs::read_to_string(p.join("config.json")).unwrap();
    std::fs::write(
        p.join("config.json"),
        cfg.replace("\"format\": 1", "\"format\": 7"),
    )
    .unwrap();
    assert!(matches!(
        Repository::open(&p, None),
        Err(StoreError::NewerFormat { found: 7, .. })
    ));
    assert!(matches!(
        Repository::open(dir.path(), None),
        Err(StoreError::NotARepository { .. })
    ));
    assert!(matches!(
        Repository::create(&p, &CreateOptions::default()),
        Err(StoreError::AlreadyExists { .. })
    ));
}

#[test]
fn flipped_bytes_in_a_pack_are_named_by_full_verify() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r");
    let repo = Repository::create(&p, &CreateOptions::default()).unwrap();
    let mut run = repo.begin_run().unwrap();
    let ann = user(&mut run, "ann");
    let f = folder(&mut run, ann, "f", None, "Inbox");
    for i in 0..20 {
        item(
            &mut run,
            ann,
            &format!("m{i}"),
            f,
            &format!("Message {i}"),
            &text(20_000, 2 * i + 1),
            "t",
        );
    }
    run.commit(&serde_json::json!({})).unwrap();
    assert!(repo.verify(VerifyMode::Quick).unwrap().is_ok());
    let packs = walk(&p.join("packs"));
    assert_eq!(packs.len(), 1);
    let mut b = std::fs::read(&packs[0]).unwrap();
    // Inside the first blob's stored bytes (after the 8-byte pack magic and a 49-byte header).
    let at = 200;
    b[at] ^= 0xff;
    b[at + 1] ^= 0x55;
    std::fs::write(&packs[0], &b).unwrap();
    assert!(
        repo.verify(VerifyMode::Quick).unwrap().is_ok(),
        "quick verify only checks sizes"
    );
    let v = repo.verify(VerifyMode::Full).unwrap();
    assert!(!v.is_ok());
    assert_eq!(v.damaged_blobs.len(), 1, "{v:?}");
    assert_eq!(v.affected.len(), 1, "{v:?}");
    let a = &v.affected[0];
    assert!(a.name.starts_with("Message "));
    assert_eq!(
        a.path.as_deref(),
        Some(format!("Inbox/{}", a.name).as_str())
    );
    // Reading the damaged item fails with a clear error; the others still read.
    let kids = repo.list_children(f, RunId(1)).unwrap();
    let mut damaged = 0;
    for k in kids {
        let mut out = Vec::new();
        if repo
            .read_content(k.content.unwrap().id)
            .unwrap()
            .read_to_end(&mut out)
            .is_err()
        {
            damaged += 1;
            assert_eq!(k.node, a.node);
        }
    }
    assert_eq!(damaged, 1);
    // A truncated pack is found by the quick verify.
    std::fs::write(&packs[0], &b[..b.len() - 10]).unwrap();
    let q = repo.verify(VerifyMode::Quick).unwrap();
    assert_eq!(q.damaged_packs.len(), 1);
    assert_eq!(q.affected.len(), 20);
}

#[test]
fn large_stream_is_chunked_and_deduplicated_across_edits() {
    struct Gen(u64, u64);
    impl Read for Gen {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(self.0 as usize);
            for b in &mut out[..n] {
                self.1 ^= self.1 << 13;
                self.1 ^= self.1 >> 7;
                self.1 ^= self.1 << 17;
                *b = (self.1 >> 40) as u8;
            }
            self.0 -= n as u64;
            Ok(n)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::create(dir.path().join("r"), &CreateOptions::default()).unwrap();
    let mut run = repo.begin_run().unwrap();
    let s = run.put_content(Gen(40 << 20, 3)).unwrap();
    assert_eq!(s.content.size, 40 << 20);
    assert!(run.stats().blobs_new >= 20, "{:?}", run.stats());
    // Same stream with a prefix: most chunks are shared.
    let before = run.stats();
    let s2 = run
        .put_content(std::io::Cursor::new(b"prefix".to_vec()).chain(Gen(40 << 20, 3)))
        .unwrap();
    let added = run.stats().bytes_stored - before.bytes_stored;
    assert!(
        added < 8 << 20,
        "an insertion stores only nearby chunks again ({added} bytes)"
    );
    run.commit(&serde_json::json!({})).unwrap();
    let mut r = repo.read_content(s2.content.id).unwrap();
    let mut head = [0u8; 6];
    r.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"prefix");
    let mut expected = Gen(40 << 20, 3);
    let (mut a, mut b) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = r.read(&mut a).unwrap();
        if n == 0 {
            break;
        }
        expected.read_exact(&mut b[..n]).unwrap();
        assert_eq!(a[..n], b[..n]);
    }
}

#[test]
fn gc_repacks_mostly_garbage_packs_and_deletes_empty_ones() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("r");
    let repo = Repository::create(&p, &CreateOptions::default()).unwrap();
    let mut run = repo.begin_run().unwrap();
    let ann = user(&mut run, "ann");
    let f = folder(&mut run, ann, "f", None, "F");
    let mut nodes = Vec::new();
    for i in 0..40u64 {
        nodes.push(item(
            &mut run,
            ann,
            &format!("m{i}"),
            f,
            &format!("M{i}"),
            &bytes(50_000, i),
            "t",
        ));
    }
    run.commit(&serde_json::json!({})).unwrap();
    // A second pack whose items all go away.
    let mut run = repo.begin_run().unwrap();
    let mut doomed = Vec::new();
    for i in 0..5u64 {
        doomed.push(item(
            &mut run,
            ann,
            &format!("d{i}"),
            f,
            &format!("D{i}"),
            &bytes(50_000, 1000 + i),
            "t",
        ));
    }
    run.commit(&serde_json::json!({})).unwrap();
    assert_eq!(walk(&p.join("packs")).len(), 2);
    let mut run = repo.begin_run().unwrap();
    for n in nodes.iter().take(30).chain(&doomed) {
        run.delete_node(*n).unwrap();
    }
    run.commit(&serde_json::json!({})).unwrap();
    // Keeping all runs keeps all data.
    let keep = repo
        .apply_retention(RetentionPolicy::KeepAll, time::OffsetDateTime::now_utc())
        .unwrap();
    assert_eq!(keep.versions_removed, 0);
    assert_eq!(keep.gc.blobs_removed, 0);
    // Asked to stop at once: versions and contents are pruned, packs wait for the next run.
    let stop = std::sync::atomic::AtomicBool::new(true);
    let now = time::OffsetDateTime::now_utc();
    let ret = repo
        .apply_retention_with_stop(RetentionPolicy::KeepRuns(1), now, &stop)
        .unwrap();
    assert!(ret.gc.interrupted);
    assert_eq!(ret.versions_removed, 35);
    assert_eq!(ret.gc.contents_removed, 35);
    assert_eq!(ret.gc.packs_deleted + ret.gc.packs_repacked, 0);
    assert_eq!(walk(&p.join("packs")).len(), 2);
    let ret = repo
        .apply_retention(RetentionPolicy::KeepRuns(1), now)
        .unwrap();
    assert!(!ret.gc.interrupted);
    assert_eq!(ret.gc.packs_deleted, 1, "{ret:?}");
    assert_eq!(ret.gc.packs_repacked, 1, "{ret:?}");
    assert_eq!(ret.gc.blobs_removed, 35);
    assert!(ret.gc.bytes_freed > 30 * 50_000);
    assert_eq!(walk(&p.join("packs")).len(), 1);
    let kids = repo.list_children(f, RunId(3)).unwrap();
    assert_eq!(kids.len(), 10);
    for k in kids {
        let i: u64 = k.name[1..].parse().unwrap();
        assert_eq!(read_all(&repo, k.content.unwrap().id), bytes(50_000, i));
    }
    assert!(repo.verify(VerifyMode::Full).unwrap().is_ok());
}

#[test]
fn a_broken_source_stream_or_bad_name_does_not_stop_the_run() {
    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "download broke off",
                ));
            }
            let n = out.len().min(self.0).min(100_000);
            out[..n].fill(7);
            self.0 -= n;
            Ok(n)
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::create(dir.path().join("r"), &CreateOptions::default()).unwrap();
    let mut run = repo.begin_run().unwrap();
    let ann = user(&mut run, "ann");
    let f = folder(&mut run, ann, "f", None, "F");
    let err = run.put_content(Broken(3 << 20)).unwrap_err();
    assert!(
        matches!(err, StoreError::Source { .. }) && err.is_temporary(),
        "{err:?}"
    );
    let n = run.node(ann, "x", NodeKind::Message).unwrap();
    let bad = NewVersion {
        parent: Some(f),
        name: "a\0b".into(),
        ..NewVersion::default()
    };
    assert!(matches!(
        run.put_version(n, &bad),
        Err(StoreError::Invalid(_))
    ));
    // The run goes on and commits.
    item(&mut run, ann, "ok", f, "OK", b"fine", "t");
    run.commit(&serde_json::json!({})).unwrap();
    assert_eq!(repo.list_children(f, RunId(1)).unwrap().len(), 1);
    assert!(repo.verify(VerifyMode::Full).unwrap().is_ok());
}

#[test]
fn identical_items_in_quick_succession_share_one_blob() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::create(dir.path().join("r"), &CreateOptions::default()).unwrap();
    let mut run = repo.begin_run().unwrap();
    let ann = user(&mut run, "ann");
    let f = folder(&mut run, ann, "f", None, "F");
    let data = text(30_000, 5);
    for i in 0..6 {
        item(
            &mut run,
            ann,
            &format!("m{i}"),
            f,
            &format!("M{i}"),
            &data,
            "t",
        );
        item(
            &mut run,
            ann,
            &format!("u{i}"),
            f,
            &format!("U{i}"),
            &text(10_000, 2 * i + 101),
            "t",
        );
    }
    run.commit(&serde_json::json!({})).unwrap();
    let stats = repo.runs().unwrap();
    assert_eq!(stats.len(), 1);
    let kids = repo.list_children(f, RunId(1)).unwrap();
    assert_eq!(kids.len(), 12);
    for k in &kids {
        let expected = if k.name.starts_with('M') {
            data.clone()
        } else {
            text(10_000, 2 * k.name[1..].parse::<u64>().unwrap() + 101)
        };
        assert_eq!(
            read_all(&repo, k.content.unwrap().id),
            expected,
            "{}",
            k.name
        );
    }
    let v = repo.verify(VerifyMode::Full).unwrap();
    assert!(v.is_ok());
    // 1 shared + 6 unique + empty folder contents: the shared data is one blob.
    assert_eq!(v.blobs_checked, 7, "{v:?}");
}

/// A mail-like item: headers and text, a few KB.
fn small_mail(i: u64) -> Vec<u8> {
    let mut m = format!(
        "From: user{}@example.com\r\nTo: team@example.com\r\nSubject: weekly {i}\r\n\r\n",
        i % 9
    )
    .into_bytes();
    m.extend(text(2_000 + (i as usize % 7) * 1_000, i + 1));
    m
}

#[test]
fn small_blobs_get_a_trained_dictionary_that_reads_back_after_reopening() {
    for pass in [None, Some("dictionary pass")] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r");
        let opts = CreateOptions {
            passphrase: pass.map(str::to_string),
            kdf: KdfParams {
                memory_kib: 8 * 1024,
                iterations: 1,
            },
            ..CreateOptions::default()
        };
        let repo = Repository::create(&p, &opts).unwrap();
        let mut run = repo.begin_run().unwrap();
        let ann = user(&mut run, "ann");
        let f = folder(&mut run, ann, "f", None, "F");
        // About 11 MiB of mails: the first 8 MiB train the dictionary, the rest use it.
        let n = 2_300;
        for i in 0..n {
            item(
                &mut run,
                ann,
                &format!("m{i}"),
                f,
                &format!("M{i}"),
                &small_mail(i),
                "t",
            );
        }
        let big = bytes(3 << 20, 5);
        item(&mut run, ann, "big", f, "Big", &big, "t");
        run.commit(&serde_json::json!({})).unwrap();
        let cfg = std::fs::read_to_string(p.join("config.json")).unwrap();
        assert!(cfg.contains("\"format\": 2"), "{cfg}");
        let space = repo.space_report().unwrap();
        assert!(space.dict_blobs > 500, "{space:?}");
        assert!(space.dict_bytes > 1_000, "{space:?}");
        assert_eq!(
            space.pack_bytes,
            space.blob_data + space.blob_headers + space.pack_framing + space.seal_overhead,
            "{space:?}"
        );
        assert!(
            space
                .catalog_tables
                .iter()
                .any(|(t, _)| t == "node_versions")
        );
        drop(repo);
        // Another process reads every item back through the stored dictionary.
        let repo = Repository::open(&p, pass).unwrap();
        let kids = repo.list_children(f, RunId(1)).unwrap();
        assert_eq!(kids.len(), n as usize + 1);
        for k in &kids {
            let want = match k.name.strip_prefix('M') {
                Some(i) => small_mail(i.parse().unwrap()),
                None => big.clone(),
            };
            assert_eq!(read_all(&repo, k.content.unwrap().id), want, "{}", k.name);
        }
        assert!(repo.verify(VerifyMode::Full).unwrap().is_ok());
        // A second run keeps the dictionary and compresses its new small blobs with it.
        let before = repo.space_report().unwrap().dict_blobs;
        let mut run = repo.begin_run().unwrap();
        let ann = user(&mut run, "ann");
        item(&mut run, ann, "new", f, "New", &small_mail(99_999), "t");
        run.commit(&serde_json::json!({})).unwrap();
        assert_eq!(repo.space_report().unwrap().dict_blobs, before + 1);
        // In an encrypted repository the dictionary's text is sealed like the blobs.
        let mut dict_files = walk(&p.join("dict"));
        dict_files.sort();
        // Two copies of the one dictionary, the same bytes.
        assert_eq!(dict_files.len(), 2, "{dict_files:?}");
        let raw = std::fs::read(&dict_files[0]).unwrap();
        assert_eq!(raw, std::fs::read(&dict_files[1]).unwrap());
        let plain_words = raw.windows(9).any(|w| w == b"quarterly");
        assert!(!(plain_words && pass.is_some()));
        // One copy damaged: every blob still reads, through the other.
        let mut bad = raw.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x55;
        std::fs::write(&dict_files[0], &bad).unwrap();
        drop(repo);
        let repo = Repository::open(&p, pass).unwrap();
        assert!(repo.verify(VerifyMode::Full).unwrap().is_ok());
        // Without both copies a blob that needs it is reported damaged, naming the reason.
        std::fs::remove_file(&dict_files[1]).unwrap();
        drop(repo);
        let repo = Repository::open(&p, pass).unwrap();
        let v = repo.verify(VerifyMode::Full).unwrap();
        assert!(!v.is_ok());
        assert!(
            v.damaged_blobs
                .iter()
                .any(|d| d.reason.contains("dictionary")),
            "{v:?}"
        );
    }
}
