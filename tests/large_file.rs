//! A 3 GiB OneDrive file, generated and streamed by the simulator: stored byte-identical with
//! bounded memory, and not downloaded again by the next run. A file larger than the free space
//! of the repository's volume stops the run with a clear error, leaves nothing in the download
//! spool, and the next run, once the file is gone, completes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use backhome::task::Service;
use backhome_store::{CreateOptions, NodeKind, Repository, RunId, VerifyMode};
use graph_sim::{Profile, SimOptions};
use serde_json::json;

mod common;
use common::cli::{backup_json, task_data};
use common::{Env, assert_mail_matches, env_with, hex_of};

#[path = "../crates/store/tests/common/loopfs.rs"]
mod loopfs;

const SIZE: u64 = 3 * 1024 * 1024 * 1024;

/// Peak resident set of this process (the simulator and the engine both run in it), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

/// Adds a file of `size` bytes the simulator generates from `seed` to the first user's OneDrive;
/// answers that user.
async fn add_generated_file(e: &Env, name: &str, size: u64, seed: u64) -> String {
    let upn = e.first_upn().await;
    let op = json!({"op": "add_file", "drive": upn, "name": name, "size": size, "seed": seed});
    e.control(reqwest::Method::POST, "mutate", Some(op)).await;
    upn
}

#[actix_web::test]
async fn three_gib_file_is_stored_identical_with_bounded_memory() {
    let mut opts = SimOptions::new(Profile::Tiny);
    opts.users = Some(1);
    opts.files_per_user = Some(1);
    opts.messages_per_user = Some(1);
    let e = env_with(&[Service::Onedrive], opts).await;
    let upn = add_generated_file(&e, "big.bin", SIZE, 3).await;
    let before = peak_rss();

    let first = e.backup().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    assert!(first.bytes_downloaded >= SIZE, "{first:?}");
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 512 * 1024 * 1024,
        "peak RSS grew by {} MiB while backing up a 3 GiB file",
        grown >> 20
    );

    let run = RunId(first.run_id);
    let files = e.items(NodeKind::File, run);
    let (gid, _) = files.iter().find(|(_, n)| n.as_str() == "big.bin").unwrap();
    let obj = e
        .repo
        .objects()
        .unwrap()
        .into_iter()
        .find(|o| o.info.address.as_deref() == Some(upn.as_str()))
        .unwrap();
    let cur = e.repo.current_version(obj.id, gid).unwrap().unwrap();
    assert_eq!(cur.size, SIZE);
    let snap = e.control(reqwest::Method::GET, "snapshot", None).await;
    let expected = snap["drives"]
        .as_object()
        .unwrap()
        .values()
        .find_map(|d| d.get("big.bin"))
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(hex_of(&e.repo, cur.content.unwrap()), expected);

    let second = e.backup().await;
    assert_eq!(second.bytes_downloaded, 0, "{second:?}");
    assert_eq!(
        (second.items_added, second.items_changed),
        (0, 0),
        "{second:?}"
    );
}

/// The loop volume holding the repository in the full-volume test, in MiB.
const SMALL_VOLUME_MIB: u64 = 64;
/// The OneDrive file that does not fit on it.
const TOO_BIG: u64 = 200 * 1024 * 1024;

/// Bytes available to unprivileged writers on the volume holding `path`.
fn available(path: &Path) -> u64 {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "df {}", path.display());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[actix_web::test]
async fn full_volume_stops_the_run_clearly_and_the_next_run_completes() {
    if !loopfs::root_tests("full_volume_stops_the_run_clearly_and_the_next_run_completes") {
        return;
    }
    let fs = loopfs::LoopFs::new("ext4", SMALL_VOLUME_MIB);
    let mut opts = SimOptions::new(Profile::Tiny);
    opts.files_per_user = Some(1);
    let mut e = env_with(&[Service::Mail, Service::Onedrive], opts).await;
    // The repository on the small volume; the simulator's state and the task data stay off it.
    e.spec.repo = fs.path().join("repo");
    e.repo = Repository::create(&e.spec.repo, &CreateOptions::default()).unwrap();
    let upn = add_generated_file(&e, "too-big.bin", TOO_BIG, 5).await;
    let free = available(fs.path());
    assert!(free < TOO_BIG, "{free} bytes free");
    let data = task_data(&e);

    let spool = e.spec.repo.join("spool");
    let out = backup_json(&data, &e.spec.name).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    // The spool is what filled the volume, and the error says so.
    assert!(
        stderr.contains("error: backup failed")
            && stderr.contains(&format!(
                "the volume holding the repository is full (writing {})",
                spool.display()
            )),
        "stderr: {stderr}"
    );
    assert!(out.stdout.is_empty(), "a failed run prints no summary");
    let repo = Repository::open(&e.spec.repo, None).unwrap();
    assert!(repo.verify(VerifyMode::Quick).unwrap().is_ok());
    let left: Vec<_> = match std::fs::read_dir(&spool) {
        Ok(entries) => entries.map(|d| d.unwrap().path()).collect(),
        Err(err) => {
            assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
            Vec::new()
        }
    };
    assert!(left.is_empty(), "left in the spool: {left:?}");
    // What the spool wrote was given back when the run stopped.
    let after = available(fs.path());
    eprintln!("{free} bytes free before the run, {after} after it");
    assert!(after >= 16 << 20, "{after} bytes free after the run");
    drop(repo);

    e.control(
        reqwest::Method::POST,
        "mutate",
        Some(json!({"op": "delete_file", "drive": upn, "id": "too-big.bin"})),
    )
    .await;
    let out = backup_json(&data, &e.spec.name).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["errors"], json!([]), "{summary}");
    let repo = Repository::open(&e.spec.repo, None).unwrap();
    let e = Env { repo, ..e };
    let run = RunId(summary["run_id"].as_i64().unwrap());
    assert_mail_matches(&e, run).await;
    let files = e.items(NodeKind::File, run);
    assert!(
        !files.is_empty() && !files.values().any(|n| n == "too-big.bin"),
        "{files:?}"
    );
    assert!(e.repo.verify(VerifyMode::Full).unwrap().is_ok());
}
