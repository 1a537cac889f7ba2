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
