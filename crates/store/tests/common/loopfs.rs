//! Loop-mounted filesystem images for the tests that need a real volume (root only). Shared by
//! the store's tests and the root package's tests (included there by path), so there is one copy.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

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
