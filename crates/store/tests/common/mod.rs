//! Helpers shared by the integration tests: loop-mounted filesystems and a small run builder.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use backhome_store::{NewVersion, NodeId, NodeKind, ObjectId, ObjectInfo, ObjectKind, RunWriter};

/// Whether tests that mount filesystems may run; prints why not otherwise.
pub fn root_tests(test: &str) -> bool {
    if std::env::var("BACKHOME_ROOT_TESTS").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("skipping {test}: set BACKHOME_ROOT_TESTS=1 (as root) to mount loop filesystems");
    false
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A filesystem image loop-mounted in a temp dir; unmounted and removed on drop, even on panic.
pub struct LoopFs {
    dir: tempfile::TempDir,
    pub mount: PathBuf,
}

impl LoopFs {
    /// Creates an image of `mib` MiB with `fstype` ("btrfs" or "ext4") and mounts it.
    pub fn new(fstype: &str, mib: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("fs.img");
        let f = std::fs::File::create(&image).unwrap();
        f.set_len(mib << 20).unwrap();
        drop(f);
        match fstype {
            "btrfs" => run(Command::new("mkfs.btrfs").arg("-q").arg(&image)),
            "ext4" => run(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&image)),
            other => panic!("unknown fs {other}"),
        }
        let mount = dir.path().join("mnt");
        std::fs::create_dir(&mount).unwrap();
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&image)
            .arg(&mount));
        Self { dir, mount }
    }

    pub fn path(&self) -> &Path {
        &self.mount
    }

    /// Lets other users reach the mount (the temp dir is private to root by default).
    pub fn open_to_all(&self) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(self.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        for _ in 0..20 {
            let ok = Command::new("umount")
                .arg(&self.mount)
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        let _ = self.dir.path();
    }
}

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
