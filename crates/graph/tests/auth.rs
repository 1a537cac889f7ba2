//! Tokens against an in-test token endpoint: the client assertion, caching, refresh, Entra errors
//! and missing consent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use backhome_graph::{AuthError, Call, Client, Error, ErrorClass, models::User};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use serde_json::{Value, json};

fn users_page() -> Reply {
    Reply::json(
        200,
        &json!({ "value": [{ "id": "u1", "userPrincipalName": "a@contoso.com" }] }),
    )
}

#[tokio::test]
async fn assertion_headers_and_token_request() {
    let server = serve(|req| async move {
        if is_token(&req) {
            token_reply(&["User.Read.All"], 3599)
        } else {
            users_page()
        }
    })
    .await;
    let client = client(&server);
    let info = client.sign_in().await.unwrap();
    assert_eq!(info.roles, Some(vec!["User.Read.All".to_owned()]));
    assert_eq!(info.lifetime, Duration::from_secs(3599));
    let _: Value = client
        .get_json("/users/u1/mailFolders", Some("u1"))
        .await
        .unwrap();
    let _: Value = client.get_json("/users", None).await.unwrap();

    let token_reqs = server.matching("/oauth2/v2.0/token");
    assert_eq!(token_reqs.len(), 1, "the token is cached");
    let t = &token_reqs[0];
    assert_eq!(t.method, "POST");
    assert_eq!(t.path(), format!("/{TENANT}/oauth2/v2.0/token"));
    let form: std::collections::HashMap<_, _> = t.form().into_iter().collect();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], APP);
    assert_eq!(form["scope"], "https://graph.microsoft.com/.default");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );

    // The assertion: RS256, both thumbprints, the right claims, a valid signature.
    let jwt = &form["client_assertion"];
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let cred = credential();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(
        header["x5t#S256"],
        URL_SAFE_NO_PAD.encode(cred.sha256_thumbprint())
    );
    assert_eq!(
        header["x5t"],
        URL_SAFE_NO_PAD.encode(cred.sha1_thumbprint())
    );
    assert_eq!(header["x5t#S256"].as_str().unwrap().len(), 43);
    assert_eq!(
        claims["aud"],
        format!("{}/{TENANT}/oauth2/v2.0/token", server.base)
    );
    assert_eq!(claims["iss"], APP);
    assert_eq!(claims["sub"], APP);
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["nbf"].as_u64().unwrap(),
        600
    );
    assert!(claims["iat"].is_u64());
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    let public = cred.certificate().public_key().unwrap();
    let mut verifier = Verifier::new(MessageDigest::sha256(), &public).unwrap();
    verifier
        .update(format!("{}.{}", parts[0], parts[1]).as_bytes())
        .unwrap();
    assert!(
        verifier
            .verify(&URL_SAFE_NO_PAD.decode(parts[2]).unwrap())
            .unwrap()
    );

    // Graph requests: bearer, immutable ids on Exchange routes only, ISV user agent, request id.
    let mail = &server.matching("/v1.0/users/u1/mailFolders")[0];
    assert!(
        mail.header("authorization")
            .unwrap()
            .starts_with("Bearer ey")
    );
    assert_eq!(mail.header("prefer"), Some("IdType=\"ImmutableId\""));
    assert!(
        mail.header("user-agent")
            .unwrap()
            .starts_with("ISV|Backhome|Backhome/")
    );
    assert!(uuid::Uuid::parse_str(mail.header("client-request-id").unwrap()).is_ok());
    let users = server
        .requests()
        .into_iter()
        .find(|r| r.path() == "/v1.0/users")
        .unwrap();
    assert_eq!(users.header("prefer"), None);
    assert_ne!(
        users.header("client-request-id"),
        mail.header("client-request-id")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_and_refresh_before_expiry() {
    let tokens = Arc::new(AtomicUsize::new(0));
    let t2 = tokens.clone();
    let server = serve(move |req| {
        let tokens = t2.clone();
        async move {
            if is_token(&req) {
                tokens.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(100)).await;
                // A short lifetime: the refresh margin is capped at half of it (2 s).
                token_reply(&["User.Read.All"], 4)
            } else {
                users_page()
            }
        }
    })
    .await;
    let client = client(&server);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            c.get_json::<Value>("/users", None).await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        1,
        "concurrent callers share one token request"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    client.get_json::<Value>("/users", None).await.unwrap();
    assert_eq!(
        tokens.load(Ordering::SeqCst),
        2,
        "refreshed before expires_in ran out"
    );
    assert_eq!(client.stats().token_requests, 2);
}

async fn token_error(status: u16, body: Value) -> Error {
    let server = serve(move |req| {
        let body = body.clone();
        async move {
            if is_token(&req) {
                Reply::json(status, &body)
            } else {
                users_page()
            }
        }
    })
    .await;
    let client = client(&server);
    let err = client.json::<Value>(Call::get("/users")).await.unwrap_err();
    assert_eq!(
        server.matching("/v1.0/users").len(),
        0,
        "no Graph request without a token"
    );
    err
}

fn entra(code: u64, error: &str) -> Value {
    json!({ "error": error, "error_description": format!("AADSTS{code}: something.\r\nTrace ID: x"), "error_codes": [code], "trace_id": "x" })
}

#[tokio::test]
async fn entra_errors_are_explained() {
    let e = token_error(400, entra(700016, "unauthorized_client")).await;
    assert!(
        matches!(e, Error::Auth(AuthError::AppNotFound { .. })),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(APP) && e.to_string().contains(TENANT),
        "{e}"
    );
    let e = token_error(400, entra(90002, "invalid_request")).await;
    assert!(
        matches!(e, Error::Auth(AuthError::TenantNotFound { .. })),
        "{e:?}"
    );
    let e = token_error(401, entra(700027, "invalid_client")).await;
    assert!(
        matches!(e, Error::Auth(AuthError::CertificateRejected { .. })),
        "{e:?}"
    );
    assert!(
        e.to_string().contains(&credential().thumbprint_hex()),
        "{e}"
    );
    let e = token_error(400, entra(7000112, "unauthorized_client")).await;
    assert!(
        matches!(e, Error::Auth(AuthError::AppDisabled { .. })),
        "{e:?}"
    );
    let e = token_error(400, entra(700024, "invalid_client")).await;
    assert!(e.to_string().contains("clock"), "{e}");
    let e = token_error(400, entra(500133, "invalid_grant")).await;
    assert!(
        matches!(e, Error::Auth(AuthError::ClockSkew { code: 500133 })),
        "{e:?}"
    );
    let e = token_error(400, entra(90038, "invalid_request")).await;
    assert!(
        matches!(e, Error::Auth(AuthError::WrongCloud { .. })),
        "{e:?}"
    );
    let example: Value = serde_json::from_str(include_str!("data/token-error.json")).unwrap();
    let e = token_error(400, example).await;
    assert!(
        matches!(e, Error::Auth(AuthError::InvalidScope { code: 70011 })),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Permanent);
    let e = token_error(400, entra(12345, "invalid_request")).await;
    assert!(e.to_string().contains("AADSTS12345"), "{e}");
    assert!(!e.to_string().contains("client_assertion"), "{e}");
}

#[tokio::test]
async fn temporary_token_failures_are_retried() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let server = serve(move |req| {
        let n = n2.clone();
        async move {
            if is_token(&req) {
                if n.fetch_add(1, Ordering::SeqCst) < 2 {
                    Reply::json(503, &json!({"error": "temporarily_unavailable"}))
                } else {
                    token_reply(&["User.Read.All"], 3600)
                }
            } else {
                users_page()
            }
        }
    })
    .await;
    let users: Vec<User> =
        futures_util::TryStreamExt::try_collect(client(&server).items(Call::get("/users")))
            .await
            .unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(n.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn unreachable_login_is_explained() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let base = format!("http://{addr}");
    let mut config = backhome_graph::ClientConfig::new(
        backhome_graph::Cloud::custom(&base, &base).unwrap(),
        TENANT,
        APP,
    );
    config.retry = fast_retry();
    config.retry.max_attempts = 2;
    let client = Client::new(config, credential()).unwrap();
    let e = client.sign_in().await.unwrap_err();
    assert!(
        matches!(e, Error::Auth(AuthError::Unreachable { .. })),
        "{e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Temporary);
}

#[tokio::test]
async fn consent_missing_is_detected_from_roles() {
    for (roles, consent_missing) in [(vec![], true), (vec!["Mail.Read"], false)] {
        let roles2 = roles.clone();
        let server = serve(move |req| {
            let roles = roles2.clone();
            async move {
                if is_token(&req) {
                    token_reply(&roles, 3600)
                } else {
                    Reply::json(403, &json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}}))
                }
            }
        })
        .await;
        let e = client(&server)
            .json::<Value>(Call::get("/users"))
            .await
            .unwrap_err();
        assert_eq!(
            matches!(e, Error::ConsentMissing { .. }),
            consent_missing,
            "{e:?}"
        );
        assert_eq!(e.class(), ErrorClass::AccessDenied);
        if consent_missing {
            assert!(e.to_string().contains("admin consent"), "{e}");
        }
    }
}

#[tokio::test]
async fn opaque_tokens_are_tolerated() {
    let server = serve(|req| async move {
        if is_token(&req) {
            Reply::json(200, &json!({"token_type": "Bearer", "expires_in": "3600", "access_token": "opaque-token"}))
        } else {
            Reply::json(403, &json!({"error": {"code": "ErrorAccessDenied", "message": "Access is denied."}}))
        }
    })
    .await;
    let client = client(&server);
    assert_eq!(client.sign_in().await.unwrap().roles, None);
    let e = client
        .json::<Value>(Call::get("/users/u/messages"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Graph(_)), "{e:?}");
    assert!(!e.to_string().contains("opaque-token"));
}

#[tokio::test]
async fn unauthorized_refreshes_the_token_once() {
    let server = serve(|req| async move {
        if is_token(&req) {
            return token_reply(&["User.Read.All"], 3600);
        }
        Reply::json(401, &json!({"error": {"code": "InvalidAuthenticationToken", "message": "Access token has expired."}}))
    })
    .await;
    let client = client(&server);
    let e = client.json::<Value>(Call::get("/users")).await.unwrap_err();
    assert_eq!(e.graph().unwrap().status, 401);
    assert_eq!(
        server.matching("/v1.0/users").len(),
        2,
        "one retry with a fresh token"
    );
    assert_eq!(server.matching("/token").len(), 2);
    let tokens: std::collections::HashSet<_> = server
        .matching("/v1.0/users")
        .iter()
        .map(|r| r.header("authorization").unwrap().to_owned())
        .collect();
    assert_eq!(tokens.len(), 2, "the retry used the new token");
}

#[tokio::test]
async fn https_endpoint_with_an_extra_trusted_ca() {
    let (server, ca_pem) = serve_tls(|req| async move {
        if is_token(&req) {
            token_reply(&["User.Read.All"], 3600)
        } else {
            users_page()
        }
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    let cloud = backhome_graph::Cloud::custom(&server.base, &server.base).unwrap();
    let mut config = backhome_graph::ClientConfig::new(cloud, TENANT, APP);
    config.retry = fast_retry();
    config.retry.max_attempts = 2;

    let untrusting = Client::new(config.clone(), credential()).unwrap();
    let e = untrusting.sign_in().await.unwrap_err();
    assert!(
        matches!(e, Error::Auth(AuthError::Unreachable { .. })),
        "{e:?}"
    );

    config.extra_ca_pem = Some(ca);
    let client = Client::new(config.clone(), credential()).unwrap();
    let users: Vec<User> =
        futures_util::TryStreamExt::try_collect(client.items(Call::get("/users")))
            .await
            .unwrap();
    assert_eq!(users[0].id, "u1");

    config.extra_ca_pem = Some(dir.path().join("missing.pem"));
    let e = Client::new(config.clone(), credential()).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
    std::fs::write(dir.path().join("junk.pem"), "no certificate here").unwrap();
    config.extra_ca_pem = Some(dir.path().join("junk.pem"));
    assert!(Client::new(config, credential()).is_err());
}
