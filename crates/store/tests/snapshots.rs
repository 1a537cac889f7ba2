//! btrfs snapshots as an unprivileged user (uid 65534) on a loop-mounted btrfs: the repository
//! is a subvolume, every committed run gets a read-only snapshot, snapshots open read-only as
//! repositories, and pruning either deletes them or reports the refusal (root only: mounting).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use backhome_store::{
    CreateOptions, Repository, RetentionPolicy, RunId, SnapshotPrune, SnapshotState,
};

const ENV: &str = "BACKHOME_SNAPSHOT_TEST_DIR";

/// What the unprivileged child does; prints one JSON line for the parent.
fn child(dir: &Path) {
    let repo = Repository::create(dir.join("repo"), &CreateOptions::default()).unwrap();
    let mut states = Vec::new();
    let data = common::text(100_000, 5);
    for i in 0..3u64 {
        let mut run = repo.begin_run().unwrap();
        let ann = common::user(&mut run, "ann");
        let f = common::folder(&mut run, ann, "f", None, "Inbox");
        common::item(
            &mut run,
            ann,
            &format!("m{i}"),
            f,
            &format!("M{i}"),
            &data,
            "t",
        );
        states.push(run.commit(&serde_json::json!({})).unwrap().snapshot);
    }
    // Restore from the first snapshot: it shows run 1 only.
    let snaps = repo.snapshots().unwrap();
    let old = Repository::open_read_only(&snaps[0].path, None).unwrap();
    let obj = old.objects().unwrap()[0].id;
    let f = old.find_node(obj, "f").unwrap().unwrap();
    let kids = old.list_children(f, RunId(1)).unwrap();
    let mut body = Vec::new();
    old.read_content(kids[0].content.unwrap().id)
        .unwrap()
        .read_to_end(&mut body)
        .unwrap();
    assert_eq!(body, data);
    assert_eq!(old.latest_run().unwrap(), Some(RunId(1)));
    let ret = repo
        .apply_retention(
            RetentionPolicy::KeepRuns(1),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    let left: Vec<i64> = repo.snapshots().unwrap().iter().map(|s| s.run.0).collect();
    println!(
        "RESULT {}",
        serde_json::json!({
            "subvolume": repo.is_subvolume(),
            "states": states,
            "prunes": ret.snapshots.iter().map(|(r, p)| (r.0, p.clone())).collect::<Vec<_>>(),
            "left": left,
        })
    );
}

#[test]
fn snapshot_test_child_entry() {
    if let Ok(d) = std::env::var(ENV) {
        child(Path::new(&d));
    }
}

#[test]
fn snapshots_as_unprivileged_owner() {
    if !common::root_tests("snapshots_as_unprivileged_owner") {
        return;
    }
    let fs = common::LoopFs::new("btrfs", 400);
    fs.open_to_all();
    let share = fs.path().join("share");
    std::fs::create_dir(&share).unwrap();
    Command::new("chown")
        .args(["65534:65534"])
        .arg(&share)
        .status()
        .unwrap();
    // The test binary must be runnable by the unprivileged user.
    let exe = fs.path().join("test-bin");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&exe)
        .args([
            "--exact",
            "snapshot_test_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, &share)
        .env("HOME", &share)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("RESULT ").map(|i| &l[i + 7..]))
        .expect("no result");
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(r["subvolume"], true, "{r}");
    let states: Vec<SnapshotState> = serde_json::from_value(r["states"].clone()).unwrap();
    for (i, s) in states.iter().enumerate() {
        match s {
            SnapshotState::Created { path } => assert!(path.ends_with(format!("run-{}", i + 1))),
            other => panic!("run {} snapshot: {other:?}", i + 1),
        }
    }
    let prunes: Vec<(i64, SnapshotPrune)> = serde_json::from_value(r["prunes"].clone()).unwrap();
    assert_eq!(prunes.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2]);
    let left: Vec<i64> = serde_json::from_value(r["left"].clone()).unwrap();
    // Whatever the kernel allowed, the report matches the filesystem.
    for (run, p) in &prunes {
        let exists = share.join(format!("repo.snapshots/run-{run}")).exists();
        match p {
            SnapshotPrune::Deleted => assert!(!exists && !left.contains(run)),
            SnapshotPrune::Refused { reason } => {
                assert!(exists && left.contains(run) && !reason.is_empty());
            }
        }
    }
    assert!(left.contains(&3));
    eprintln!("unprivileged prune outcome: {prunes:?}");
}

#[test]
fn refused_snapshot_is_reported_and_the_run_still_commits() {
    if !common::root_tests("refused_snapshot_is_reported_and_the_run_still_commits") {
        return;
    }
    let fs = common::LoopFs::new("btrfs", 400);
    let repo = Repository::create(fs.path().join("repo"), &CreateOptions::default()).unwrap();
    assert!(repo.is_subvolume());
    // Something that is not a folder sits where the snapshots go.
    std::fs::write(fs.path().join("repo.snapshots"), b"in the way").unwrap();
    let mut run = repo.begin_run().unwrap();
    let ann = common::user(&mut run, "ann");
    common::folder(&mut run, ann, "f", None, "Inbox");
    let report = run.commit(&serde_json::json!({})).unwrap();
    let SnapshotState::Failed { reason } = &report.snapshot else {
        panic!("{:?}", report.snapshot);
    };
    assert!(!reason.is_empty());
    assert_eq!(repo.latest_run().unwrap(), Some(RunId(1)));
    let recorded: SnapshotState =
        serde_json::from_str(repo.runs().unwrap()[0].snapshot.as_deref().unwrap()).unwrap();
    assert_eq!(recorded, report.snapshot);
    // A repository that is not a subvolume reports snapshots as unsupported.
    let plain = Repository::create(
        fs.path().join("plain"),
        &CreateOptions {
            no_subvolume: true,
            ..CreateOptions::default()
        },
    )
    .unwrap();
    let run = plain.begin_run().unwrap();
    assert!(matches!(
        run.commit(&serde_json::json!({})).unwrap().snapshot,
        SnapshotState::Unsupported { .. }
    ));
}
