//! Large message attachments through upload sessions, and what a message created from JSON
//! shows as given (internetMessageId, importance, categories, flag, sender, bcc, reply-to).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use graph_sim::Profile;
use serde_json::{Value, json};

async fn put_range(
    h: &common::Harness,
    url: &str,
    bytes: &[u8],
    range: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    // Graph's upload URL is pre-authenticated: no bearer token.
    let r = h
        .http
        .put(url)
        .header("Content-Range", range)
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.text().await.unwrap())
}

#[tokio::test]
async fn a_large_attachment_arrives_through_an_upload_session() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let (s, m) = h
        .send(
            reqwest::Method::POST,
            &format!("/users/{upn}/mailFolders/inbox/messages"),
            Some(json!({
            "subject": "Big", "body": {"contentType": "text", "content": "see attached"},
            "singleValueExtendedProperties": [{"id": "Integer 0x0E07", "value": "1"}]})),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    assert_eq!(m["isDraft"], false);
    let id = m["id"].as_str().unwrap();
    let data: Vec<u8> = (0..5_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let session_path = format!("/users/{upn}/messages/{id}/attachments/createUploadSession");

    // The item must be a file with a name and a size.
    let (s, _) = h
        .send(
            reqwest::Method::POST,
            &session_path,
            Some(json!({"AttachmentItem": {"attachmentType": "file", "name": "x.bin"}})),
        )
        .await;
    assert_eq!(s, 400);
    let (s, _) = h
        .send(reqwest::Method::POST, &session_path, Some(json!({"AttachmentItem": {"attachmentType": "file", "name": "x.bin", "size": 200_000_000u64}})))
        .await;
    assert_eq!(s, 413);

    let (s, session) = h
        .send(reqwest::Method::POST, &session_path, Some(json!({"AttachmentItem": {
            "attachmentType": "file", "name": "big.bin", "size": data.len(), "contentType": "application/octet-stream"}})))
        .await;
    assert_eq!(s, 201, "{session}");
    assert_eq!(session["nextExpectedRanges"], json!(["0-"]));
    let url = session["uploadUrl"].as_str().unwrap().to_string();

    // The URL carries its own token: a bearer token, or a wrong authtoken, is refused.
    let r = h
        .http
        .put(&url)
        .bearer_auth(&h.token)
        .header("Content-Range", "bytes 0-9/5000000")
        .body(data[..10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let (base, _) = url.split_once("authtoken=").unwrap();
    let forged = format!("{base}authtoken=0123");
    let (s, _, _) = put_range(&h, &forged, &data[..10], "bytes 0-9/5000000").await;
    assert_eq!(s, 404);
    assert!(!url.contains("/v1.0/"), "{url} is outside the Graph paths");

    // More than 4 MB in one range is refused; out of order too.
    let (s, _, _) = put_range(&h, &url, &data[..4_194_305], "bytes 0-4194304/5000000").await;
    assert_eq!(s, 413);
    let (s, _, _) = put_range(&h, &url, &data[10..20], "bytes 10-19/5000000").await;
    assert_eq!(s, 416);
    // The first range: 200 and where to go on.
    let (s, _, body) = put_range(&h, &url, &data[..3_000_000], "bytes 0-2999999/5000000").await;
    assert_eq!(s, 200, "{body}");
    let progress: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(progress["nextExpectedRanges"], json!(["3000000"]));
    // The same range again (a lost answer): the progress, unchanged.
    let (s, _, body) = put_range(&h, &url, &data[..3_000_000], "bytes 0-2999999/5000000").await;
    assert_eq!(s, 200, "{body}");
    // The last range: 201, no body, the attachment's location.
    let (s, headers, body) = put_range(
        &h,
        &url,
        &data[3_000_000..],
        "bytes 3000000-4999999/5000000",
    )
    .await;
    assert_eq!(s, 201, "{body}");
    assert!(body.is_empty());
    let location = headers["location"].to_str().unwrap();
    assert!(location.contains("/attachments/"), "{location}");
    // The session is gone.
    let (s, _, _) = put_range(&h, &url, &data[..1], "bytes 0-0/5000000").await;
    assert_eq!(s, 404);

    let (_, list) = h
        .get(&format!("/users/{upn}/messages/{id}/attachments"))
        .await;
    let att = &list["value"][0];
    assert_eq!(att["name"], "big.bin");
    assert_eq!(att["size"], 5_000_000);
    let back = base64::engine::general_purpose::STANDARD
        .decode(att["contentBytes"].as_str().unwrap())
        .unwrap();
    assert!(back == data);
    h.sim.stop().await;
}

#[tokio::test]
async fn a_message_created_from_json_keeps_what_was_given() {
    let h = common::start(Profile::Tiny).await;
    let upn = h.first_user().await;
    let person = |n: &str, a: &str| json!({"emailAddress": {"name": n, "address": a}});
    let (s, m) = h
        .send(reqwest::Method::POST, &format!("/users/{upn}/mailFolders/inbox/messages"), Some(json!({
            "subject": "Kept", "body": {"contentType": "html", "content": "<p>x</p>"},
            "from": person("Ann", "ann@example.org"), "sender": person("Sec", "sec@example.org"),
            "toRecipients": [person("Bob", "bob@example.org")],
            "bccRecipients": [person("Eve", "eve@example.org")], "replyTo": [person("List", "list@example.org")],
            "internetMessageId": "<kept@example.org>", "importance": "high", "categories": ["Blue"],
            "flag": {"flagStatus": "flagged"},
            "singleValueExtendedProperties": [
                {"id": "Integer 0x0E07", "value": "0"},
                {"id": "SystemTime 0x0E06", "value": "2025-02-03T04:05:06Z"},
                {"id": "SystemTime 0x0039", "value": "2025-02-03T04:00:00Z"}]})))
        .await;
    assert_eq!(s, 201, "{m}");
    let (_, m) = h
        .get(&format!(
            "/users/{upn}/messages/{}",
            m["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(m["isDraft"], false);
    assert_eq!(m["isRead"], false);
    assert_eq!(m["internetMessageId"], "<kept@example.org>");
    assert_eq!(m["importance"], "high");
    assert_eq!(m["categories"], json!(["Blue"]));
    assert_eq!(m["flag"]["flagStatus"], "flagged");
    assert_eq!(m["sender"]["emailAddress"]["address"], "sec@example.org");
    assert_eq!(
        m["bccRecipients"][0]["emailAddress"]["address"],
        "eve@example.org"
    );
    assert_eq!(
        m["replyTo"][0]["emailAddress"]["address"],
        "list@example.org"
    );
    assert_eq!(m["receivedDateTime"], "2025-02-03T04:05:06Z");
    assert_eq!(m["sentDateTime"], "2025-02-03T04:00:00Z");
    // A message created from MIME cannot take upload sessions (Graph: a draft from MIME has
    // its attachments in the MIME).
    let mime = base64::engine::general_purpose::STANDARD
        .encode("From: a@example.org\r\nSubject: m\r\n\r\nbody\r\n");
    let r = h
        .http
        .post(h.url(&format!("/users/{upn}/mailFolders/inbox/messages")))
        .bearer_auth(&h.token)
        .header("Content-Type", "text/plain")
        .body(mime)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let created: Value = r.json().await.unwrap();
    let (s, _) = h
        .send(reqwest::Method::POST, &format!("/users/{upn}/messages/{}/attachments/createUploadSession", created["id"].as_str().unwrap()),
            Some(json!({"AttachmentItem": {"attachmentType": "file", "name": "x.bin", "size": 4_000_000}})))
        .await;
    assert_eq!(s, 400);
    h.sim.stop().await;
}
