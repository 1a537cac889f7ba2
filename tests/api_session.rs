//! The service's front door: health, the OpenAPI document, sign-in, sessions, CSRF protection,
//! cross-origin writes, the UI's static files and unknown routes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::service::{self, PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_csrf_and_front_door() {
    let ui = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(ui.path().join("assets")).unwrap();
    std::fs::write(
        ui.path().join("index.html"),
        "<!doctype html><title>Backhome</title>",
    )
    .unwrap();
    std::fs::write(ui.path().join("assets/app.js"), "console.log(1)").unwrap();
    let ui_dir = ui.path().to_owned();
    let s = service::start_with(common::env(&[]).await, move |c| c.ui_dir = Some(ui_dir)).await;
    let anon = s.anonymous();

    // Public: health and the OpenAPI document, which lists the routes.
    let (st, body) = anon.get("/api/v1/health").await;
    assert_eq!((st, body["status"].as_str()), (StatusCode::OK, Some("ok")));
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    let (st, doc) = anon.get("/api/v1/openapi.json").await;
    assert_eq!(st, StatusCode::OK);
    assert!(doc["paths"]["/api/v1/session"]["get"].is_object(), "{doc}");

    // Not signed in.
    let (st, body) = anon.get("/api/v1/session").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "not_signed_in");
    let (st, body) = anon
        .post(
            "/api/v1/session",
            json!({"user": "admin", "password": "wrong-password"}),
        )
        .await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("bad_credentials"))
    );
    let (st, _) = anon.post("/api/v1/session", json!({"user": "admin"})).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Signed in: who am I.
    let admin = s.sign_in("admin").await;
    let (st, me) = admin.get("/api/v1/session").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        (me["user"].as_str(), me["admin"].as_bool()),
        (Some("admin"), Some(true))
    );
    let alice = s.sign_in("alice").await;
    let (_, me) = alice.get("/api/v1/session").await;
    assert_eq!(me["admin"], false);
    assert_eq!(
        me["email"].as_str(),
        service::upns(&s.env).first().map(String::as_str)
    );

    // Writes need the session's CSRF token, and the same origin.
    let no_token = alice
        .http
        .delete(format!("{}/api/v1/session", s.base))
        .header("cookie", &alice.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let wrong_token = alice
        .http
        .delete(format!("{}/api/v1/session", s.base))
        .header("cookie", &alice.cookie)
        .header("x-syno-token", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status(), StatusCode::FORBIDDEN);
    let cross = alice
        .request(Method::DELETE, "/api/v1/session")
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), StatusCode::FORBIDDEN);
    let (st, _) = alice.get("/api/v1/session").await;
    assert_eq!(st, StatusCode::OK, "refused writes leave the session alone");
    let (st, _) = alice.delete("/api/v1/session").await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = alice.get("/api/v1/session").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Unknown API routes are JSON 404s; the UI is served with a strict CSP; no escaping it.
    let (st, body) = admin.get("/api/v1/nope").await;
    assert_eq!(
        (st, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let page = reqwest::get(format!("{}/", s.base)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("object-src 'none'"),
        "{csp}"
    );
    assert!(page.text().await.unwrap().contains("Backhome"));
    let js = reqwest::get(format!("{}/assets/app.js", s.base))
        .await
        .unwrap();
    assert!(
        js.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let escape = reqwest::get(format!("{}/assets/%2E%2E/%2E%2E/etc/passwd", s.base))
        .await
        .unwrap();
    assert_eq!(escape.status(), StatusCode::NOT_FOUND);
    let _ = PASSWORD;
    s.handle.stop(false).await;
}
