//! Token endpoint validation failures and bearer checks on Graph routes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{load_pfx, token_request, token_url};
use graph_sim::{Profile, client_assertion};

#[tokio::test]
async fn token_validation_failures_get_entra_errors() {
    let h = common::start(Profile::Tiny).await;
    let ready = h.sim.ready().clone();
    let url = token_url(&ready);
    let (key, cert) = load_pfx(&ready.cert_pfx, &ready.cert_password);

    // Both assertion formats are accepted.
    for sha256 in [false, true] {
        let a = client_assertion(&key, &cert, &ready.app_id, &url, sha256, 300).unwrap();
        let (s, v) = token_request(&h.http, &url, &ready.app_id, &a).await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["token_type"], "Bearer");
        let mut mismatches = Vec::new();
        common::shape_mismatches(&common::example("token-response"), &v, "", &mut mismatches);
        assert!(mismatches.is_empty(), "{mismatches:?}");
    }

    // Replayed assertion (same jti).
    let a = client_assertion(&key, &cert, &ready.app_id, &url, false, 300).unwrap();
    assert_eq!(token_request(&h.http, &url, &ready.app_id, &a).await.0, 200);
    let (s, v) = token_request(&h.http, &url, &ready.app_id, &a).await;
    assert_eq!(s, 400, "{v}");

    // Wrong audience.
    let a = client_assertion(
        &key,
        &cert,
        &ready.app_id,
        "https://login.microsoftonline.com/other/oauth2/v2.0/token",
        false,
        300,
    )
    .unwrap();
    let (s, v) = token_request(&h.http, &url, &ready.app_id, &a).await;
    assert_eq!(s, 401);
    assert_eq!(v["error_codes"][0], 50012, "{v}");
    let mut mismatches = Vec::new();
    common::shape_mismatches(&common::example("token-error"), &v, "", &mut mismatches);
    assert!(mismatches.is_empty(), "{mismatches:?}");

    // Expired assertion.
    let a = client_assertion(&key, &cert, &ready.app_id, &url, false, -3600).unwrap();
    let (s, v) = token_request(&h.http, &url, &ready.app_id, &a).await;
    assert_eq!(
        (s, v["error_codes"][0].as_u64()),
        (400, Some(700_024)),
        "{v}"
    );

    // Unknown thumbprint: a certificate that is not registered.
    let other = graph_sim_test_cert();
    let a = client_assertion(&other.0, &other.1, &ready.app_id, &url, true, 300).unwrap();
    let (s, v) = token_request(&h.http, &url, &ready.app_id, &a).await;
    assert_eq!(
        (s, v["error_codes"][0].as_u64()),
        (401, Some(700_027)),
        "{v}"
    );

    // Wrong signature: registered thumbprint, signed by another key.
    let forged = client_assertion(&other.0, &cert, &ready.app_id, &url, false, 300).unwrap();
    let (s, v) = token_request(&h.http, &url, &ready.app_id, &forged).await;
    assert_eq!(
        (s, v["error_codes"][0].as_u64()),
        (401, Some(700_027)),
        "{v}"
    );

    // Unknown app.
    let stranger = uuid::Uuid::new_v4().to_string();
    let a = client_assertion(&key, &cert, &stranger, &url, false, 300).unwrap();
    let (s, v) = token_request(&h.http, &url, &stranger, &a).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{v}"
    );
    assert_eq!(v["error_codes"][0], 700_016);

    // Unknown tenant.
    let bad_url = format!(
        "{}/{}/oauth2/v2.0/token",
        ready.login_endpoint,
        uuid::Uuid::new_v4()
    );
    let a = client_assertion(&key, &cert, &ready.app_id, &bad_url, false, 300).unwrap();
    let (s, v) = token_request(&h.http, &bad_url, &ready.app_id, &a).await;
    assert_eq!(
        (s, v["error_codes"][0].as_u64()),
        (400, Some(90_002)),
        "{v}"
    );
    h.sim.stop().await;
}

fn graph_sim_test_cert() -> (
    openssl::pkey::PKey<openssl::pkey::Private>,
    openssl::x509::X509,
) {
    let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
    let key = openssl::pkey::PKey::from_rsa(rsa).unwrap();
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "stranger").unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509::builder().unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    let nb = openssl::asn1::Asn1Time::days_from_now(0).unwrap();
    let na = openssl::asn1::Asn1Time::days_from_now(1).unwrap();
    b.set_not_before(&nb).unwrap();
    b.set_not_after(&na).unwrap();
    b.sign(&key, openssl::hash::MessageDigest::sha256())
        .unwrap();
    (key, b.build())
}

#[tokio::test]
async fn bearer_checks_and_consent() {
    let h = common::start(Profile::Tiny).await;
    // Missing and garbage tokens.
    let r = h.http.get(h.url("/users")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
    let r = h
        .http
        .get(h.url("/users"))
        .bearer_auth("a.b.c")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // Expired token: lifetime of one second.
    let (s, _) = h
        .control(
            reqwest::Method::POST,
            "token-lifetime",
            Some(serde_json::json!({"seconds": 1})),
        )
        .await;
    assert_eq!(s, 204);
    let short = common::fetch_token(&h.http, h.sim.ready(), false).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = h
        .http
        .get(h.url("/users"))
        .bearer_auth(&short)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // An app without consent gets a token without roles; Graph answers 403.
    let (s, app) = h
        .control(
            reqwest::Method::POST,
            "apps",
            Some(serde_json::json!({"roles": []})),
        )
        .await;
    assert_eq!(s, 200, "{app}");
    let (key, cert) = load_pfx(
        app["cert_pfx"].as_str().unwrap(),
        app["cert_password"].as_str().unwrap(),
    );
    let url = token_url(h.sim.ready());
    let id = app["app_id"].as_str().unwrap();
    let a = client_assertion(&key, &cert, id, &url, true, 300).unwrap();
    let (s, tok) = token_request(&h.http, &url, id, &a).await;
    assert_eq!(s, 200, "{tok}");
    let t = tok["access_token"].as_str().unwrap();
    let upn = h.first_user().await;
    for (path, code) in [
        ("/users".to_string(), "Authorization_RequestDenied"),
        (format!("/users/{upn}/mailFolders"), "ErrorAccessDenied"),
        (format!("/users/{upn}/drive/root/children"), "accessDenied"),
    ] {
        let r = h
            .http
            .get(h.url(&path))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{path}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code);
    }
    h.sim.stop().await;
}
