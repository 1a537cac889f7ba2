//! The HTTP service: JSON under `/api/v1`, the built UI at `/`, served on loopback behind DSM's
//! reverse proxy. `docs/api.md` describes the API; `/api/v1/openapi.json` is generated from the
//! handlers' annotations.
//!
//! Every protected handler takes a [`Caller`] or an [`Admin`] (authentication and CSRF), and
//! every handler that touches backed-up data goes through [`access`] (portal permissions).

pub mod access;
pub mod auth;
mod browse;
mod caller;
mod error;
mod jobs;
mod logs;
mod mapping;
pub mod register;
mod runs;
mod search;
mod session;
mod settings;
mod state;
mod storage;
mod tasks;
mod ui;

use std::net::SocketAddr;

use actix_web::middleware::DefaultHeaders;
use actix_web::{App, HttpResponse, HttpServer, dev::Server, dev::ServerHandle, web};
use utoipa::OpenApi;

pub use caller::{Admin, Caller, authenticate, request_info};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use state::AppState;

/// Request bodies larger than this are refused (a certificate upload is the largest).
const MAX_JSON: usize = 4 << 20;

/// Registers every route under `/api/v1`.
fn api_routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/health", web::get().to(health))
        .route("/openapi.json", web::get().to(openapi_json));
    session::configure(cfg);
    tasks::configure(cfg);
    runs::configure(cfg);
    logs::configure(cfg);
    browse::configure(cfg);
    search::configure(cfg);
    jobs::configure(cfg);
    storage::configure(cfg);
    mapping::configure(cfg);
    register::configure(cfg);
    settings::configure(cfg);
}

/// The OpenAPI document of every route.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = Doc::openapi();
    doc.merge(session::Doc::openapi());
    doc.merge(tasks::Doc::openapi());
    doc.merge(runs::Doc::openapi());
    doc.merge(logs::Doc::openapi());
    doc.merge(browse::Doc::openapi());
    doc.merge(search::Doc::openapi());
    doc.merge(jobs::Doc::openapi());
    doc.merge(storage::Doc::openapi());
    doc.merge(mapping::Doc::openapi());
    doc.merge(register::Doc::openapi());
    doc.merge(settings::Doc::openapi());
    doc
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Backhome for Microsoft 365",
        description = "The service behind the DSM app and the portal."
    ),
    paths(health),
    components(schemas(ErrorBody, ErrorDetail))
)]
struct Doc;

/// A built, bound service that has not started yet.
pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    /// Binds the service to the configuration's `listen` address (port 0 picks a free port).
    ///
    /// # Errors
    /// Fails when the address cannot be bound.
    pub fn build(state: AppState) -> std::io::Result<Self> {
        let listen = state.config.listen;
        let state = web::Data::new(state);
        let shared = state.clone();
        let server =
            HttpServer::new(move || {
                App::new()
                    .app_data(shared.clone())
                    .app_data(
                        web::JsonConfig::default()
                            .limit(MAX_JSON)
                            .error_handler(|e, _| {
                                ApiError::BadRequest(format!("bad request body: {e}")).into()
                            }),
                    )
                    .app_data(web::QueryConfig::default().error_handler(|e, _| {
                        ApiError::BadRequest(format!("bad query: {e}")).into()
                    }))
                    .app_data(web::PathConfig::default().error_handler(|e, _| {
                        ApiError::BadRequest(format!("bad path: {e}")).into()
                    }))
                    .wrap(
                        DefaultHeaders::new()
                            .add(("X-Content-Type-Options", "nosniff"))
                            .add(("Referrer-Policy", "no-referrer"))
                            .add(("X-Frame-Options", "SAMEORIGIN")),
                    )
                    .service(
                        web::scope("/api/v1")
                            .wrap(DefaultHeaders::new().add(("Cache-Control", "no-store")))
                            .configure(api_routes)
                            .default_service(web::to(|| async {
                                Err::<HttpResponse, _>(ApiError::NotFound(
                                    "no such API route".into(),
                                ))
                            })),
                    )
                    .route("/{path:.*}", web::get().to(ui::serve))
            })
            .bind(listen)?;
        let port = server
            .addrs()
            .first()
            .map_or(listen.port(), SocketAddr::port);
        Ok(Self {
            port,
            server: server.disable_signals().shutdown_timeout(5).run(),
            state,
        })
    }

    /// The port the service is bound to.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The shared state.
    #[must_use]
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// A handle that stops the server.
    #[must_use]
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Runs the service until it is stopped.
    ///
    /// # Errors
    /// Fails when the server fails.
    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The service is up.
#[utoipa::path(get, path = "/api/v1/health", tag = "service",
    responses((status = 200, description = "`{\"status\":\"ok\",\"version\":…}`")))]
async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(openapi())
}
