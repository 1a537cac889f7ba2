//! A 3 GiB OneDrive file, generated and streamed by the simulator: stored byte-identical with
//! bounded memory, and not downloaded again by the next run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use backhome::task::Service;
use backhome_store::{NodeKind, RunId};
use graph_sim::{Profile, SimOptions};
use serde_json::json;

mod common;
use common::{env_with, hex_of};

const SIZE: u64 = 3 * 1024 * 1024 * 1024;

/// Peak resident set of this process (the simulator and the engine both run in it), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[actix_web::test]
async fn three_gib_file_is_stored_identical_with_bounded_memory() {
    let mut opts = SimOptions::new(Profile::Tiny);
    opts.users = Some(1);
    opts.files_per_user = Some(1);
    opts.messages_per_user = Some(1);
    let e = env_with(&[Service::Onedrive], opts).await;
    let upn = e
        .control(reqwest::Method::GET, "snapshot?content=false", None)
        .await["mail"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    e.control(
        reqwest::Method::POST,
        "mutate",
        Some(json!({"op": "add_file", "drive": upn, "name": "big.bin", "size": SIZE, "seed": 3})),
    )
    .await;
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
