//! Full volume: a run that hits ENOSPC fails with `VolumeFull`, the repository stays valid, and
//! the next run works once space is freed. On small loop-mounted ext4 and btrfs (root only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::Path;

use backhome_store::{CreateOptions, Repository, RunId, StoreError, VerifyMode};

/// Fills the filesystem at `dir` until only about `leave` bytes are free.
fn fill(dir: &Path, leave: u64) -> std::path::PathBuf {
    let p = dir.join("filler");
    let mut f = std::fs::File::create(&p).unwrap();
    let block = common::bytes(1 << 20, 99);
    loop {
        let out = Command::new("df")
            .args(["-B1", "--output=avail"])
            .arg(dir)
            .output()
            .unwrap();
        let avail: u64 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if avail <= leave + (1 << 20) {
            break;
        }
        if f.write_all(&block).and_then(|()| f.sync_all()).is_err() {
            break;
        }
    }
    p
}

use std::process::Command;

fn full_disk(fs: &common::LoopFs) {
    let path = fs.path().join("repo");
    let repo = Repository::create(
        &path,
        &CreateOptions {
            no_subvolume: true,
            ..CreateOptions::default()
        },
    )
    .unwrap();
    let mut run = repo.begin_run().unwrap();
    let ann = common::user(&mut run, "ann");
    let f = common::folder(&mut run, ann, "f", None, "Inbox");
    let first = common::bytes(300_000, 1);
    common::item(&mut run, ann, "a", f, "A", &first, "t");
    run.commit(&serde_json::json!({})).unwrap();

    let filler = fill(fs.path(), 3 << 20);
    // The volume may be too full to even start the run (the catalog cannot grow its WAL), or
    // the run fails while writing packs: either way a clear VolumeFull.
    let err = match repo.begin_run() {
        Err(e) => e,
        Ok(mut run) => {
            let mut hit = None;
            for i in 0..200u64 {
                let r = run
                    .put_bytes(&common::bytes(1 << 20, 100 + i))
                    .and_then(|_| run.checkpoint());
                if let Err(e) = r {
                    hit = Some(e);
                    break;
                }
            }
            // The writer refuses further work; dropping it leaves the run to be resumed.
            assert!(run.put_bytes(b"more").is_err());
            hit.expect("the volume never filled up")
        }
    };
    assert!(matches!(err, StoreError::VolumeFull { .. }), "{err:?}");
    assert!(err.is_temporary());

    let repo = Repository::open(&path, None).unwrap();
    assert!(repo.verify(VerifyMode::Quick).unwrap().is_ok());
    let v = repo.list_children(f, RunId(1)).unwrap();
    let mut got = Vec::new();
    repo.read_content(v[0].content.unwrap().id)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, first);

    drop(repo);
    std::fs::remove_file(filler).unwrap();
    let repo = Repository::open(&path, None).unwrap();
    let mut run = repo.begin_run().unwrap();
    assert_eq!(run.run_id(), RunId(2));
    let second = common::bytes(2 << 20, 7);
    common::item(&mut run, ann, "b", f, "B", &second, "t");
    run.commit(&serde_json::json!({})).unwrap();
    let v = repo
        .lookup_child_by_name(f, "B", RunId(2))
        .unwrap()
        .unwrap();
    let mut got = Vec::new();
    repo.read_content(v.content.unwrap().id)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, second);
    let full = repo.verify(VerifyMode::Full).unwrap();
    assert!(full.is_ok(), "{full:?}");
}

#[test]
fn full_ext4_volume() {
    if !common::root_tests("full_ext4_volume") {
        return;
    }
    full_disk(&common::LoopFs::new("ext4", 24));
}

#[test]
fn full_btrfs_volume() {
    if !common::root_tests("full_btrfs_volume") {
        return;
    }
    full_disk(&common::LoopFs::new("btrfs", 120));
}
