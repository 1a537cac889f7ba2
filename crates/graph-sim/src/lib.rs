//! A simulator of Entra ID and Microsoft Graph v1.0 that serves a seeded, deterministic tenant.

use std::net::SocketAddr;

/// Where a started simulator can be reached.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Ready {
    /// Base URL of the Graph endpoint (without `/v1.0`).
    pub graph_endpoint: String,
    /// Base URL of the login endpoint.
    pub login_endpoint: String,
}

/// Builds the simulator's HTTP server bound to `listen` and returns where it answers.
///
/// # Errors
/// Fails when the address cannot be bound.
pub fn start(listen: SocketAddr) -> std::io::Result<(Ready, actix_web::dev::Server)> {
    let server = actix_web::HttpServer::new(|| {
        actix_web::App::new().route("/_sim/health", actix_web::web::get().to(|| async { "ok" }))
    })
    .bind(listen)?;
    let addr = server.addrs()[0];
    let base = format!("http://{addr}");
    let ready = Ready {
        graph_endpoint: base.clone(),
        login_endpoint: base,
    };
    Ok((ready, server.disable_signals().run()))
}
