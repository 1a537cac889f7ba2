//! Calendars (recurrence, calendarView delta, attachments), contacts (delta, creation) and
//! Teams (channels, messages, replies, delta, migration import).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use graph_sim::Profile;
use serde_json::{Value, json};

fn check(example: &Value, actual: &Value, ignore: &[&str]) {
    let mut m = Vec::new();
    common::shape_mismatches(example, actual, "", &mut m);
    m.retain(|x| !ignore.iter().any(|i| x.contains(i)));
    assert!(m.is_empty(), "{m:?}");
}

#[tokio::test]
async fn calendars_events_and_view_delta() {
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.messages_per_user = Some(2);
    let h = common::start_with(o).await;
    let upn = h.first_user().await;
    let (s, cals) = h.get(&format!("/users/{upn}/calendars")).await;
    assert_eq!(s, 200);
    assert_eq!(cals["value"].as_array().unwrap().len(), 2);
    let (s, events) = h.get(&format!("/users/{upn}/events?$top=50")).await;
    assert_eq!(s, 200);
    let events = events["value"].as_array().unwrap().clone();
    assert!(!events.is_empty());
    let window = "startDateTime=2025-01-01T00:00:00Z&endDateTime=2027-12-31T00:00:00Z";
    let url = format!("/users/{upn}/calendarView/delta?{window}");
    assert_eq!(
        h.get(&format!("/users/{upn}/calendarView/delta")).await.0,
        400
    );
    let (items, delta, _) = h
        .delta_round(&url, &[("Prefer", "odata.maxpagesize=2")])
        .await;
    assert!(
        items.len() >= events.len(),
        "{} instances for {} events",
        items.len(),
        events.len()
    );
    check(&common::example("event-delta")["value"][0], &items[0], &[]);
    // Create a weekly recurring event with 3 occurrences: 3 instances in the window.
    let (s, created) = h
        .send(reqwest::Method::POST, &format!("/users/{upn}/calendar/events"), Some(json!({
            "subject": "Restored series", "body": {"contentType": "html", "content": "<p>x</p>"},
            "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T09:30:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]}, "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 3}}})))
        .await;
    assert_eq!(s, 201, "{created}");
    assert_eq!(created["type"], "seriesMaster");
    let (round, delta2, _) = h.delta_round(&delta, &[]).await;
    let occ: Vec<&Value> = round
        .iter()
        .filter(|e| e["seriesMasterId"] == created["id"])
        .collect();
    assert_eq!(occ.len(), 3, "{round:?}");
    assert!(occ.iter().all(|e| e["type"] == "occurrence"));
    let (s, _) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/users/{upn}/events/{}", created["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (round, _, _) = h.delta_round(&delta2, &[]).await;
    assert!(
        round
            .iter()
            .any(|e| e["id"] == created["id"] && e["@removed"]["reason"] == "deleted"),
        "{round:?}"
    );
    // Attachments of generated events (when present) and recurrence of masters.
    let mut seen_att = false;
    for e in &events {
        if e["hasAttachments"] == true {
            let (s, a) = h
                .get(&format!(
                    "/users/{upn}/events/{}/attachments",
                    e["id"].as_str().unwrap()
                ))
                .await;
            assert_eq!(s, 200);
            assert_eq!(a["value"].as_array().unwrap().len(), 1);
            seen_att = true;
        }
        if e["type"] == "seriesMaster" {
            assert!(e["recurrence"]["pattern"]["type"].is_string());
        }
    }
    let _ = seen_att;
    h.sim.stop().await;
}

#[tokio::test]
async fn contacts_delta_and_create() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let (s, folders) = h.get(&format!("/users/{upn}/contactFolders")).await;
    assert_eq!(s, 200);
    let fid = folders["value"][0]["id"].as_str().unwrap().to_string();
    let url = format!("/users/{upn}/contactFolders/{fid}/contacts/delta");
    let (items, delta, _) = h
        .delta_round(&url, &[("Prefer", "odata.maxpagesize=2")])
        .await;
    assert!(!items.is_empty());
    check(
        &common::example("contact-delta")["value"][0],
        &items[0],
        &[],
    );
    let (s, c) = h
        .send(reqwest::Method::POST, &format!("/users/{upn}/contactFolders/{fid}/contacts"), Some(json!({"givenName": "Åsa", "surname": "Öberg", "emailAddresses": [{"address": "asa@example.org"}]})))
        .await;
    assert_eq!(s, 201, "{c}");
    assert_eq!(c["displayName"], "Åsa Öberg");
    let gone = items[0]["id"].as_str().unwrap();
    assert_eq!(
        h.send(
            reqwest::Method::DELETE,
            &format!("/users/{upn}/contacts/{gone}"),
            None
        )
        .await
        .0,
        204
    );
    let (round, _, _) = h.delta_round(&delta, &[]).await;
    assert_eq!(round.len(), 2, "{round:?}");
    assert!(round.iter().any(|x| x["id"] == c["id"]));
    assert!(
        round
            .iter()
            .any(|x| x["id"] == gone && x.get("@removed").is_some())
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn teams_channels_messages_delta_and_migration() {
    let h = common::start(Profile::Tiny).await;
    let (_, groups) = h.get("/groups").await;
    let team = groups["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["resourceProvisioningOptions"][0] == "Team")
        .unwrap();
    let tid = team["id"].as_str().unwrap().to_string();
    let (s, t) = h.get(&format!("/groups/{tid}/team")).await;
    assert_eq!(s, 200, "{t}");
    let (s, chans) = h.get(&format!("/teams/{tid}/channels")).await;
    assert_eq!(s, 200);
    let cid = chans["value"][0]["id"].as_str().unwrap().to_string();
    let enc = cid.replace(':', "%3A").replace('@', "%40");
    let (s, msgs) = h
        .get(&format!("/teams/{tid}/channels/{enc}/messages"))
        .await;
    assert_eq!(s, 200, "{msgs}");
    check(
        &common::example("channel-messages")["value"][0],
        &msgs["value"][0],
        &[
            "attachments[0]",
            "mentions[0]",
            "reactions[0]",
            "/from/user/@odata.type",
        ],
    );
    let first = msgs["value"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = h
        .get(&format!(
            "/teams/{tid}/channels/{enc}/messages/{first}/replies"
        ))
        .await;
    assert_eq!(s, 200);
    let (items, delta, _) = h
        .delta_round(&format!("/teams/{tid}/channels/{enc}/messages/delta"), &[])
        .await;
    assert_eq!(items.len(), msgs["value"].as_array().unwrap().len());
    h.mutate(json!({"op": "reply_channel_message", "team": tid, "channel": cid, "id": first, "text": "late reply"})).await;
    let added = h
        .mutate(
            json!({"op": "add_channel_message", "team": tid, "channel": cid, "text": "new post"}),
        )
        .await;
    let (round, delta, _) = h.delta_round(&delta, &[]).await;
    let ids: Vec<&str> = round.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert!(
        ids.contains(&first.as_str()) && ids.contains(&added["id"].as_str().unwrap()),
        "{ids:?}"
    );
    h.mutate(json!({"op": "delete_channel_message", "team": tid, "channel": cid, "id": first}))
        .await;
    let (round, _, _) = h.delta_round(&delta, &[]).await;
    assert!(
        round
            .iter()
            .any(|m| m["id"] == first.as_str() && m["deletedDateTime"].is_string())
    );

    // Posting into a normal channel is refused app-only; migration mode accepts imports.
    let (s, _) = h
        .send(
            reqwest::Method::POST,
            &format!("/teams/{tid}/channels/{enc}/messages"),
            Some(json!({"body": {"content": "x"}})),
        )
        .await;
    assert_eq!(s, 403);
    let r = h
        .http
        .post(h.url(&format!("/teams/{tid}/channels")))
        .bearer_auth(&h.token)
        .json(&json!({"@microsoft.graph.channelCreationMode": "migration", "displayName": "Imported", "createdDateTime": "2020-01-01T00:00:00Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let loc = r.headers()["content-location"]
        .to_str()
        .unwrap()
        .to_string();
    let new_cid = loc
        .split("channels('")
        .nth(1)
        .unwrap()
        .trim_end_matches("')")
        .to_string();
    let nenc = new_cid.replace(':', "%3A").replace('@', "%40");
    let (s, imported) = h
        .send(reqwest::Method::POST, &format!("/teams/{tid}/channels/{nenc}/messages"), Some(json!({
            "createdDateTime": "2020-02-03T04:05:06Z", "from": {"user": {"id": "8ea0e38b-efb3-4757-924a-5f94061cf8c2", "displayName": "Robin Kline", "userIdentityType": "aadUser"}},
            "body": {"contentType": "html", "content": "Imported"}})))
        .await;
    assert_eq!(s, 200, "{imported}");
    assert_eq!(imported["createdDateTime"], "2020-02-03T04:05:06.000Z");
    // `deleted` only exists in the beta payload the example was taken from.
    check(
        &common::example("channel-import-message-response"),
        &imported,
        &[
            "@odata.context",
            "attachments[0]",
            "mentions[0]",
            "reactions[0]",
            "/deleted",
        ],
    );
    assert_eq!(
        h.send(
            reqwest::Method::POST,
            &format!("/teams/{tid}/completeMigration"),
            None
        )
        .await
        .0,
        400
    );
    assert_eq!(
        h.send(
            reqwest::Method::POST,
            &format!("/teams/{tid}/channels/{nenc}/completeMigration"),
            None
        )
        .await
        .0,
        204
    );
    assert_eq!(
        h.send(
            reqwest::Method::POST,
            &format!("/teams/{tid}/completeMigration"),
            None
        )
        .await
        .0,
        204
    );
    let (s, _) = h
        .send(
            reqwest::Method::POST,
            &format!("/teams/{tid}/channels/{nenc}/messages"),
            Some(json!({"body": {"content": "x"}})),
        )
        .await;
    assert_eq!(s, 403);
    h.sim.stop().await;
}

#[tokio::test]
async fn group_calendars() {
    let h = common::start(Profile::Tiny).await;
    let (_, groups) = h.get("/groups").await;
    let g = groups["value"][0]["id"].as_str().unwrap().to_string();
    let (s, events) = h.get(&format!("/groups/{g}/events?$top=100")).await;
    assert_eq!(s, 200, "{events}");
    assert!(!events["value"].as_array().unwrap().is_empty());
    let (s, cal) = h.get(&format!("/groups/{g}/calendar")).await;
    assert_eq!(s, 200, "{cal}");
    let url = format!(
        "/groups/{g}/calendarView/delta?startDateTime=2025-01-01T00:00:00Z&endDateTime=2027-12-31T00:00:00Z"
    );
    let (_, delta, _) = h.delta_round(&url, &[]).await;
    let (s, created) = h
        .send(reqwest::Method::POST, &format!("/groups/{g}/calendar/events"), Some(json!({"subject": "Team day",
            "start": {"dateTime": "2026-06-01T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-06-01T11:00:00", "timeZone": "UTC"}})))
        .await;
    assert_eq!(s, 201, "{created}");
    let (round, _, _) = h.delta_round(&delta, &[]).await;
    assert_eq!(round.len(), 1);
    assert_eq!(round[0]["id"], created["id"]);
    let (_, snap) = h
        .control(reqwest::Method::GET, "snapshot?content=false", None)
        .await;
    let group_mail = groups["value"][0]["mail"].as_str().unwrap();
    assert!(
        snap["events"][group_mail]
            .as_object()
            .unwrap()
            .contains_key(created["id"].as_str().unwrap())
    );
    h.sim.stop().await;
}

#[tokio::test]
async fn event_attachments_added_for_restore() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let (s, e) = h
        .send(reqwest::Method::POST, &format!("/users/{upn}/events"), Some(json!({"subject": "Restored",
            "start": {"dateTime": "2026-06-01T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-06-01T11:00:00", "timeZone": "UTC"}})))
        .await;
    assert_eq!(s, 201, "{e}");
    assert_eq!(e["hasAttachments"], false);
    let id = e["id"].as_str().unwrap();
    let (s, a) = h
        .send(reqwest::Method::POST, &format!("/users/{upn}/events/{id}/attachments"), Some(json!({"@odata.type": "#microsoft.graph.fileAttachment", "name": "Agenda.txt", "contentBytes": "SGVsbG8="})))
        .await;
    assert_eq!(s, 201, "{a}");
    let r = h
        .http
        .get(h.url(&format!(
            "/users/{upn}/events/{id}/attachments/{}/$value",
            a["id"].as_str().unwrap()
        )))
        .bearer_auth(&h.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(&r.bytes().await.unwrap()[..], b"Hello");
    let (s, _) = h
        .send(
            reqwest::Method::PATCH,
            &format!("/users/{upn}/events/{id}"),
            Some(json!({"subject": "Renamed"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, again) = h.get(&format!("/users/{upn}/events/{id}")).await;
    assert_eq!(
        (again["subject"].as_str(), again["hasAttachments"].as_bool()),
        (Some("Renamed"), Some(true))
    );
    h.sim.stop().await;
}

/// A series' occurrences: `instances` (window required), PATCH into an exception, DELETE and
/// `cancel`, `$select=cancelledOccurrences` / `$expand=exceptionOccurrences` on the master, the
/// master's changeKey moving with each, and `calendarView/delta` showing the exceptions.
#[tokio::test]
async fn series_exceptions_and_cancelled_occurrences() {
    use reqwest::Method;
    let mut o = graph_sim::SimOptions::new(Profile::Tiny);
    o.messages_per_user = Some(2);
    let h = common::start_with(o).await;
    let upn = h.first_user().await;
    let ev = |id: &str| format!("/users/{upn}/events/{id}");
    let (s, master) = h
        .send(Method::POST, &format!("/users/{upn}/calendar/events"), Some(json!({
            "subject": "Standup", "body": {"contentType": "html", "content": "<p>daily</p>"},
            "start": {"dateTime": "2026-03-02T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-02T09:30:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]}, "range": {"type": "numbered", "startDate": "2026-03-02", "numberOfOccurrences": 5}}})))
        .await;
    assert_eq!(s, 201, "{master}");
    let mid = master["id"].as_str().unwrap().to_owned();
    let window = "startDateTime=2026-03-01T00:00:00Z&endDateTime=2026-04-30T00:00:00Z";
    let (_, delta0, _) = h
        .delta_round(&format!("/users/{upn}/calendarView/delta?{window}"), &[])
        .await;
    let instances = |q: &'static str| {
        let url = format!("{}/instances?{q}", ev(&mid));
        let h = &h;
        async move { h.get(&url).await }
    };
    // The window is required.
    let (s, err) = instances("").await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (400, Some("ErrorInvalidParameter")),
        "{err}"
    );
    let (s, list) = instances(window).await;
    assert_eq!(s, 200, "{list}");
    let occ = list["value"].as_array().unwrap().clone();
    assert_eq!(occ.len(), 5);
    assert!(occ.iter().all(|o| o["type"] == "occurrence"
        && o["seriesMasterId"] == master["id"]
        && o["recurrence"].is_null()));
    assert_eq!(occ[1]["occurrenceId"], format!("OID.{mid}.2026-03-09"));
    assert_eq!(occ[1]["originalStart"], "2026-03-09T09:00:00Z");
    assert_eq!(occ[1]["start"]["dateTime"], "2026-03-09T09:00:00.0000000");
    // Occurrence ids are stable and resolvable.
    assert_eq!(instances(window).await.1["value"], list["value"]);
    let id = |i: usize| occ[i]["id"].as_str().unwrap().to_owned();
    let (s, one) = h.get(&ev(&id(1))).await;
    assert_eq!((s, &one), (200, &occ[1]));
    let (_, m0) = h.get(&ev(&mid)).await;

    // PATCH makes the occurrence an exception and changes the master.
    let (s, changed) = h
        .send(Method::PATCH, &ev(&id(1)), Some(json!({"subject": "Standup (moved)",
            "start": {"dateTime": "2026-03-10T10:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-10T10:30:00", "timeZone": "UTC"},
            "recurrence": {"pattern": {"type": "daily"}}})))
        .await;
    assert_eq!(s, 200, "{changed}");
    assert_eq!(
        (
            changed["type"].as_str(),
            changed["subject"].as_str(),
            changed["id"].as_str()
        ),
        (
            Some("exception"),
            Some("Standup (moved)"),
            Some(id(1).as_str())
        )
    );
    assert_eq!(changed["originalStart"], "2026-03-09T09:00:00Z");
    let (_, m1) = h.get(&ev(&mid)).await;
    assert_ne!(m1["changeKey"], m0["changeKey"]);
    assert!(m1["lastModifiedDateTime"].as_str() >= m0["lastModifiedDateTime"].as_str());
    assert_eq!(m1["subject"], "Standup", "the master keeps its own subject");
    // An occurrence may not be moved onto an adjacent occurrence's day.
    let (s, err) = h
        .send(Method::PATCH, &ev(&id(2)), Some(json!({
            "start": {"dateTime": "2026-03-23T09:00:00", "timeZone": "UTC"}, "end": {"dateTime": "2026-03-23T09:30:00", "timeZone": "UTC"}})))
        .await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (400, Some("ErrorOccurrenceCrossingBoundary"))
    );

    // DELETE cancels one occurrence; it is gone for GET, PATCH and DELETE.
    let (s, _) = h.send(Method::DELETE, &ev(&id(3)), None).await;
    assert_eq!(s, 204);
    for method in [Method::GET, Method::DELETE] {
        let (s, err) = h.send(method, &ev(&id(3)), None).await;
        assert_eq!(
            (s, err["error"]["code"].as_str()),
            (404, Some("ErrorItemNotFound"))
        );
    }
    let (s, _) = h
        .send(Method::PATCH, &ev(&id(3)), Some(json!({"subject": "x"})))
        .await;
    assert_eq!(s, 404);
    let (_, m2) = h.get(&ev(&mid)).await;
    assert_ne!(m2["changeKey"], m1["changeKey"]);
    // `cancel` too (202, as Graph answers it).
    let (s, _) = h
        .send(
            Method::POST,
            &format!("{}/cancel", ev(&id(4))),
            Some(json!({"Comment": "off"})),
        )
        .await;
    assert_eq!(s, 202);

    let (_, list) = instances(window).await;
    let now: Vec<(String, String, String)> = list["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["type"].as_str().unwrap().to_owned(),
                o["subject"].as_str().unwrap().to_owned(),
                o["start"]["dateTime"].as_str().unwrap()[..16].to_owned(),
            )
        })
        .collect();
    let row = |t: &str, s: &str, at: &str| (t.to_owned(), s.to_owned(), at.to_owned());
    assert_eq!(
        now,
        vec![
            row("occurrence", "Standup", "2026-03-02T09:00"),
            row("exception", "Standup (moved)", "2026-03-10T10:00"),
            row("occurrence", "Standup", "2026-03-16T09:00"),
        ]
    );

    // The master: cancelledOccurrences only when selected, exceptions when expanded.
    let (_, plain) = h.get(&ev(&mid)).await;
    assert!(plain.get("cancelledOccurrences").is_none());
    assert!(plain.get("exceptionOccurrences").is_none());
    assert!(plain.get("occurrenceId").is_some_and(Value::is_null));
    let (s, full) = h
        .get(&format!(
            "{}?$select=cancelledOccurrences&$expand=exceptionOccurrences",
            ev(&mid)
        ))
        .await;
    assert_eq!(s, 200, "{full}");
    assert_eq!(
        full["cancelledOccurrences"],
        json!([
            format!("OID.{mid}.2026-03-23"),
            format!("OID.{mid}.2026-03-30")
        ])
    );
    assert!(
        full.get("subject").is_none(),
        "$select keeps only what is named: {full}"
    );
    let ex = full["exceptionOccurrences"].as_array().unwrap();
    assert_eq!(ex.len(), 1);
    assert_eq!(
        (
            ex[0]["id"].as_str(),
            ex[0]["originalStart"].as_str(),
            ex[0]["subject"].as_str()
        ),
        (
            Some(id(1).as_str()),
            Some("2026-03-09T09:00:00Z"),
            Some("Standup (moved)")
        )
    );
    let (_, nav) = h.get(&format!("{}/exceptionOccurrences", ev(&mid))).await;
    assert_eq!(nav["value"].as_array().unwrap().len(), 1);
    // A change to the master's own subject keeps its exceptions.
    let (s, _) = h
        .send(
            Method::PATCH,
            &ev(&mid),
            Some(json!({"subject": "Team standup"})),
        )
        .await;
    assert_eq!(s, 200);
    let (_, full2) = h
        .get(&format!(
            "{}?$select=subject,cancelledOccurrences&$expand=exceptionOccurrences",
            ev(&mid)
        ))
        .await;
    assert_eq!(full2["subject"], "Team standup");
    assert_eq!(full2["cancelledOccurrences"], full["cancelledOccurrences"]);
    assert_eq!(
        full2["exceptionOccurrences"][0]["subject"],
        "Standup (moved)"
    );

    // calendarView/delta shows the exception at its own time and leaves the cancelled out.
    let (items, _, _) = h
        .delta_round(&format!("/users/{upn}/calendarView/delta?{window}"), &[])
        .await;
    let of_series: Vec<&Value> = items
        .iter()
        .filter(|i| i["seriesMasterId"] == mid.as_str())
        .collect();
    assert_eq!(of_series.len(), 3, "{of_series:?}");
    // A client following its delta link sees the series again and the cancelled ones removed.
    let (round, _, _) = h.delta_round(&delta0, &[]).await;
    for i in [3, 4] {
        assert!(
            round
                .iter()
                .any(|e| e["id"] == id(i).as_str() && e["@removed"]["reason"] == "deleted"),
            "{round:?}"
        );
    }
    assert_eq!(
        round
            .iter()
            .filter(|e| e["seriesMasterId"] == mid.as_str())
            .count(),
        3
    );
    assert!(of_series.iter().any(
        |i| i["type"] == "exception" && i["start"]["dateTime"] == "2026-03-10T10:00:00.0000000"
    ));

    // A deleted master takes its occurrences with it.
    let (s, _) = h.send(Method::DELETE, &ev(&mid), None).await;
    assert_eq!(s, 204);
    let (s, err) = h.get(&ev(&id(0))).await;
    assert_eq!(
        (s, err["error"]["code"].as_str()),
        (404, Some("ErrorItemNotFound"))
    );
    h.sim.stop().await;
}

/// Generated series of a Demo tenant already carry an exception and a cancelled occurrence.
#[tokio::test]
async fn generated_series_carry_exceptions() {
    let mut o = graph_sim::SimOptions::new(Profile::Demo);
    o.messages_per_user = Some(2);
    o.users = Some(4);
    let h = common::start_with(o).await;
    let (_, users) = h.get("/users?$top=10").await;
    let mut found = 0;
    let mut series = None;
    for u in users["value"].as_array().unwrap() {
        let upn = u["userPrincipalName"].as_str().unwrap();
        let (s, events) = h.get(&format!("/users/{upn}/events?$top=200")).await;
        if s != 200 {
            continue;
        }
        for e in events["value"].as_array().unwrap() {
            if e["type"] != "seriesMaster" {
                continue;
            }
            let id = e["id"].as_str().unwrap();
            let (s, full) = h
                .get(&format!(
                    "/users/{upn}/events/{id}?$select=cancelledOccurrences&$expand=exceptionOccurrences"
                ))
                .await;
            assert_eq!(s, 200, "{full}");
            let cancelled = full["cancelledOccurrences"].as_array().unwrap();
            let ex = full["exceptionOccurrences"].as_array().unwrap();
            assert_eq!(cancelled.len(), ex.len(), "{full}");
            if cancelled.is_empty() {
                continue;
            }
            found += 1;
            // The instances of the series leave the cancelled date out and show the exception.
            let (s, list) = h
                .get(&format!(
                    "/users/{upn}/events/{id}/instances?startDateTime=2024-01-01T00:00:00Z&endDateTime=2028-01-01T00:00:00Z&$top=1000"
                ))
                .await;
            assert_eq!(s, 200, "{list}");
            let list = list["value"].as_array().unwrap();
            let gone = cancelled[0].as_str().unwrap();
            assert!(list.iter().all(|i| i["occurrenceId"] != gone));
            assert_eq!(list.iter().filter(|i| i["type"] == "exception").count(), 1);
            assert!(ex[0]["subject"].as_str().unwrap().ends_with("(moved)"));
            let plain = list.iter().find(|i| i["type"] == "occurrence").unwrap();
            series = Some((
                upn.to_owned(),
                id.to_owned(),
                plain["id"].as_str().unwrap().to_owned(),
            ));
        }
    }
    assert!(found > 0, "no generated series with exceptions");
    // Exceptions are part of the snapshot's event hashes.
    let (upn, id, occurrence) = series.unwrap();
    let hash = || async {
        let (s, snap) = h.control(reqwest::Method::GET, "snapshot", None).await;
        assert_eq!(s, 200);
        snap["events"][&upn][&id].as_str().unwrap().to_owned()
    };
    let before = hash().await;
    let (s, _) = h
        .send(
            reqwest::Method::DELETE,
            &format!("/users/{upn}/events/{occurrence}"),
            None,
        )
        .await;
    assert_eq!(s, 204);
    assert_ne!(hash().await, before);
    h.sim.stop().await;
}
