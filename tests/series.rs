//! Recurring series with changed and cancelled occurrences, end to end against the simulator:
//! backed up with both (one extra request per written master, none for an unchanged one, an
//! item error when it fails), a new version when another occurrence changes while the old run
//! still shows the old JSON, restored into another account with its exceptions applied, skipped
//! the second time, and exported as iCalendar that Python's `icalendar` reads with its `EXDATE`
//! and `RECURRENCE-ID`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use backhome::cli::browse::{self, Target};
use backhome::export;
use backhome::restore::{self, Conflict, RestoreProgress, RestoreReport, RestoreRequest};
use backhome::task::Service;
use backhome_graph::{Call, Client};
use backhome_store::RunId;
use futures_util::TryStreamExt;
use reqwest::Method;
use serde_json::{Value, json};

mod common;
use common::python::{python_with, venv};
use common::{Env, env};

const WINDOW: &str = "startDateTime=2026-02-01T00:00:00Z&endDateTime=2026-06-01T00:00:00Z";

async fn instances(client: &Client, upn: &str, id: &str) -> Vec<Value> {
    client
        .items(Call::get(format!(
            "/users/{upn}/events/{id}/instances?{WINDOW}"
        )))
        .try_collect()
        .await
        .unwrap()
}

/// The events of `upn`'s calendar.
async fn events(client: &Client, upn: &str) -> Vec<Value> {
    client
        .items(Call::get(format!("/users/{upn}/calendar/events?$top=100")))
        .try_collect()
        .await
        .unwrap()
}

/// The stored JSON of the event with Graph id `id` at `run`, with its path.
fn stored(e: &Env, run: RunId, upn: &str, id: &str) -> (String, Value) {
    let entry = browse::list(&e.repo, run, &format!("/users/{upn}/calendar"), true)
        .unwrap()
        .into_iter()
        .find(|x| x.graph_id == id)
        .unwrap_or_else(|| panic!("event {id} not in run {}", run.0));
    let Target::Node(v) = browse::resolve(&e.repo, run, &entry.path).unwrap() else {
        panic!("{} is not a node", entry.path);
    };
    let mut bytes = Vec::new();
    e.repo
        .read_content(v.content.unwrap().id)
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    (entry.path, serde_json::from_slice(&bytes).unwrap())
}

async fn restore_to(
    e: &Env,
    run: RunId,
    path: &str,
    user: &str,
    conflict: Conflict,
) -> RestoreReport {
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    restore::run(
        client,
        e.repo.clone(),
        RestoreRequest {
            run,
            paths: vec![path.to_owned()],
            target_user: Some(user.to_owned()),
            target_folder: None,
            conflict,
        },
        Arc::new(RestoreProgress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap()
}

/// (type, subject, start minute, occurrence date) of each instance, in order.
fn rows(list: &[Value]) -> Vec<(String, String, String, String)> {
    list.iter()
        .map(|o| {
            (
                o["type"].as_str().unwrap().to_owned(),
                o["subject"].as_str().unwrap().to_owned(),
                o["start"]["dateTime"].as_str().unwrap()[..16].to_owned(),
                o["occurrenceId"]
                    .as_str()
                    .unwrap()
                    .rsplit('.')
                    .next()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect()
}

#[actix_web::test]
async fn series_exceptions_are_backed_up_restored_and_exported() {
    let e = env(&[Service::Calendar]).await;
    let snap = e.control(Method::GET, "snapshot", None).await;
    let users: Vec<String> = snap["contacts"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let (upn, other) = (users[0].clone(), users[1].clone());
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();

    // A weekly series of six with its second occurrence moved and renamed, its fourth cancelled.
    let master: Value = client
        .json(Call::post_json(format!("/users/{upn}/calendar/events"), &json!({
            "subject": "Series under test", "body": {"contentType": "html", "content": "<p>weekly</p>"},
            "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T09:30:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
                "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 6}}})).unwrap())
        .await
        .unwrap();
    let mid = master["id"].as_str().unwrap().to_owned();
    let occ = instances(&client, &upn, &mid).await;
    assert_eq!(occ.len(), 6);
    let occ_path = |i: usize| format!("/users/{upn}/events/{}", occ[i]["id"].as_str().unwrap());
    client
        .json::<Value>(Call::patch_json(occ_path(1), &json!({"subject": "Moved standup",
            "start": {"dateTime": "2026-03-10T11:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-10T11:30:00", "timeZone": "UTC"}})).unwrap())
        .await
        .unwrap();
    client.send(Call::delete(occ_path(3))).await.unwrap();

    // Run 1 stores the master with both.
    let first = e.backup().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let run1 = RunId(first.run_id);
    let (path, v1) = stored(&e, run1, &upn, &mid);
    assert_eq!(
        v1["cancelledOccurrences"],
        json!([format!("OID.{mid}.2026-03-23")])
    );
    let ex = v1["exceptionOccurrences"].as_array().unwrap();
    assert_eq!(ex.len(), 1, "{v1}");
    assert_eq!(
        (
            ex[0]["subject"].as_str(),
            ex[0]["originalStart"].as_str(),
            ex[0]["start"]["dateTime"].as_str()
        ),
        (
            Some("Moved standup"),
            Some("2026-03-09T09:00:00Z"),
            Some("2026-03-10T11:00:00.0000000")
        )
    );
    assert_eq!(v1["recurrence"]["range"]["numberOfOccurrences"], 6);

    // An unchanged master costs no request beyond the listing: with every GET of this series
    // failing, a no-change run still has no error.
    e.control(
        Method::POST,
        "faults",
        // Ids end in `=`, which the request path percent-encodes.
        Some(json!({"pattern": format!("/events/{}", mid.trim_end_matches('=')), "method": "GET", "kind": "item_not_found"})),
    )
    .await;
    let second = e.backup().await;
    assert!(second.errors.is_empty(), "{:?}", second.errors);
    assert_eq!(
        (
            second.items_added,
            second.items_changed,
            second.items_deleted
        ),
        (0, 0, 0),
        "{second:?}"
    );

    // Changing another occurrence changes the master: the next run reads its exceptions again;
    // while that request fails, the series is an item error and the run completes.
    client
        .json::<Value>(
            Call::patch_json(occ_path(4), &json!({"subject": "Last but one, renamed"})).unwrap(),
        )
        .await
        .unwrap();
    let third = e.backup().await;
    assert_eq!(third.errors.len(), 1, "{third:?}");
    assert!(third.errors[0].path.contains(&mid), "{:?}", third.errors);
    assert_eq!(third.items_changed, 0, "{third:?}");
    e.control(Method::DELETE, "faults", None).await;
    let fourth = e.backup().await;
    assert!(fourth.errors.is_empty(), "{:?}", fourth.errors);
    assert_eq!(fourth.items_changed, 1, "{fourth:?}");
    let run4 = RunId(fourth.run_id);
    let (path4, v4) = stored(&e, run4, &upn, &mid);
    assert_eq!(path4, path);
    assert_eq!(v4["exceptionOccurrences"].as_array().unwrap().len(), 2);
    assert_ne!(v4["changeKey"], v1["changeKey"]);
    // Run 1 still shows the old JSON.
    assert_eq!(stored(&e, run1, &upn, &mid).1, v1);

    // Restore into another account: the new series has the changed occurrences (subject and
    // start) and not the cancelled one.
    let report = restore_to(&e, run4, &path, &other, Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored, 1, "{report:?}");
    let theirs: Vec<Value> = events(&client, &other).await;
    let copy = theirs
        .iter()
        .find(|x| x["subject"] == "Series under test")
        .expect("the series in the other calendar");
    let cid = copy["id"].as_str().unwrap().to_owned();
    let row = |t: &str, s: &str, at: &str, d: &str| {
        (t.to_owned(), s.to_owned(), at.to_owned(), d.to_owned())
    };
    let expected = vec![
        row(
            "occurrence",
            "Series under test",
            "2026-03-02T09:00",
            "2026-03-02",
        ),
        row(
            "exception",
            "Moved standup",
            "2026-03-10T11:00",
            "2026-03-09",
        ),
        row(
            "occurrence",
            "Series under test",
            "2026-03-16T09:00",
            "2026-03-16",
        ),
        row(
            "exception",
            "Last but one, renamed",
            "2026-03-30T09:00",
            "2026-03-30",
        ),
        row(
            "occurrence",
            "Series under test",
            "2026-04-06T09:00",
            "2026-04-06",
        ),
    ];
    assert_eq!(rows(&instances(&client, &other, &cid).await), expected);
    // The source series is unchanged, and a second restore with "skip" changes nothing.
    assert_eq!(rows(&instances(&client, &upn, &mid).await), expected);
    let before: Value = client
        .json(Call::get(format!("/users/{other}/events/{cid}")))
        .await
        .unwrap();
    let again = restore_to(&e, run4, &path, &other, Conflict::Skip).await;
    assert_eq!((again.restored, again.skipped), (0, 1), "{again:?}");
    let after: Value = client
        .json(Call::get(format!("/users/{other}/events/{cid}")))
        .await
        .unwrap();
    assert_eq!(after["changeKey"], before["changeKey"]);
    assert_eq!(rows(&instances(&client, &other, &cid).await), expected);

    // An occurrence change Graph refuses is reported with the item, which is still restored.
    e.control(
        Method::POST,
        "faults",
        Some(json!({"pattern": "/events/", "method": "PATCH", "kind": "item_not_found"})),
    )
    .await;
    let both = restore_to(&e, run4, &path, &other, Conflict::KeepBoth).await;
    e.control(Method::DELETE, "faults", None).await;
    assert_eq!(both.failed.len(), 1, "{both:?}");
    let reason = &both.failed[0].reason;
    assert!(
        reason.contains("series was recreated")
            && reason.contains("2 of its changed or cancelled occurrences")
            && reason.contains("2026-03-09")
            && reason.contains("2026-03-30"),
        "{reason}"
    );
    let copies: Vec<Value> = events(&client, &other).await;
    let second = copies
        .iter()
        .find(|x| x["subject"] == "Series under test" && x["id"] != cid.as_str())
        .expect("the second copy exists");
    // Its cancellation was applied; its changes were not.
    let plain: Vec<String> =
        rows(&instances(&client, &other, second["id"].as_str().unwrap()).await)
            .into_iter()
            .map(|r| format!("{} {}", r.0, r.3))
            .collect();
    assert_eq!(
        plain,
        [
            "occurrence 2026-03-02",
            "occurrence 2026-03-09",
            "occurrence 2026-03-16",
            "occurrence 2026-03-30",
            "occurrence 2026-04-06"
        ]
    );
    // "overwrite" replaces both copies by one series with its exceptions.
    let over = restore_to(&e, run4, &path, &other, Conflict::Overwrite).await;
    assert!(over.failed.is_empty(), "{:?}", over.failed);
    assert_eq!(over.restored, 1, "{over:?}");
    let copies: Vec<Value> = events(&client, &other).await;
    let copies: Vec<&Value> = copies
        .iter()
        .filter(|x| x["subject"] == "Series under test")
        .collect();
    assert_eq!(copies.len(), 1);
    let id = copies[0]["id"].as_str().unwrap();
    assert_eq!(rows(&instances(&client, &other, id).await), expected);

    // Export: the .ics has the series with an EXDATE and one RECURRENCE-ID VEVENT per change.
    let zip_path = e.dir.path().join("series.zip");
    export::export_zip(
        &e.repo,
        run4,
        std::slice::from_ref(&path),
        std::io::BufWriter::new(std::fs::File::create(&zip_path).unwrap()),
    )
    .unwrap();
    if let Some(py) = venv() {
        let out = python_with(py, CHECK_SERIES, &[zip_path.to_str().unwrap()]);
        assert_eq!(
            out,
            "exdates=20260323 recurrence-ids=20260309T090000Z,20260330T090000Z \
             subjects=Last but one, renamed|Moved standup"
        );
    }
}

const CHECK_SERIES: &str = r#"
import sys, zipfile, icalendar
z = zipfile.ZipFile(sys.argv[1])
names = [n for n in z.namelist() if n.endswith('.ics')]
assert len(names) == 1, names
cal = icalendar.Calendar.from_ical(z.read(names[0]))
evs = list(cal.walk('VEVENT'))
masters = [e for e in evs if 'RECURRENCE-ID' not in e]
changed = [e for e in evs if 'RECURRENCE-ID' in e]
assert len(masters) == 1 and 'RRULE' in masters[0], evs
uid = str(masters[0]['UID'])
assert all(str(e['UID']) == uid for e in changed)
ex = masters[0].get('EXDATE')
ex = ex if isinstance(ex, list) else [ex]
exdates = sorted(d.dt.strftime('%Y%m%d') for e in ex for d in e.dts)
rids = sorted(e.decoded('RECURRENCE-ID').strftime('%Y%m%dT%H%M%SZ') for e in changed)
subjects = sorted(str(e['SUMMARY']) for e in changed)
print('exdates=' + ','.join(exdates), 'recurrence-ids=' + ','.join(rids), 'subjects=' + '|'.join(subjects))
"#;

/// The generated series of a Demo tenant (an exception and a cancelled occurrence each, all-day
/// ones included) come back identical after their calendar is emptied and restored.
#[actix_web::test]
async fn generated_series_round_trip_through_restore() {
    let mut opts = graph_sim::SimOptions::new(graph_sim::Profile::Demo);
    opts.users = Some(3);
    opts.messages_per_user = Some(2);
    let e = common::env_with(&[Service::Calendar], opts).await;
    let first = e.backup().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let run = RunId(first.run_id);
    let before = e.control(Method::GET, "snapshot", None).await;
    // A user whose backed-up calendar holds a series with exceptions.
    let (upn, series) = before["contacts"]
        .as_object()
        .unwrap()
        .keys()
        .find_map(|upn| {
            let n = browse::list(&e.repo, run, &format!("/users/{upn}/calendar"), true)
                .ok()?
                .into_iter()
                .filter(|x| x.kind == "event")
                .filter(|x| {
                    let v = stored(&e, run, upn, &x.graph_id).1;
                    v["cancelledOccurrences"]
                        .as_array()
                        .is_some_and(|c| !c.is_empty())
                        && v["exceptionOccurrences"]
                            .as_array()
                            .is_some_and(|c| !c.is_empty())
                })
                .count();
            (n > 0).then(|| (upn.clone(), n))
        })
        .expect("a generated series with exceptions");
    let ids: Vec<String> = before["events"][&upn]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let ops: Vec<Value> = ids
        .iter()
        .map(|id| json!({"op": "delete_event", "user": upn, "id": id}))
        .collect();
    e.control(Method::POST, "mutate", Some(Value::Array(ops)))
        .await;
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let report = restore::run(
        client,
        e.repo.clone(),
        RestoreRequest {
            run,
            paths: vec![format!("/users/{upn}/calendar")],
            target_user: None,
            target_folder: None,
            conflict: Conflict::Skip,
        },
        Arc::new(RestoreProgress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored as usize, ids.len(), "{report:?}");
    let after = e.control(Method::GET, "snapshot", None).await;
    let hashes = |s: &Value| -> Vec<String> {
        let mut v: Vec<String> = s["events"][&upn]
            .as_object()
            .unwrap()
            .values()
            .map(|h| h.as_str().unwrap().to_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        hashes(&after),
        hashes(&before),
        "{series} series with exceptions"
    );
}

/// A series master stored without its occurrences (as a release before they were read stored
/// it: the plain `changeKey` as its tag) is read again, once, by the next run, although Graph
/// did not change it.
#[actix_web::test]
async fn a_master_stored_without_its_occurrences_is_read_again() {
    let e = env(&[Service::Calendar]).await;
    let snap = e.control(Method::GET, "snapshot", None).await;
    let upn = snap["contacts"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let master: Value = client
        .json(Call::post_json(format!("/users/{upn}/calendar/events"), &json!({
            "subject": "Older series", "start": {"dateTime": "2026-03-03T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-03-03T10:30:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["tuesday"]},
                "range": {"type": "numbered", "startDate": "2026-03-03", "numberOfOccurrences": 4}}})).unwrap())
        .await
        .unwrap();
    let mid = master["id"].as_str().unwrap().to_owned();
    let occ = instances(&client, &upn, &mid).await;
    client
        .send(Call::delete(format!(
            "/users/{upn}/events/{}",
            occ[2]["id"].as_str().unwrap()
        )))
        .await
        .unwrap();
    let first = e.backup().await;
    assert!(first.errors.is_empty(), "{:?}", first.errors);
    let (path, _) = stored(&e, RunId(first.run_id), &upn, &mid);
    let Target::Node(v) = browse::resolve(&e.repo, RunId(first.run_id), &path).unwrap() else {
        panic!("{path} is not a node");
    };
    let tag = v.version_tag.clone().unwrap();
    let change_key = tag.split(' ').next().unwrap().to_owned();
    assert_ne!(
        tag, change_key,
        "a master's tag says its occurrences were read"
    );

    // What an older release left: the same master tagged with its plain changeKey.
    let mut w = e.repo.begin_run().unwrap();
    w.put_version(
        v.node,
        &backhome_store::NewVersion {
            parent: v.parent,
            name: v.name.clone(),
            content: v.content,
            size: v.size,
            modified: v.modified,
            version_tag: Some(change_key.clone()),
            metadata: v.metadata.clone(),
            search: None,
        },
    )
    .unwrap();
    w.commit(&json!({})).unwrap();

    let next = e.backup().await;
    assert!(next.errors.is_empty(), "{:?}", next.errors);
    let Target::Node(again) = browse::resolve(&e.repo, RunId(next.run_id), &path).unwrap() else {
        panic!("{path} is not a node");
    };
    assert_eq!(again.version_tag.as_deref(), Some(tag.as_str()));
    let (_, json) = stored(&e, RunId(next.run_id), &upn, &mid);
    assert_eq!(
        json["cancelledOccurrences"],
        json!([format!("OID.{mid}.2026-03-17")])
    );
    // And once read, it is not read again while Graph does not change it.
    let quiet = e.backup().await;
    assert_eq!(
        (quiet.items_added, quiet.items_changed),
        (0, 0),
        "{quiet:?}"
    );
}
