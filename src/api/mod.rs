//! The HTTP service: JSON under `/api/v1`, served on loopback behind DSM's reverse proxy.

use std::net::SocketAddr;

use actix_web::{App, HttpResponse, HttpServer, dev::Server, web};

/// A built, bound service that has not started yet.
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds the service to `listen` (port 0 picks a free port).
    ///
    /// # Errors
    /// Fails when the address cannot be bound.
    pub fn build(listen: SocketAddr) -> std::io::Result<Self> {
        let server = HttpServer::new(|| {
            App::new().service(web::scope("/api/v1").route("/health", web::get().to(health)))
        })
        .bind(listen)?;
        let port = server
            .addrs()
            .first()
            .map_or(listen.port(), SocketAddr::port);
        Ok(Self {
            port,
            server: server.disable_signals().run(),
        })
    }

    /// The port the service is bound to.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs the service until it is stopped.
    ///
    /// # Errors
    /// Fails when the server fails.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}

async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}
