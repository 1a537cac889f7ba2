//! Helpers shared by the integration tests: loop-mounted filesystems and a small run builder.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use backhome_store::{NewVersion, NodeId, NodeKind, ObjectId, ObjectInfo, ObjectKind, RunWriter};

mod loopfs;
// Not every test binary mounts a volume.
#[allow(unused_imports)]
pub use loopfs::{LoopFs, root_tests};

/// Deterministic pseudo-random bytes.
pub fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 32) as u8
        })
        .collect()
}

/// Compressible text-like bytes.
pub fn text(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "meeting",
        "report",
        "budget",
        "the",
        "of",
        "and",
        "quarterly",
        "invoice",
        "please",
        "review",
        "attached",
        "thanks",
    ];
    let mut out = Vec::with_capacity(n + 16);
    let mut s = seed | 1;
    while out.len() < n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(WORDS[(s % WORDS.len() as u64) as usize].as_bytes());
        out.push(b' ');
    }
    out.truncate(n);
    out
}

pub fn user(run: &mut RunWriter, id: &str) -> ObjectId {
    run.upsert_object(&ObjectInfo {
        kind: ObjectKind::User,
        graph_id: id.into(),
        name: format!("User {id}"),
        address: Some(format!("{id}@example.com")),
        extra: serde_json::Value::Null,
    })
    .unwrap()
}

/// Writes a folder node.
pub fn folder(
    run: &mut RunWriter,
    obj: ObjectId,
    gid: &str,
    parent: Option<NodeId>,
    name: &str,
) -> NodeId {
    let n = run.node(obj, gid, NodeKind::MailFolder).unwrap();
    run.put_version(
        n,
        &NewVersion {
            parent,
            name: name.into(),
            ..NewVersion::default()
        },
    )
    .unwrap();
    n
}

/// Writes an item with content.
pub fn item(
    run: &mut RunWriter,
    obj: ObjectId,
    gid: &str,
    parent: NodeId,
    name: &str,
    data: &[u8],
    tag: &str,
) -> NodeId {
    let n = run.node(obj, gid, NodeKind::Message).unwrap();
    let c = run.put_bytes(data).unwrap();
    run.put_version(
        n,
        &NewVersion {
            parent: Some(parent),
            name: name.into(),
            content: Some(c.content),
            version_tag: Some(tag.into()),
            ..NewVersion::default()
        },
    )
    .unwrap();
    n
}
