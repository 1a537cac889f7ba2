//! The service binds a free port on loopback and answers its health check.

#[actix_web::test]
async fn health_answers_with_version() {
    let app = backhome::api::Application::build("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = app.port();
    assert_ne!(port, 0);
    let server = tokio::spawn(app.run());
    let body: serde_json::Value = reqwest::get(format!("http://127.0.0.1:{port}/api/v1/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    server.abort();
}
