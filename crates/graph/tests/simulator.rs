//! The client against the Graph simulator (`crates/graph-sim`): real certificate sign-in, paging,
//! delta rounds, MIME and file downloads, and throttling with injected faults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use backhome_graph::models::{DriveItem, MailFolder, Message, User};
use backhome_graph::{BatchRequest, BatchResponse};
use backhome_graph::{
    Call, Client, ClientConfig, Cloud, Credential, CredentialError, Limits, RetryPolicy,
};
use futures_util::TryStreamExt;
use graph_sim::{FaultKind, FaultRule, Profile, RunningSim, SimOptions, Simulator};
use serde_json::Value;

async fn start(options: SimOptions) -> (RunningSim, Client) {
    let sim = Simulator::start(options).await.unwrap();
    let r = sim.ready().clone();
    let credential = Credential::from_pkcs12_file(&r.cert_pfx, &r.cert_password).unwrap();
    let cloud = Cloud::custom(&r.login_endpoint, &r.graph_endpoint).unwrap();
    let mut config = ClientConfig::new(cloud, r.tenant_id.clone(), r.app_id.clone());
    config.extra_ca_pem = r.ca_cert.clone().map(Into::into);
    config.retry = RetryPolicy {
        max_attempts: 10,
        base_delay: std::time::Duration::from_millis(20),
        max_delay: std::time::Duration::from_millis(500),
        max_total_wait: std::time::Duration::from_secs(60),
    };
    (sim, Client::new(config, credential).unwrap())
}

/// Runs a delta round to its end; returns items, removed ids and the delta link.
async fn delta_round<T: serde::de::DeserializeOwned>(
    client: &Client,
    first: Call,
) -> (Vec<T>, Vec<String>, String) {
    let mut call = first.clone();
    let mut items = Vec::new();
    let mut removed = Vec::new();
    loop {
        let page = client.delta_page::<T>(call.clone()).await.unwrap();
        items.extend(page.items);
        removed.extend(page.removed.into_iter().map(|r| r.id));
        match (page.next_link, page.delta_link) {
            (Some(next), _) => call = first.follow(next),
            (None, Some(delta)) => return (items, removed, delta),
            (None, None) => panic!("a delta round ended without a delta link"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_list_delta_and_download() {
    let (sim, client) = start(SimOptions::new(Profile::Tiny)).await;
    let info = client.sign_in().await.unwrap();
    assert!(
        !info.roles.unwrap_or_default().is_empty(),
        "the simulator's app is consented"
    );

    let users: Vec<User> = client
        .items(Call::get("/users").max_page_size(2))
        .try_collect()
        .await
        .unwrap();
    assert!(users.len() >= 5, "{} users", users.len());
    let ids: HashSet<_> = users.iter().map(|u| u.id.clone()).collect();
    assert_eq!(ids.len(), users.len(), "paging returned no duplicates");

    let mut messages_seen = 0;
    let mut files_seen = 0;
    for user in users.iter().filter(|u| u.mail.is_some()).take(2) {
        let folders: Vec<MailFolder> = client
            .items(
                Call::get(format!(
                    "/users/{}/mailFolders?includeHiddenFolders=true",
                    user.id
                ))
                .resource(&user.id),
            )
            .try_collect()
            .await
            .unwrap();
        assert!(!folders.is_empty());
        for folder in &folders {
            let first = Call::get(format!(
                "/users/{}/mailFolders/{}/messages/delta",
                user.id, folder.id
            ))
            .resource(&user.id)
            .max_page_size(5);
            let (messages, _, delta) = delta_round::<Message>(&client, first.clone()).await;
            for m in messages.iter().take(2) {
                let mime = client
                    .download(
                        Call::get(format!("/users/{}/messages/{}/$value", user.id, m.meta.id))
                            .resource(&user.id),
                    )
                    .await
                    .unwrap()
                    .into_bytes()
                    .await
                    .unwrap();
                assert!(!mime.is_empty());
                assert!(
                    String::from_utf8_lossy(&mime)
                        .to_ascii_lowercase()
                        .contains("subject:")
                );
            }
            messages_seen += messages.len();
            // No change since: the next round is empty.
            let (again, removed, _) = delta_round::<Message>(&client, first.follow(delta)).await;
            assert!(
                again.is_empty() && removed.is_empty(),
                "{} changes without a change",
                again.len()
            );
        }

        let drive: Value = client
            .get_json(&format!("/users/{}/drive", user.id), None)
            .await
            .unwrap();
        let drive_id = drive["id"].as_str().unwrap().to_owned();
        let first = Call::get(format!("/drives/{drive_id}/root/delta")).resource(&drive_id);
        let (items, _, _) = delta_round::<DriveItem>(&client, first).await;
        for item in items
            .iter()
            .filter(|i| i.file.is_some() && !i.is_deleted())
            .take(3)
        {
            let d = client
                .download(
                    Call::get(format!("/drives/{drive_id}/items/{}/content", item.id))
                        .resource(&drive_id),
                )
                .await
                .unwrap();
            let bytes = d.into_bytes().await.unwrap();
            assert_eq!(Some(bytes.len() as u64), item.size, "{:?}", item.name);
            files_seen += 1;
        }
    }
    assert!(
        messages_seen > 0 && files_seen > 0,
        "messages {messages_seen}, files {files_seen}"
    );
    let stats = client.stats();
    assert_eq!(stats.token_requests, 1);
    assert_eq!(stats.in_flight, 0);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_faults_never_exceed_four_per_mailbox() {
    let mut options = SimOptions::new(Profile::Tiny);
    options.throttle.enabled = true;
    options.throttle.retry_after = 0.2;
    options.latency_ms = 5;
    let (sim, client) = start(options).await;
    for kind in [
        FaultKind::ConnectionReset,
        FaultKind::TruncatedBody,
        FaultKind::MalformedJson,
        FaultKind::ServiceUnavailable,
    ] {
        sim.state().faults.add(FaultRule {
            pattern: "/mailFolders".into(),
            method: None,
            kind,
            probability: 0.05,
            retry_after: None,
            stall_ms: None,
            remaining: None,
        });
    }
    let users: Vec<User> = client
        .items(Call::get("/users"))
        .try_collect()
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for user in users.iter().filter(|u| u.mail.is_some()).take(2) {
        for _ in 0..20 {
            let (c, id) = (client.clone(), user.id.clone());
            tasks.push(tokio::spawn(async move {
                let v: Value = c
                    .json(Call::get(format!("/users/{id}/mailFolders")).resource(id.as_str()))
                    .await
                    .unwrap();
                assert!(v["value"].is_array());
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let counters = sim.state().counters.snapshot();
    for (mailbox, peak) in counters["max_concurrency_by_mailbox"].as_object().unwrap() {
        assert!(
            peak.as_u64().unwrap() <= 4,
            "mailbox {mailbox} saw {peak} concurrent requests"
        );
    }
    let faults = counters["faults"].as_u64().unwrap();
    assert!(faults > 0, "faults were injected");
    assert!(
        client.stats().retries >= faults,
        "every fault was retried: {:?} vs {faults}",
        client.stats()
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_limited_to_two_per_mailbox_stays_there() {
    let (sim, client) = start(SimOptions::new(Profile::Tiny)).await;
    let r = sim.ready().clone();
    let mut config = ClientConfig::new(
        Cloud::custom(&r.login_endpoint, &r.graph_endpoint).unwrap(),
        r.tenant_id.clone(),
        r.app_id.clone(),
    );
    config.limits = Limits {
        global: 8,
        per_resource: 2,
    };
    let limited = Client::new(
        config,
        Credential::from_pkcs12_file(&r.cert_pfx, &r.cert_password).unwrap(),
    )
    .unwrap();
    let users: Vec<User> = client
        .items(Call::get("/users"))
        .try_collect()
        .await
        .unwrap();
    let user = users.iter().find(|u| u.mail.is_some()).unwrap().id.clone();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (c, id) = (limited.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            c.json::<Value>(Call::get(format!("/users/{id}/mailFolders")).resource(id.as_str()))
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let counters = sim.state().counters.snapshot();
    for (_, peak) in counters["max_concurrency_by_mailbox"].as_object().unwrap() {
        assert!(peak.as_u64().unwrap() <= 2);
    }
    sim.stop().await;
}

#[tokio::test]
async fn wrong_password_for_the_simulator_certificate() {
    let sim = Simulator::start(SimOptions::new(Profile::Tiny))
        .await
        .unwrap();
    let e = Credential::from_pkcs12_file(&sim.ready().cert_pfx, "not the password").unwrap_err();
    assert!(matches!(e, CredentialError::WrongPassword), "{e:?}");
    sim.stop().await;
}

async fn first_mail_user(client: &Client) -> String {
    let users: Vec<User> = client
        .items(Call::get("/users"))
        .try_collect()
        .await
        .unwrap();
    users.into_iter().find(|u| u.mail.is_some()).unwrap().id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_round_trip_through_the_simulator() {
    use backhome_graph::{ConflictBehavior, UploadOptions};
    let (sim, client) = start(SimOptions::new(Profile::Tiny)).await;
    let user = first_mail_user(&client).await;
    let drive: Value = client
        .get_json(&format!("/users/{user}/drive"), None)
        .await
        .unwrap();
    let drive_id = drive["id"].as_str().unwrap().to_owned();
    let modified = time::macros::datetime!(2019-03-04 05:06:07 UTC);
    let options = UploadOptions {
        conflict: ConflictBehavior::Replace,
        modified: Some(modified),
        ..UploadOptions::default()
    };
    for (name, len) in [
        ("small file.txt", 1000usize),
        ("big #1.bin", 5 * 1024 * 1024 + 333),
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
        let item = client
            .upload(
                &drive_id,
                "root",
                name,
                &bytes::Bytes::from(data.clone()),
                &options,
            )
            .await
            .unwrap();
        assert_eq!(item.name.as_deref(), Some(name));
        assert_eq!(item.size, Some(len as u64));
        let back = client
            .download(Call::get(format!(
                "/drives/{drive_id}/items/{}/content",
                item.id
            )))
            .await
            .unwrap()
            .into_bytes()
            .await
            .unwrap();
        assert!(back == data, "{name} round-trips byte for byte");
        let meta: DriveItem = client
            .get_json(&format!("/drives/{drive_id}/items/{}", item.id), None)
            .await
            .unwrap();
        assert_eq!(
            meta.file_system_info.unwrap().last_modified_date_time,
            Some(modified),
            "{name}"
        );
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_resync_and_throttling_against_the_simulator() {
    let mut options = SimOptions::new(Profile::Tiny);
    options.throttle.enabled = true;
    options.throttle.retry_after = 0.25;
    options.latency_ms = 20;
    let (sim, client) = start(options).await;
    let r = sim.ready().clone();
    let user = first_mail_user(&client).await;

    let requests: Vec<BatchRequest> = ["inbox", "sentitems", "drafts", "deleteditems"]
        .iter()
        .enumerate()
        .map(|(i, f)| {
            BatchRequest::get(
                (i + 1).to_string(),
                format!("/users/{user}/mailFolders/{f}"),
            )
        })
        .collect();
    let answers = client.batch(requests, Some(&user)).await.unwrap();
    assert_eq!(answers.len(), 4);
    for a in &answers {
        assert!(a.is_success() || a.status == 404, "{a:?}");
    }
    assert!(answers.iter().any(BatchResponse::is_success));

    // A client that allows more than Exchange does gets 429s, waits them out and succeeds.
    let mut config = ClientConfig::new(
        Cloud::custom(&r.login_endpoint, &r.graph_endpoint).unwrap(),
        r.tenant_id.clone(),
        r.app_id.clone(),
    );
    config.limits = Limits {
        global: 16,
        per_resource: 12,
    };
    let greedy = Client::new(
        config,
        Credential::from_pkcs12_file(&r.cert_pfx, &r.cert_password).unwrap(),
    )
    .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (c, id) = (greedy.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            c.json::<Value>(Call::get(format!("/users/{id}/mailFolders")).resource(id.as_str()))
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert!(
        greedy.stats().throttled > 0,
        "the simulator throttled: {:?}",
        greedy.stats()
    );

    sim.state().faults.add(FaultRule {
        pattern: "/delta".into(),
        method: None,
        kind: FaultKind::ResyncRequired,
        probability: 1.0,
        retry_after: None,
        stall_ms: None,
        remaining: Some(1),
    });
    let drive: Value = client
        .get_json(&format!("/users/{user}/drive"), None)
        .await
        .unwrap();
    let e = client
        .delta_page::<DriveItem>(Call::get(format!(
            "/drives/{}/root/delta",
            drive["id"].as_str().unwrap()
        )))
        .await
        .unwrap_err();
    assert!(matches!(e, backhome_graph::Error::Resync { .. }), "{e:?}");
    assert_eq!(e.class(), backhome_graph::ErrorClass::Resync);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_simulator_with_its_ca_certificate() {
    let mut options = SimOptions::new(Profile::Tiny);
    options.tls = true;
    let (sim, client) = start(options).await;
    let r = sim.ready().clone();
    assert!(
        r.graph_endpoint.starts_with("https://"),
        "{}",
        r.graph_endpoint
    );
    assert!(r.ca_cert.is_some());
    let users: Vec<User> = client
        .items(Call::get("/users"))
        .try_collect()
        .await
        .unwrap();
    assert!(!users.is_empty());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailbox_probe_for_every_user() {
    let (sim, client) = start(SimOptions::new(Profile::Demo)).await;
    let users: Vec<User> = client
        .items(Call::get("/users"))
        .try_collect()
        .await
        .unwrap();
    let mut with = 0;
    let mut without = 0;
    for u in &users {
        if client.has_mailbox(&u.id).await.unwrap() {
            with += 1;
        } else {
            without += 1;
        }
    }
    assert!(
        with > 0 && without > 0,
        "{with} with, {without} without a mailbox"
    );
    println!("{with} users with a mailbox, {without} without");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_failures_against_the_simulator() {
    use backhome_graph::{AuthError, Error};
    let (sim, _) = start(SimOptions::new(Profile::Tiny)).await;
    let r = sim.ready().clone();
    let cloud = Cloud::custom(&r.login_endpoint, &r.graph_endpoint).unwrap();
    let sim_credential = Credential::from_pkcs12_file(&r.cert_pfx, &r.cert_password).unwrap();
    let client_with = |tenant: &str, app: &str, credential: Credential| {
        let mut config = ClientConfig::new(cloud.clone(), tenant, app);
        config.retry.max_attempts = 2;
        Client::new(config, credential).unwrap()
    };

    // An app without admin consent: a token without roles, then 403 at Graph.
    let (app, ck) = sim.state().register_app(Vec::new()).unwrap();
    let unconsented = client_with(
        &r.tenant_id,
        &app.to_string(),
        Credential::from_parts(ck.key.clone(), ck.cert.clone()).unwrap(),
    );
    let e = unconsented
        .json::<Value>(Call::get("/users"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::ConsentMissing { .. }), "{e:?}");

    // Unknown application.
    let e = client_with(
        &r.tenant_id,
        "00000000-0000-0000-0000-00000000dead",
        sim_credential.clone(),
    )
    .sign_in()
    .await
    .unwrap_err();
    assert!(
        matches!(e, Error::Auth(AuthError::AppNotFound { .. })),
        "{e:?}"
    );

    // A certificate the app does not know.
    let (other_key, other_cert) = {
        let (_, ck2) = sim
            .state()
            .register_app(vec!["User.Read.All".into()])
            .unwrap();
        (ck2.key.clone(), ck2.cert.clone())
    };
    let e = client_with(
        &r.tenant_id,
        &r.app_id,
        Credential::from_parts(other_key, other_cert).unwrap(),
    )
    .sign_in()
    .await
    .unwrap_err();
    assert!(
        matches!(e, Error::Auth(AuthError::CertificateRejected { .. })),
        "{e:?}"
    );

    // Unknown tenant.
    let e = client_with("nosuchtenant.onmicrosoft.com", &r.app_id, sim_credential)
        .sign_in()
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Auth(AuthError::TenantNotFound { .. })),
        "{e:?}"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendars_contacts_groups_sites_and_channels_parse() {
    use backhome_graph::models::{
        Calendar, Channel, ChatMessage, Contact, ContactFolder, Event, Group, Site,
    };
    let (sim, client) = start(SimOptions::new(Profile::Tiny)).await;
    let user = first_mail_user(&client).await;
    let calendars: Vec<Calendar> = client
        .items(Call::get(format!("/users/{user}/calendars")).resource(&user))
        .try_collect()
        .await
        .unwrap();
    assert!(!calendars.is_empty());
    let mut events = 0;
    for c in &calendars {
        let list: Vec<Event> = client
            .items(Call::get(format!("/users/{user}/calendars/{}/events", c.id)).resource(&user))
            .try_collect()
            .await
            .unwrap();
        assert!(
            list.iter()
                .all(|e| !e.meta.id.is_empty() && e.raw.is_object())
        );
        events += list.len();
    }
    assert!(events > 0);
    let folders: Vec<ContactFolder> = client
        .items(Call::get(format!("/users/{user}/contactFolders")).resource(&user))
        .try_collect()
        .await
        .unwrap();
    let mut contacts: Vec<Contact> = client
        .items(Call::get(format!("/users/{user}/contacts")).resource(&user))
        .try_collect()
        .await
        .unwrap();
    for f in &folders {
        let more: Vec<Contact> = client
            .items(
                Call::get(format!("/users/{user}/contactFolders/{}/contacts", f.id))
                    .resource(&user),
            )
            .try_collect()
            .await
            .unwrap();
        contacts.extend(more);
    }
    assert!(!contacts.is_empty());

    let groups: Vec<Group> = client
        .items(Call::get("/groups"))
        .try_collect()
        .await
        .unwrap();
    assert!(groups.iter().any(Group::is_unified));
    let sites: Vec<Site> = client
        .items(Call::get("/sites/getAllSites"))
        .try_collect()
        .await
        .unwrap();
    assert!(!sites.is_empty());
    let mut posts = 0;
    for team in groups.iter().filter(|g| g.has_team()) {
        let channels: Vec<Channel> = client
            .items(Call::get(format!("/teams/{}/channels", team.id)))
            .try_collect()
            .await
            .unwrap();
        for ch in &channels {
            let messages: Vec<ChatMessage> = client
                .items(Call::get(format!(
                    "/teams/{}/channels/{}/messages?$expand=replies",
                    team.id, ch.id
                )))
                .try_collect()
                .await
                .unwrap();
            posts += messages.len();
        }
    }
    assert!(posts > 0, "no channel messages found");
    sim.stop().await;
}
