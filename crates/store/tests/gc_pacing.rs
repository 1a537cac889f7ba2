//! Garbage collection pacing: a paced collection sleeps in proportion to its work and under its
//! byte-rate cap (as its report accounts), an unpaced one never sleeps, and a stop request
//! during a long pause ends the collection promptly with the repository intact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backhome_store::{
    CreateOptions, GcPacing, NodeId, Repository, RetentionPolicy, RunId, VerifyMode,
};
use common::{bytes, folder, item, user};

const ITEM: usize = 50_000;

/// A repository with one pack that is 75 % garbage (repacked by GC) and one that is all garbage
/// (deleted by GC); returns the folder and the run whose ten items survive.
fn repository_with_garbage(p: &Path) -> (Repository, NodeId, RunId) {
    let repo = Repository::create(p, &CreateOptions::default()).unwrap();
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
            &bytes(ITEM, i),
            "t",
        ));
    }
    run.commit(&serde_json::json!({})).unwrap();
    let mut run = repo.begin_run().unwrap();
    let mut doomed = Vec::new();
    for i in 0..5u64 {
        doomed.push(item(
            &mut run,
            ann,
            &format!("d{i}"),
            f,
            &format!("D{i}"),
            &bytes(ITEM, 1000 + i),
            "t",
        ));
    }
    run.commit(&serde_json::json!({})).unwrap();
    let mut run = repo.begin_run().unwrap();
    for n in nodes.iter().take(30).chain(&doomed) {
        run.delete_node(*n).unwrap();
    }
    let last = run.commit(&serde_json::json!({})).unwrap().run;
    // Prune the older runs without collecting yet: the stop flag is set from the start.
    let stop = AtomicBool::new(true);
    let r = repo
        .apply_retention_paced(
            RetentionPolicy::KeepRuns(1),
            time::OffsetDateTime::now_utc(),
            &stop,
            GcPacing::NONE,
        )
        .unwrap();
    assert!(r.gc.interrupted);
    (repo, f, last)
}

fn check_survivors(repo: &Repository, f: NodeId, run: RunId) {
    let kids = repo.list_children(f, run).unwrap();
    assert_eq!(kids.len(), 10);
    for k in kids {
        let i: u64 = k.name[1..].parse().unwrap();
        let mut got = Vec::new();
        repo.read_content(k.content.unwrap().id)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert_eq!(got, bytes(ITEM, i));
    }
    assert!(repo.verify(VerifyMode::Full).unwrap().is_ok());
}

#[test]
fn unpaced_gc_never_sleeps() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, f, run) = repository_with_garbage(&dir.path().join("r"));
    let r = repo
        .gc_paced(&AtomicBool::new(false), GcPacing::NONE)
        .unwrap();
    assert_eq!((r.packs_deleted, r.packs_repacked), (1, 1), "{r:?}");
    assert_eq!(r.paced, Duration::ZERO);
    assert!(r.worked > Duration::ZERO);
    check_survivors(&repo, f, run);
    // The catalog gives the pages of dropped rows back to the volume.
    let c = rusqlite::Connection::open(repo.root().join("catalog.db")).unwrap();
    let mode: i64 = c.query_row("PRAGMA auto_vacuum", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, 2, "incremental");
    let free: i64 = c
        .query_row("PRAGMA freelist_count", [], |r| r.get(0))
        .unwrap();
    assert_eq!(free, 0);
}

#[test]
fn paced_gc_sleeps_in_proportion_to_its_work() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, f, run) = repository_with_garbage(&dir.path().join("r"));
    let started = Instant::now();
    let r = repo
        .gc_paced(
            &AtomicBool::new(false),
            GcPacing {
                tranquility: 3,
                max_bytes_per_sec: None,
            },
        )
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!((r.packs_deleted, r.packs_repacked), (1, 1), "{r:?}");
    assert!(r.worked > Duration::ZERO);
    // Every unit of work was followed by a pause of at least three times its length, and the
    // pauses really happened (the wall clock saw them).
    assert!(r.paced >= r.worked * 3, "{r:?}");
    assert!(elapsed >= r.paced + r.worked, "{elapsed:?} {r:?}");
    check_survivors(&repo, f, run);
}

#[test]
fn rate_capped_gc_moves_no_more_bytes_per_second_than_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, f, run) = repository_with_garbage(&dir.path().join("r"));
    // Repacking reads and writes the ten surviving blobs: about 1 MB of I/O at 1 MiB/s.
    let limit = 1u64 << 20;
    let r = repo
        .gc_paced(
            &AtomicBool::new(false),
            GcPacing {
                tranquility: 0,
                max_bytes_per_sec: Some(limit),
            },
        )
        .unwrap();
    assert_eq!(r.packs_repacked, 1, "{r:?}");
    let moved = 2 * 10 * ITEM as u64;
    let floor = Duration::from_secs_f64(moved as f64 / limit as f64);
    assert!(r.paced + r.worked >= floor, "{r:?}");
    assert!(r.paced > Duration::ZERO);
    check_survivors(&repo, f, run);
}

#[test]
fn stopping_a_paced_gc_mid_pause_is_prompt_and_safe() {
    let dir = tempfile::tempdir().unwrap();
    let (repo, f, run) = repository_with_garbage(&dir.path().join("r"));
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let r = std::thread::scope(|s| {
        let gc = s.spawn(|| {
            repo.gc_paced(
                &stop,
                GcPacing {
                    // Hours of sleep after the first unit of work.
                    tranquility: 1_000_000,
                    max_bytes_per_sec: Some(1),
                },
            )
        });
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, Ordering::Relaxed);
        gc.join().unwrap()
    })
    .unwrap();
    assert!(r.interrupted, "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(120), "{r:?}");
    assert_eq!(r.packs_deleted + r.packs_repacked, 1, "{r:?}");
    check_survivors(&repo, f, run);
    // The next collection finishes the work.
    let rest = repo.gc().unwrap();
    assert_eq!(rest.packs_deleted + rest.packs_repacked, 1, "{rest:?}");
    check_survivors(&repo, f, run);
}
