//! The command line against a simulated tenant: task creation with good and bad certificates,
//! an app without consent, backup, runs, verify, ls and cat, and their exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use graph_sim::{Profile, SimOptions, Simulator};
use serde_json::{Value, json};

/// Runs the binary on a blocking thread, so that the in-process simulator keeps serving.
async fn backhome(data: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_backhome"));
    cmd.arg("--data-dir").arg(data).args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[actix_web::test]
async fn command_line_round_trip_and_bad_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimOptions::new(Profile::Tiny);
    opts.state_dir = Some(dir.path().join("sim"));
    let sim = Simulator::start(opts).await.unwrap();
    let r = sim.ready().clone();
    let data = dir.path().join("data");
    let pw = dir.path().join("pw");
    let create = async |name: &str, app: &str, pfx: &str, pw: &Path| {
        let args = [
            "task",
            "create",
            "--name",
            name,
            "--tenant-id",
            &r.tenant_id,
            "--app-id",
            app,
            "--cert",
            pfx,
            "--cert-password-file",
            pw.to_str().unwrap(),
            "--login-endpoint",
            &r.login_endpoint,
            "--graph-endpoint",
            &r.graph_endpoint,
            "--services",
            "mail,contacts,onedrive",
        ];
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        backhome(&data, &args).await
    };

    // A wrong password is refused at creation, in words an admin understands.
    std::fs::write(&pw, "not-the-password\n").unwrap();
    let o = create("bad", &r.app_id, &r.cert_pfx, &pw).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).to_lowercase().contains("password"), "{}", text(&o));
    assert!(
        !text(&o).contains("not-the-password"),
        "the password must not be echoed"
    );

    // A file that is not a certificate.
    std::fs::write(&pw, format!("{}\n", r.cert_password)).unwrap();
    let junk = dir.path().join("junk.pfx");
    std::fs::write(&junk, b"this is not a pfx").unwrap();
    let o = create("junk", &r.app_id, junk.to_str().unwrap(), &pw).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));

    // The right certificate: create, list, show (no secrets), back up, browse.
    let o = create("t", &r.app_id, &r.cert_pfx, &pw).await;
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&backhome(&data, &["task", "list"]).await).contains("t\t"));
    let shown = text(&backhome(&data, &["task", "show", "t"]).await);
    assert!(
        !shown.contains(&r.cert_password),
        "secrets must not be shown"
    );
    let o = backhome(&data, &["backup", "--task", "t", "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let summary: Value = serde_json::from_slice(&o.stdout).unwrap();
    for key in [
        "run_id",
        "status",
        "items_added",
        "items_changed",
        "items_deleted",
        "bytes_downloaded",
        "graph_requests",
        "errors",
    ] {
        assert!(summary.get(key).is_some(), "summary lacks {key}: {summary}");
    }
    let runs: Value = serde_json::from_slice(
        &backhome(&data, &["runs", "--task", "t", "--json"])
            .await
            .stdout,
    )
    .unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(
        backhome(&data, &["verify", "--task", "t", "--full"])
            .await
            .status
            .code(),
        Some(0)
    );

    let o = backhome(
        &data,
        &["ls", "--task", "t", "--json", "--recursive", "/users"],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let entries: Vec<Value> = serde_json::from_slice(&o.stdout).unwrap();
    for key in ["name", "path", "kind", "graph_id", "size", "modified"] {
        assert!(entries[0].get(key).is_some(), "ls entry lacks {key}");
    }
    // Every printed path is accepted as is by cat, and cat prints the exact bytes.
    let msg = entries.iter().find(|e| e["kind"] == "message").unwrap();
    let o = backhome(
        &data,
        &["cat", "--task", "t", msg["path"].as_str().unwrap()],
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(o.stdout.len() as u64, msg["size"].as_u64().unwrap());
    assert!(String::from_utf8_lossy(&o.stdout).contains("MIME-Version"));
    // Every file path ls prints, hostile names included, is accepted as is by cat.
    let files: Vec<&Value> = entries.iter().filter(|e| e["kind"] == "file").collect();
    assert!(files.len() > 5, "{} files", files.len());
    let mut odd = 0;
    for f in &files {
        let path = f["path"].as_str().unwrap();
        odd += usize::from(
            !f["name"]
                .as_str()
                .unwrap()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " ._-".contains(c)),
        );
        let o = backhome(&data, &["cat", "--task", "t", path]).await;
        assert!(o.status.success(), "{path}: {}", text(&o));
        assert_eq!(o.stdout.len() as u64, f["size"].as_u64().unwrap(), "{path}");
    }
    assert!(odd > 0, "the tenant has files with unusual names");
    let folder = entries.iter().find(|e| e["kind"] == "mail_folder").unwrap();
    let o = backhome(
        &data,
        &["cat", "--task", "t", folder["path"].as_str().unwrap()],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("folder"), "{}", text(&o));
    let o = backhome(
        &data,
        &["ls", "--task", "t", "/users/nobody@example.com/mail"],
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o).contains("no such path"), "{}", text(&o));
    let o = backhome(&data, &["ls", "--task", "t", "--at", "yesterday"]).await;
    assert_eq!(o.status.code(), Some(1));

    // An app registered without consent: the backup fails with a clear diagnosis.
    let client = reqwest::Client::new();
    let app: Value = client
        .post(format!("{}/apps", r.control_endpoint))
        .json(&json!({"roles": [], "password": "pw-no-consent"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    std::fs::write(&pw, "pw-no-consent").unwrap();
    let o = create(
        "noconsent",
        app["app_id"].as_str().unwrap(),
        app["cert_pfx"].as_str().unwrap(),
        &pw,
    )
    .await;
    assert!(o.status.success(), "{}", text(&o));
    let o = backhome(&data, &["backup", "--task", "noconsent", "--json"]).await;
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o).to_lowercase();
    assert!(t.contains("consent") || t.contains("permission"), "{t}");
    sim.stop().await;
}
