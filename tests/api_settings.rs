//! The notification settings API against a running service: admin only, validation with the
//! field named, settings kept across a restart, a test notice, and backups that notify only for
//! the events switched on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use backhome::api::{AppState, Application};
use backhome::task::Service as Workload;
use common::service;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

const ROUTE: &str = "/api/v1/settings/notifications";

fn notices(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

async fn run_to_end(admin: &service::Session) -> Value {
    let (st, run) = admin.post("/api/v1/tasks/t/runs", json!({})).await;
    assert_eq!(st, StatusCode::ACCEPTED, "{run}");
    let t0 = Instant::now();
    loop {
        let (st, _) = admin.get("/api/v1/tasks/t/progress").await;
        if st == StatusCode::NOT_FOUND {
            let (_, runs) = admin.get("/api/v1/tasks/t/runs").await;
            return runs[0].clone();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the run never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notification_settings_are_checked_kept_and_honoured() {
    let env = common::env(&[Workload::Contacts]).await;
    let out = env.dir.path().join("notices");
    let script = env.dir.path().join("notify.sh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s|' \"$@\" >> {}\n", out.display()),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&script).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&script, perms).unwrap();
    let sc = script.clone();
    let s = service::start_with(env, move |c| c.notify_program = Some(sc)).await;
    let admin = s.sign_in("admin").await;
    let alice = s.sign_in("alice").await;

    // Portal users may neither read nor change nor test.
    assert_eq!(alice.get(ROUTE).await.0, StatusCode::FORBIDDEN);
    let (st, _) = alice.send(Method::PUT, ROUTE, Some(json!({}))).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = alice.post(&format!("{ROUTE}/test"), json!({})).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    assert_eq!(notices(&out), "");

    // The defaults until saved.
    let (st, v) = admin.get(ROUTE).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["desktop"], true);
    assert_eq!(v["settings"]["run_failed"], true);
    assert_eq!(v["settings"]["run_succeeded"], false);
    assert_eq!(v["settings"]["certificate_days"], 30);
    assert_eq!(v["settings"]["recipients"], json!(["@administrators"]));

    // Bad input: 400 naming the problem, nothing written.
    for (body, says) in [
        (json!({"certificate_days": 0}), "certificate_days"),
        (json!({"recipients": []}), "at least one"),
        (json!({"recipients": ["ops; reboot"]}), "ops; reboot"),
        (json!({"recipients": ["@ops", "@OPS"]}), "twice"),
        (json!({"run_failed": "yes"}), "run_failed"),
        (json!({"smtp_server": "x"}), "smtp_server"),
    ] {
        let (st, e) = admin.send(Method::PUT, ROUTE, Some(body.clone())).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body} → {e}");
        assert_eq!(e["error"]["code"], "bad_request");
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(says), "{body}: {msg}");
    }
    assert!(!s.data.join("notifications.json").exists());

    // Success notices on, failures off, two recipients.
    let wanted = json!({
        "run_failed": false, "run_partial": true, "run_succeeded": true,
        "retention_failed": true, "certificate_expiring": false, "certificate_days": 14,
        "recipients": ["admin", "@ops"]
    });
    let (st, v) = admin.send(Method::PUT, ROUTE, Some(wanted.clone())).await;
    assert_eq!((st, &v["settings"]), (StatusCode::OK, &wanted), "{v}");

    // The test notice goes to both recipients.
    let (st, t) = admin.post(&format!("{ROUTE}/test"), json!({})).await;
    assert_eq!(st, StatusCode::OK, "{t}");
    assert_eq!(t["recipients"], json!(["admin", "@ops"]));
    let text = notices(&out);
    assert!(
        text.starts_with("admin|Backhome test notification|"),
        "{text}"
    );
    assert!(text.contains("@ops|Backhome test notification|"), "{text}");
    std::fs::remove_file(&out).unwrap();

    // A successful backup notifies both recipients now that success notices are on.
    let run = run_to_end(&admin).await;
    assert_eq!(run["status"], "complete", "{run}");
    let text = notices(&out);
    assert_eq!(
        text.matches("Backhome backup finished|").count(),
        2,
        "{text}"
    );
    assert!(
        !text.contains("certificate"),
        "certificate notices are off: {text}"
    );

    // Switched off again: the next successful backup says nothing.
    let off = json!({"run_succeeded": false, "recipients": ["admin"]});
    let (st, _) = admin.send(Method::PUT, ROUTE, Some(off)).await;
    assert_eq!(st, StatusCode::OK);
    std::fs::remove_file(&out).unwrap();
    let run = run_to_end(&admin).await;
    assert_eq!(run["status"], "complete", "{run}");
    assert_eq!(notices(&out), "", "success notices are off");

    // A failing notification program is a 422 with its code.
    std::fs::write(&script, "#!/bin/sh\nexit 3\n").unwrap();
    let (st, e) = admin.post(&format!("{ROUTE}/test"), json!({})).await;
    assert_eq!(st, StatusCode::UNPROCESSABLE_ENTITY, "{e}");
    assert_eq!(e["error"]["code"], "notification_failed");

    // Kept across a restart.
    let (st, before) = admin.get(ROUTE).await;
    assert_eq!(st, StatusCode::OK);
    s.handle.stop(true).await;
    let config = s.state.config.clone();
    let state = AppState::new(s.data.clone(), config).unwrap();
    let app = Application::build(state).unwrap();
    let again = service::Service {
        base: format!("http://127.0.0.1:{}", app.port()),
        handle: app.handle(),
        state: app.state(),
        data: s.data.clone(),
        env: s.env,
    };
    tokio::spawn(app.run());
    let admin = again.sign_in("admin").await;
    let (st, after) = admin.get(ROUTE).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(after["settings"], before["settings"]);
    assert_eq!(after["settings"]["recipients"], json!(["admin"]));
    assert_eq!(after["settings"]["run_succeeded"], false);
}
