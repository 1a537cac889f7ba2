//! Start-up, authentication and basic reads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use graph_sim::Profile;

#[tokio::test]
async fn starts_authenticates_and_lists_users() {
    let h = common::start(Profile::Tiny).await;
    let (s, v) = h.get("/users").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["value"].as_array().unwrap().len(), 5);
    let upn = h.first_user().await;
    let (s, v) = h.get(&format!("/users/{upn}/mailFolders")).await;
    assert_eq!(s, 200, "{v}");
    println!("{v:#}");
    let (s, v) = h
        .get(&format!("/users/{upn}/mailFolders/inbox/messages/delta"))
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = h.get(&format!("/users/{upn}/drive/root/children")).await;
    assert_eq!(s, 200, "{v}");
    h.sim.stop().await;
}
