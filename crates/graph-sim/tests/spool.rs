//! Uploads are spooled to disk: a large upload session leaves the simulator's memory bounded,
//! and the stored file keeps its content hash and answers `Range` reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use graph_sim::Profile;
use serde_json::json;

/// Peak resident set of this process (the simulator runs in it), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    kb * 1024
}

/// Deterministic, incompressible test bytes at `offset`.
fn fill(offset: u64, out: &mut [u8]) {
    for (i, b) in out.iter_mut().enumerate() {
        let x = (offset + i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        *b = (x >> 56) as u8 ^ (x >> 17) as u8;
    }
}

#[tokio::test]
async fn a_large_upload_session_is_spooled_with_bounded_memory() {
    const TOTAL: u64 = 640 * 1024 * 1024 + 12_345;
    const FRAG: u64 = 32 * 327_680; // 10 MiB
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let (s, sess) = h
        .send(
            reqwest::Method::POST,
            &format!("/users/{upn}/drive/root:/Spooled%20upload.bin:/createUploadSession"),
            Some(json!({"item": {"@microsoft.graph.conflictBehavior": "replace"}})),
        )
        .await;
    assert_eq!(s, 200, "{sess}");
    let up = sess["uploadUrl"].as_str().unwrap().to_string();
    let before = peak_rss();
    let mut hasher = blake3::Hasher::new();
    let mut pos = 0u64;
    let mut done = serde_json::Value::Null;
    let mut buf = vec![0u8; FRAG as usize];
    while pos < TOTAL {
        let n = FRAG.min(TOTAL - pos);
        let chunk = &mut buf[..n as usize];
        fill(pos, chunk);
        hasher.update(chunk);
        let r = h
            .http
            .put(&up)
            .header(
                "Content-Range",
                format!("bytes {pos}-{}/{TOTAL}", pos + n - 1),
            )
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        pos += n;
        let status = r.status().as_u16();
        if pos < TOTAL {
            assert_eq!(status, 202);
        } else {
            assert_eq!(status, 201);
            done = r.json().await.unwrap();
        }
    }
    let grown = peak_rss().saturating_sub(before);
    assert!(
        grown < 200 * 1024 * 1024,
        "the simulator's peak RSS grew by {} MiB for a {} MiB upload",
        grown >> 20,
        TOTAL >> 20
    );
    assert_eq!(done["size"].as_u64(), Some(TOTAL));
    let spool = h._dir.path().join("spool");
    let spooled: u64 = std::fs::read_dir(&spool)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(spooled, TOTAL, "the content lives in the state directory");

    // The content hash is the uploaded bytes' hash.
    let expected = hasher.finalize().to_hex().to_string();
    let (_, all) = h.control(reqwest::Method::GET, "snapshot", None).await;
    let found = all["drives"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(|d| d.get("Spooled upload.bin"))
        .any(|v| v.as_str() == Some(expected.as_str()));
    assert!(found, "snapshot hash of the spooled file");

    // Range reads come from the file.
    let id = done["id"].as_str().unwrap();
    let r = h
        .http
        .get(h.url(&format!("/users/{upn}/drive/items/{id}/content")))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let start = 300 * 1024 * 1024 + 7;
    let r = h
        .http
        .get(&loc)
        .header("Range", format!("bytes={start}-{}", start + 99_999))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 206);
    let got = r.bytes().await.unwrap();
    let mut want = vec![0u8; 100_000];
    fill(start, &mut want);
    assert_eq!(got.as_ref(), want.as_slice());

    // An abandoned upload session takes its spool file with it.
    let (_, sess) = h
        .send(
            reqwest::Method::POST,
            &format!("/users/{upn}/drive/root:/Abandoned.bin:/createUploadSession"),
            Some(json!({"item": {}})),
        )
        .await;
    let up = sess["uploadUrl"].as_str().unwrap().to_string();
    let r = h
        .http
        .put(&up)
        .header("Content-Range", format!("bytes 0-{}/{TOTAL}", FRAG - 1))
        .body(vec![1u8; FRAG as usize])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 2);
    let r = h.http.delete(&up).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 1);
    h.sim.stop().await;
}
