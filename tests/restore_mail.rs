//! Mail restores to the simulated tenant: round trips against the simulator's content hashes,
//! each conflict policy, idempotence with "skip", another mailbox under a "Restored …" folder,
//! received (not draft) messages with identical attachments, and a nested message
//! (`message/rfc822`) restored and exported as an `.eml`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use backhome::restore::Conflict;
use backhome::task::Service;
use backhome_store::RunId;
use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

mod common;
use common::python::python;
use common::restore::{
    busy_mailbox, fingerprint, mail_of, mail_path, restore, restore_to, snapshot,
};
use common::{Env, env};

#[actix_web::test]
async fn mail_round_trip_restores_deleted_messages_once() {
    let e = env(&[Service::Mail]).await;
    let run = RunId(e.backup().await.run_id);
    let before = snapshot(&e).await;
    let (upn, folder, ids) = busy_mailbox(&before);
    let before_mail = mail_of(&e, &before, &upn).await;
    e.control(
        Method::POST,
        "mutate",
        Some(json!([
            {"op": "delete_message", "user": upn, "id": ids[0]},
            {"op": "delete_message", "user": upn, "id": ids[1]},
        ])),
    )
    .await;
    assert_ne!(
        mail_of(&e, &snapshot(&e).await, &upn).await,
        before_mail.clone()
    );

    let report = restore(&e, run, &[format!("/users/{upn}/mail")], Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored, 2, "{report:?}");
    let after = snapshot(&e).await;
    assert_eq!(mail_of(&e, &after, &upn).await, before_mail.clone());

    // What Graph lets us keep: received and sent dates, read state, flag.
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let restored: Vec<&String> = after["mail"][&upn][&folder]
        .as_object()
        .unwrap()
        .keys()
        .filter(|id| !ids.contains(id))
        .collect();
    let original = browse_meta(&e, run, &mail_path(&upn, &folder));
    assert!(!restored.is_empty());
    for id in restored {
        let m: Value = client
            .json(backhome_graph::Call::get(format!(
                "/users/{upn}/messages/{id}"
            )))
            .await
            .unwrap();
        let imid = m["internetMessageId"].as_str().unwrap();
        let Some(o) = original.get(imid) else {
            continue;
        };
        for k in ["receivedDateTime", "sentDateTime", "isRead", "subject"] {
            assert_eq!(m[k], o[k], "{k} of {imid}");
        }
        assert_eq!(m["flag"]["flagStatus"], o["flag"]["flagStatus"]);
    }

    // Idempotence: a second restore with skip changes nothing and creates nothing.
    let again = restore(&e, run, &[format!("/users/{upn}/mail")], Conflict::Skip).await;
    assert!(again.failed.is_empty(), "{:?}", again.failed);
    assert_eq!(again.restored, 0, "{again:?}");
    assert_eq!(again.skipped as usize, again.items.len());
    // Same ids, same contents: nothing was created, replaced or deleted.
    assert_eq!(snapshot(&e).await, after);
}

/// Stored message metadata of a folder, by internetMessageId.
fn browse_meta(e: &Env, run: RunId, path: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in backhome::cli::browse::list(&e.repo, run, path, false).unwrap() {
        if let backhome::cli::browse::Target::Node(v) =
            backhome::cli::browse::resolve(&e.repo, run, &entry.path).unwrap()
            && let Some(imid) = v.metadata["internetMessageId"].as_str()
        {
            out.insert(imid.to_owned(), v.metadata.clone());
        }
    }
    out
}

#[actix_web::test]
async fn mail_conflict_policies() {
    let e = env(&[Service::Mail]).await;
    let run = RunId(e.backup().await.run_id);
    let before = snapshot(&e).await;
    let (upn, folder, ids) = busy_mailbox(&before);
    let before_mail = mail_of(&e, &before, &upn).await;
    let path = mail_path(&upn, &folder);
    let n = ids.len();

    let original: BTreeMap<String, Vec<String>> = mail_of(&e, &before, &upn)
        .await
        .into_iter()
        .filter(|(f, _)| *f == folder || f.starts_with(&format!("{folder}/")))
        .collect();
    let messages: usize = original.values().map(Vec::len).sum();
    let folders = original.len();

    // Overwrite: every message replaced by the restored one; same contents, new ids.
    let report = restore(&e, run, std::slice::from_ref(&path), Conflict::Overwrite).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored as usize, messages, "{report:?}");
    assert_eq!(
        report.skipped as usize, folders,
        "existing folders: {report:?}"
    );
    let after = snapshot(&e).await;
    assert_eq!(mail_of(&e, &after, &upn).await, before_mail.clone());
    let new_ids: Vec<&String> = after["mail"][&upn][&folder]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(new_ids.len(), n);
    assert!(new_ids.iter().all(|id| !ids.contains(id)), "ids changed");

    // Keep both: a second copy of each.
    let report = restore(&e, run, std::slice::from_ref(&path), Conflict::KeepBoth).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored as usize, messages, "{report:?}");
    let after = snapshot(&e).await;
    let now = mail_of(&e, &after, &upn).await;
    for (f, hashes) in original {
        let mut doubled = hashes.clone();
        doubled.extend(hashes);
        doubled.sort();
        assert_eq!(now[&f], doubled, "{f}");
    }

    // Skip: nothing changes.
    let report = restore(&e, run, std::slice::from_ref(&path), Conflict::Skip).await;
    assert_eq!(report.restored, 0, "{report:?}");
    assert_eq!(snapshot(&e).await, after);
}

#[actix_web::test]
async fn mail_into_another_mailbox_under_a_restored_folder() {
    let e = env(&[Service::Mail]).await;
    let run = RunId(e.backup().await.run_id);
    let before = snapshot(&e).await;
    let (upn, folder, _) = busy_mailbox(&before);
    let before_mail = mail_of(&e, &before, &upn).await;
    let other = before["mail"]
        .as_object()
        .unwrap()
        .keys()
        .find(|u| **u != upn)
        .unwrap()
        .clone();
    let name = "Restored 2026-11-24 14:30";
    let report = restore_to(
        &e,
        run,
        &[mail_path(&upn, &folder)],
        Conflict::Skip,
        Some(&other),
        Some(name),
    )
    .await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    let after = snapshot(&e).await;
    let theirs = mail_of(&e, &after, &other).await;
    let restored_folder = format!("{name}/{folder}");
    assert_eq!(
        theirs.get(&restored_folder),
        before_mail.get(&folder),
        "folders of {other}: {:?}",
        theirs.keys().collect::<Vec<_>>()
    );
    // The source mailbox is untouched.
    assert_eq!(mail_of(&e, &after, &upn).await, before_mail.clone());
}

/// A MIME message with an HTML body referring to an inline image, a small and a 3.5 MB
/// attachment, Cc, Bcc and Reply-To.
/// Adds a message with MIME `mime` to `upn`'s inbox in the simulator; its immutable id.
async fn add_to_inbox(e: &Env, upn: &str, mime: &str) -> String {
    let added = e
        .control(
            Method::POST,
            "mutate",
            Some(json!({"op": "add_message", "user": upn, "folder": "inbox",
                "mime_base64": base64::engine::general_purpose::STANDARD.encode(mime)})),
        )
        .await;
    added["results"][0]["immutable_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn rich_mime(big: &[u8], image: &[u8]) -> String {
    let b64 = |b: &[u8]| {
        let s = base64::engine::general_purpose::STANDARD.encode(b);
        s.as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    let html =
        "<html><body><p>Grüße aus dem Archiv</p><img src=\"cid:logo@archive\"></body></html>";
    format!(
        "From: \"Ann Archive\" <ann@fabrikam.com>\r\nTo: \"Bob Builder\" <bob@fabrikam.com>\r\n\
Cc: \"Cat Copy\" <cat@fabrikam.com>\r\nBcc: \"Eve Hidden\" <eve@fabrikam.com>\r\n\
Reply-To: \"Archive List\" <list@fabrikam.com>\r\nSubject: Quarterly archive\r\n\
Date: Tue, 03 Mar 2026 10:00:00 +0000\r\nMessage-ID: <rich-0001@fabrikam.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"mix\"\r\n\r\n--mix\r\n\
Content-Type: multipart/related; boundary=\"rel\"\r\n\r\n--rel\r\n\
Content-Type: text/html; charset=\"utf-8\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--rel\r\n\
Content-Type: image/png; name=\"logo.png\"\r\nContent-Disposition: inline; filename=\"logo.png\"\r\n\
Content-ID: <logo@archive>\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--rel--\r\n--mix\r\n\
Content-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--mix\r\n\
Content-Type: application/octet-stream; name=\"archive.bin\"\r\nContent-Disposition: attachment; filename=\"archive.bin\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--mix--\r\n",
        b64(html.as_bytes()),
        b64(image),
        b64(b"%PDF-1.4 small report"),
        b64(big),
    )
}

#[actix_web::test]
async fn restored_mail_is_received_not_draft_with_identical_attachments() {
    let e = env(&[Service::Mail]).await;
    let snap = snapshot(&e).await;
    let upn = snap["mail"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let other = snap["mail"]
        .as_object()
        .unwrap()
        .keys()
        .nth(1)
        .unwrap()
        .clone();
    let big: Vec<u8> = (0..3_500_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let image: Vec<u8> = (0..6_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mime = rich_mime(&big, &image);
    let id = add_to_inbox(&e, &upn, &mime).await;
    e.control(
        Method::POST,
        "mutate",
        Some(json!({"op": "modify_message", "user": upn, "id": id, "isRead": true, "flag": "flagged"})),
    )
    .await;
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let original = fingerprint(&client, &upn, &id).await;
    assert_eq!(original["isDraft"], false);
    assert_eq!(original["attachments"].as_array().unwrap().len(), 3);
    assert_eq!(
        original["bccRecipients"][0]["emailAddress"]["address"],
        "eve@fabrikam.com"
    );

    let run = RunId(e.backup().await.run_id);
    e.control(
        Method::POST,
        "mutate",
        Some(json!({"op": "delete_message", "user": upn, "id": id})),
    )
    .await;
    let inbox = mail_path(&upn, "Inbox");
    let report = restore(&e, run, std::slice::from_ref(&inbox), Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored, 1, "{report:?}");
    let after = snapshot(&e).await;
    let restored: Vec<String> = after["mail"][&upn]["Inbox"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| {
            !snap["mail"][&upn]["Inbox"]
                .as_object()
                .unwrap()
                .contains_key(*k)
        })
        .cloned()
        .collect();
    assert_eq!(restored.len(), 1);
    let back = fingerprint(&client, &upn, &restored[0]).await;
    // Not a draft, same people, body, dates, read state, flag; the attachments (the 3.5 MB one
    // through an upload session, the inline image with its content id) byte for byte.
    assert_eq!(back, original);
    let inline = back["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["isInline"] == true)
        .unwrap();
    assert_eq!(inline["contentId"], "logo@archive");
    assert_eq!(inline["hash"], blake3::hash(&image).to_hex().to_string());
    assert!(
        back["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["hash"] == blake3::hash(&big).to_hex().to_string())
    );
    assert!(
        back["body"]["content"]
            .as_str()
            .unwrap()
            .contains("cid:logo@archive")
    );

    // Skip again: nothing changes.
    let again = restore(&e, run, std::slice::from_ref(&inbox), Conflict::Skip).await;
    assert_eq!(again.restored, 0, "{again:?}");
    assert_eq!(snapshot(&e).await, after);

    // Keep both: a second, identical copy.
    let both = restore(&e, run, std::slice::from_ref(&inbox), Conflict::KeepBoth).await;
    assert!(both.failed.is_empty(), "{:?}", both.failed);
    let copies: Vec<Value> = {
        let s = snapshot(&e).await;
        let mut v = Vec::new();
        for k in s["mail"][&upn]["Inbox"].as_object().unwrap().keys() {
            let f = fingerprint(&client, &upn, k).await;
            if f["internetMessageId"] == original["internetMessageId"] {
                v.push(f);
            }
        }
        v
    };
    assert_eq!(copies, vec![original.clone(), original.clone()]);

    // Another account, under a "Restored …" folder.
    let name = "Restored 2026-11-26 04.30";
    let to_other = restore_to(
        &e,
        run,
        std::slice::from_ref(&inbox),
        Conflict::Skip,
        Some(&other),
        Some(name),
    )
    .await;
    assert!(to_other.failed.is_empty(), "{:?}", to_other.failed);
    let theirs = snapshot(&e).await;
    let mut found = Vec::new();
    for k in theirs["mail"][&other][&format!("{name}/Inbox")]
        .as_object()
        .unwrap()
        .keys()
    {
        let f = fingerprint(&client, &other, k).await;
        if f["internetMessageId"] == original["internetMessageId"] {
            found.push(f);
        }
    }
    assert_eq!(found, vec![original]);
}

/// A message forwarded as an attachment: its own multipart MIME with a text body and a CSV.
fn nested_mime(csv: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(csv);
    format!(
        "From: \"Dora Draft\" <dora@fabrikam.com>\r\nTo: \"Ann Archive\" <ann@fabrikam.com>\r\n\
Subject: Budget review\r\nDate: Mon, 02 Mar 2026 09:00:00 +0000\r\n\
Message-ID: <inner-0001@fabrikam.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n--inner\r\n\
Content-Type: text/plain; charset=\"utf-8\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
Numbers attached. Grüße\r\n--inner\r\n\
Content-Type: text/csv; name=\"budget.csv\"\r\nContent-Disposition: attachment; filename=\"budget.csv\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--inner--\r\n"
    )
}

/// Reads the exported `.eml` of the forwarding message with Python's `email` and checks the
/// nested message: its headers, body and attachment bytes.
const CHECK_NESTED: &str = r#"
import sys, zipfile, email, email.policy
path, csv_hex = sys.argv[1:3]
z = zipfile.ZipFile(path)
assert z.testzip() is None
found = 0
for n in z.namelist():
    if not n.endswith('.eml'):
        continue
    m = email.message_from_bytes(z.read(n), policy=email.policy.default)
    if m['message-id'] != '<outer-0001@fabrikam.com>':
        continue
    parts = [p for p in m.walk() if p.get_content_type() == 'message/rfc822']
    assert len(parts) == 1, n
    assert parts[0].get_filename() == 'Budget review.eml', parts[0].get_filename()
    inner = parts[0].get_content()
    assert inner['subject'] == 'Budget review', inner['subject']
    assert inner['message-id'] == '<inner-0001@fabrikam.com>'
    assert inner['from'].addresses[0].addr_spec == 'dora@fabrikam.com'
    assert 'Grüße' in inner.get_body(preferencelist=('plain',)).get_content()
    atts = list(inner.iter_attachments())
    assert [a.get_filename() for a in atts] == ['budget.csv'], atts
    assert atts[0].get_payload(decode=True) == bytes.fromhex(csv_hex)
    # The nested message read again from its own bytes, as a saved .eml would be.
    again = email.message_from_bytes(inner.as_bytes(), policy=email.policy.default)
    assert again['subject'] == 'Budget review'
    found += 1
assert found == 1, found
print(found)
"#;

#[actix_web::test]
async fn a_nested_message_is_restored_and_exported_as_its_eml() {
    let e = env(&[Service::Mail]).await;
    let upn = snapshot(&e).await["mail"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let csv = b"item,amount\r\nrent,1200\r\nfood,430\r\n";
    let inner = nested_mime(csv);
    let outer = format!(
        "From: \"Ann Archive\" <ann@fabrikam.com>\r\nTo: \"Bob Builder\" <bob@fabrikam.com>\r\n\
Subject: Fwd: Budget review\r\nDate: Tue, 03 Mar 2026 11:00:00 +0000\r\n\
Message-ID: <outer-0001@fabrikam.com>\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n--outer\r\n\
Content-Type: text/plain; charset=\"utf-8\"\r\n\r\nSee the attached message.\r\n--outer\r\n\
Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"Budget review.eml\"\r\n\r\n\
{inner}\r\n--outer--\r\n"
    );
    let id = add_to_inbox(&e, &upn, &outer).await;
    let with_it = snapshot(&e).await;
    let client = backhome::connect::client(&e.spec, &e.creds).unwrap();
    let original = fingerprint(&client, &upn, &id).await;
    let nested_hash = blake3::hash(inner.as_bytes()).to_hex().to_string();
    let nested = |f: &Value| -> Vec<Value> {
        f["attachments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["contentType"] == "message/rfc822")
            .cloned()
            .collect()
    };
    // The simulator serves the nested message as an attachment of its own.
    assert_eq!(nested(&original).len(), 1, "{original}");

    let run = RunId(e.backup().await.run_id);
    e.control(
        Method::POST,
        "mutate",
        Some(json!({"op": "delete_message", "user": upn, "id": id})),
    )
    .await;
    let inbox = mail_path(&upn, "Inbox");
    let report = restore(&e, run, std::slice::from_ref(&inbox), Conflict::Skip).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert_eq!(report.restored, 1, "{report:?}");
    let after = snapshot(&e).await;
    let restored: Vec<&String> = after["mail"][&upn]["Inbox"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| {
            !with_it["mail"][&upn]["Inbox"]
                .as_object()
                .unwrap()
                .contains_key(*k)
        })
        .collect();
    assert_eq!(restored.len(), 1);
    let back = fingerprint(&client, &upn, restored[0]).await;
    assert_eq!(back["isDraft"], false);
    assert_eq!(back["subject"], "Fwd: Budget review");
    // The nested message is an attachment of the restored message, its bytes the original .eml.
    let attached = nested(&back);
    assert_eq!(attached.len(), 1, "{back}");
    assert_eq!(attached[0]["name"], "Budget review.eml");
    assert_eq!(attached[0]["size"], inner.len());
    assert_eq!(attached[0]["hash"], nested_hash, "{attached:?}");
    assert_eq!(back["attachments"].as_array().unwrap().len(), 1);

    // Exported, the message's .eml carries the nested message, readable by Python's `email`.
    let zip = e.dir.path().join("nested.zip");
    let export = backhome::export::export_zip(
        &e.repo,
        run,
        std::slice::from_ref(&inbox),
        std::fs::File::create(&zip).unwrap(),
    )
    .unwrap();
    assert!(export.warnings.is_empty(), "{:?}", export.warnings);
    let csv_hex: String = csv.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        python(CHECK_NESTED, &[zip.to_str().unwrap(), &csv_hex]),
        "1"
    );
}
