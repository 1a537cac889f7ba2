//! Running the `backhome` binary against a test's task.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use backhome::task::TaskStore;

use super::Env;

/// A data folder holding the task of `e`, for the `backhome` binary.
pub fn task_data(e: &Env) -> PathBuf {
    let data = e.dir.path().join("data");
    TaskStore::open(&data)
        .unwrap()
        .create(&e.spec, &e.creds)
        .unwrap();
    data
}

/// `backhome backup --task <task>` on `data`, its output piped (standard error discarded).
pub fn backup_command(data: &Path, task: &str, json: bool) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_backhome"));
    c.arg("--data-dir")
        .arg(data)
        .args(["backup", "--task", task]);
    if json {
        c.arg("--json");
    }
    c.stdout(Stdio::piped()).stderr(Stdio::null());
    c
}

/// Runs `backhome backup --task <task> --json` on `data` to its end (off the async runtime, so
/// an in-process simulator keeps answering) and answers its exit status, stdout and stderr.
pub async fn backup_json(data: &Path, task: &str) -> Output {
    let mut c = backup_command(data, task, true);
    c.stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap()
}

/// Runs `backhome backup --task <task> --json` on `data` to its end, asserts that it succeeded
/// and answers its summary.
pub async fn backup_summary(data: &Path, task: &str) -> serde_json::Value {
    let out = backup_json(data, task).await;
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
