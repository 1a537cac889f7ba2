//! Kill test: a child process writes runs and is sent SIGKILL at random moments, at least 50
//! times; after each kill the repository opens, quick-verifies, a new run completes, and every
//! committed item reads back byte-identical. Run on a plain and on an encrypted repository
//! (whose SQLCipher catalog must survive the kills just as well).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use backhome_store::{
    CheckpointPolicy, CreateOptions, NewVersion, NodeKind, Repository, RunId, StoreError,
    VerifyMode,
};

const ENV: &str = "BACKHOME_KILL_TEST_REPO";
const PASS_ENV: &str = "BACKHOME_KILL_TEST_PASS";
const KILLS: usize = 50;

/// Item `gid` in variant `v`: its content is derived from both, so any reader can check it.
fn content(gid: u64, v: u64) -> Vec<u8> {
    let size = match gid % 50 {
        0 => 1_500_000 + (gid as usize * 7919) % 600_000,
        1..=5 => 60_000,
        _ => 500 + (gid as usize * 131) % 9000,
    };
    if gid.is_multiple_of(3) {
        common::text(size, gid * 1000 + v)
    } else {
        common::bytes(size, gid * 1000 + v)
    }
}

fn name(gid: u64, v: u64) -> String {
    format!("item-{gid}-{v}")
}

/// Writes runs forever (until killed): each run rewrites a random slice of items.
fn child(repo_path: &Path, pass: Option<&str>) {
    let repo = Repository::open(repo_path, pass).unwrap();
    let mut seed = std::process::id() as u64 ^ 0x5eed;
    let mut rnd = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    loop {
        let mut run = repo
            .begin_run_with(CheckpointPolicy {
                interval: Duration::from_millis(40),
                items: 15,
            })
            .unwrap();
        let obj = common::user(&mut run, "ann");
        let folder = run.node(obj, "folder", NodeKind::MailFolder).unwrap();
        run.put_version(
            folder,
            &NewVersion {
                name: "Inbox".into(),
                ..NewVersion::default()
            },
        )
        .unwrap();
        for _ in 0..60 {
            let gid = rnd() % 400;
            let v = rnd() % 4;
            let n = run
                .node(obj, &format!("g{gid}"), NodeKind::Message)
                .unwrap();
            if rnd() % 10 == 0 {
                run.delete_node(n).unwrap();
                continue;
            }
            let c = run.put_bytes(&content(gid, v)).unwrap();
            run.put_version(
                n,
                &NewVersion {
                    parent: Some(folder),
                    name: name(gid, v),
                    content: Some(c.content),
                    version_tag: Some(v.to_string()),
                    ..NewVersion::default()
                },
            )
            .unwrap();
        }
        run.commit(&serde_json::json!({})).unwrap();
    }
}

/// Child entry point: does nothing unless started by `writer_survives_sigkill` with the env var.
#[test]
fn kill_test_child_entry() {
    if let Ok(p) = std::env::var(ENV) {
        child(Path::new(&p), std::env::var(PASS_ENV).ok().as_deref());
    }
}

fn check_run(repo: &Repository, folder: backhome_store::NodeId, run: RunId) -> usize {
    let kids = repo.list_children(folder, run).unwrap();
    for k in &kids {
        let rest = k.name.strip_prefix("item-").unwrap();
        let (g, v) = rest.split_once('-').unwrap();
        let expected = content(g.parse().unwrap(), v.parse().unwrap());
        let mut got = Vec::with_capacity(expected.len());
        repo.read_content(k.content.unwrap().id)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert!(got == expected, "{} at run {run} differs", k.name);
    }
    kids.len()
}

#[test]
fn writer_survives_sigkill() {
    kill_loop(None);
}

#[test]
fn encrypted_writer_survives_sigkill() {
    kill_loop(Some("kill-test passphrase"));
}

fn kill_loop(pass: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    Repository::create(
        &path,
        &CreateOptions {
            passphrase: pass.map(str::to_string),
            kdf: backhome_store::KdfParams {
                memory_kib: 1024,
                iterations: 1,
            },
            ..CreateOptions::default()
        },
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill test seed {seed}");
    let started = Instant::now();
    let mut resumed = 0;
    let mut committed_total = 0;
    for i in 0..KILLS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut c = Command::new(&exe);
        if let Some(p) = pass {
            c.env(PASS_ENV, p);
        }
        let mut c = c
            .args([
                "--exact",
                "kill_test_child_entry",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ENV, &path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(60 + seed % 400));
        c.kill().unwrap();
        let status = c.wait().unwrap();
        assert!(!status.success(), "child {i} ended by itself: {status:?}");

        let repo = Repository::open(&path, pass).unwrap();
        let q = repo.verify(VerifyMode::Quick).unwrap();
        assert!(q.is_ok(), "after kill {i}: {q:?}");
        // (A kill before the child wrote anything leaves runs without items.)
        let folder = repo
            .objects()
            .unwrap()
            .first()
            .and_then(|o| repo.find_node(o.id, "folder").unwrap());
        if let (Some(latest), Some(folder)) = (repo.latest_run().unwrap(), folder) {
            committed_total += check_run(&repo, folder, latest);
            // Every committed run still reads back; check the oldest and a middle one.
            let committed: Vec<RunId> = repo
                .runs()
                .unwrap()
                .into_iter()
                .filter(|r| r.status == backhome_store::RunStatus::Committed)
                .map(|r| r.id)
                .collect();
            check_run(&repo, folder, committed[0]);
            check_run(&repo, folder, committed[committed.len() / 2]);
        }
        // A new run (resuming the killed one) completes.
        let run = match repo.begin_run() {
            Ok(r) => r,
            Err(StoreError::Locked(_)) => panic!("lock survived the kill"),
            Err(e) => panic!("{e}"),
        };
        if run.is_resumed() {
            resumed += 1;
        }
        run.commit(&serde_json::json!({"after_kill": i})).unwrap();
    }
    let repo = Repository::open(&path, pass).unwrap();
    let full = repo.verify(VerifyMode::Full).unwrap();
    assert!(full.is_ok(), "{full:?}");
    eprintln!(
        "{KILLS} kills in {:?}, {resumed} runs resumed, {committed_total} items checked",
        started.elapsed()
    );
    assert!(
        resumed > KILLS / 4,
        "kills should mostly land inside a run ({resumed})"
    );
    assert!(committed_total > 0);
}
