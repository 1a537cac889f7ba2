//! The actix server: binding, TLS, the token endpoint, Graph, downloads, uploads and `/_sim/`.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use actix_web::body::{BoxBody, SizedStream};
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use futures_util::stream;
use openssl::ssl::{SslAcceptor, SslMethod};

use crate::auth::{App as EntraApp, Entra, FULL_ROLES, RegisteredCert};
use crate::error::SimError;
use crate::http::{Body, GraphRequest, GraphResponse, Method, NetFault, error_body};
use crate::state::SimState;
use crate::{Ready, RunningSim, SimOptions};

pub(crate) async fn start(options: SimOptions) -> Result<RunningSim, SimError> {
    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(|e| SimError::Io(format!("binding {}", options.listen), e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| SimError::Io("local address".into(), e))?;
    let scheme = if options.tls { "https" } else { "http" };
    let base = format!("{scheme}://{addr}");
    let dir = match &options.state_dir {
        Some(d) => d.clone(),
        None => {
            std::env::temp_dir().join(format!("graph-sim-{}-{}", std::process::id(), addr.port()))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|e| SimError::Io(dir.display().to_string(), e))?;
    let seed = options.seed;
    let sizes = options.sizes();
    let opts = options.clone();
    // Key generation and tenant generation are CPU work: keep them off the async executor.
    let (tenant, app_cert, tls) = tokio::task::spawn_blocking(move || -> Result<_, SimError> {
        let tenant = crate::tenant::Tenant::generate(seed, sizes);
        let app_cert = crate::certs::self_signed("graph-sim backup app", false)?;
        let tls = if opts.tls {
            Some(crate::certs::self_signed("127.0.0.1", true)?)
        } else {
            None
        };
        Ok((tenant, app_cert, tls))
    })
    .await
    .map_err(|e| SimError::Invalid(format!("generation task failed: {e}")))??;
    let app_id = crate::ids::guid(seed, 0xA99, 0);
    let password = format!("sim-{:08x}", crate::rng::mix(seed, 0xFA55) & 0xFFFF_FFFF);
    let pfx = dir.join("app.pfx");
    crate::certs::write_pfx(&app_cert, &password, &pfx)?;
    let mut key = vec![0u8; 32];
    openssl::rand::rand_bytes(&mut key)?;
    let entra = Entra::new(
        tenant.id,
        tenant.domain.clone(),
        key.clone(),
        options.token_lifetime,
    );
    let (sha1, sha256) = crate::certs::thumbprints(&app_cert.cert)?;
    let public = openssl::pkey::PKey::public_key_from_der(&app_cert.key.public_key_to_der()?)?;
    entra.register(EntraApp {
        id: app_id,
        roles: FULL_ROLES.iter().map(|s| (*s).to_string()).collect(),
        certs: vec![RegisteredCert {
            sha1,
            sha256,
            key: public,
        }],
    });
    let mut ca_cert = None;
    if let Some(ck) = &tls {
        let path = dir.join("ca.pem");
        std::fs::write(&path, ck.cert.to_pem()?)
            .map_err(|e| SimError::Io(path.display().to_string(), e))?;
        ca_cert = Some(path.display().to_string());
    }
    let ready = Ready {
        graph_endpoint: base.clone(),
        login_endpoint: base.clone(),
        tenant_id: tenant.id.to_string(),
        app_id: app_id.to_string(),
        cert_pfx: pfx.display().to_string(),
        cert_password: password,
        control_endpoint: format!("{base}/_sim"),
        ca_cert,
    };
    let state = Arc::new(SimState {
        faults: crate::faults::Faults::new(crate::rng::mix(seed, 0xFA17)),
        tenant,
        entra,
        base,
        counters: crate::counters::Counters::default(),
        throttle: crate::throttle::Throttle::new(options.throttle.clone()),
        latency_ms: AtomicU64::new(options.latency_ms),
        uploads: parking_lot::Mutex::new(std::collections::HashMap::new()),
        spool_dir: dir.clone(),
        url_key: key.iter().rev().copied().collect(),
        app_id,
        app_cert,
        registry: crate::apps::Registry::new(crate::ids::guid(seed, 0x6A5, 0)),
        device: crate::device::DeviceFlows::default(),
    });
    let data = web::Data::from(state.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(256 * 1024 * 1024))
            .route("/{tenant}/oauth2/v2.0/token", web::post().to(token))
            .route(
                "/{tenant}/oauth2/v2.0/devicecode",
                web::post().to(devicecode),
            )
            .route("/_dl/{token}", web::get().to(crate::files::download))
            .route("/_dl/{token}", web::head().to(crate::files::download))
            .route("/_up/{id}", web::to(crate::files::upload_fragment))
            .route("/_attup/{id}", web::to(crate::mail::attachment_upload))
            .route("/_sim/{tail:.*}", web::to(crate::control::handle))
            .route("/v1.0/{tail:.*}", web::to(graph))
    })
    .workers(options.workers.max(1))
    .disable_signals();
    let server = match tls {
        Some(ck) => {
            let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls())?;
            b.set_private_key(&ck.key)?;
            b.set_certificate(&ck.cert)?;
            server
                .listen_openssl(listener, b)
                .map_err(|e| SimError::Io("listen".into(), e))?
        }
        None => server
            .listen(listener)
            .map_err(|e| SimError::Io("listen".into(), e))?,
    }
    .run();
    let handle = server.handle();
    let task = tokio::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "graph-sim server failed");
        }
    });
    let ready_json = serde_json::to_string(&ready)?;
    let path = dir.join("ready.json");
    std::fs::write(&path, format!("{ready_json}\n"))
        .map_err(|e| SimError::Io(path.display().to_string(), e))?;
    Ok(RunningSim {
        ready,
        state,
        handle,
        task,
    })
}

async fn token(req: HttpRequest, body: Bytes, state: web::Data<SimState>) -> HttpResponse {
    let tenant = req.match_info().get("tenant").unwrap_or("").to_string();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let answer = if field("grant_type") == Some(crate::device::GRANT) {
        crate::device::redeem(&state, &tenant, &form)
    } else {
        // Apps registered through Graph are known to the token endpoint only once replicated,
        // with a service principal and consent; their keys count once replicated.
        match state
            .registry
            .token_view(field("client_id").unwrap_or(""), &state.tenant.domain)
        {
            Ok(Some(app)) => {
                state.entra.register(app);
                state.entra.token(&tenant, &form, &state.base)
            }
            Ok(None) => state.entra.token(&tenant, &form, &state.base),
            Err(e) => Err(e),
        }
    };
    entra_answer(&state, answer)
}

async fn devicecode(req: HttpRequest, body: Bytes, state: web::Data<SimState>) -> HttpResponse {
    let tenant = req.match_info().get("tenant").unwrap_or("").to_string();
    let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
    entra_answer(&state, crate::device::start(&state, &tenant, &form))
}

fn entra_answer(
    state: &SimState,
    answer: Result<serde_json::Value, crate::auth::EntraError>,
) -> HttpResponse {
    match answer {
        Ok(v) => {
            state.counters.token();
            HttpResponse::Ok()
                .content_type("application/json; charset=utf-8")
                .body(v.to_string())
        }
        Err(e) => {
            HttpResponse::build(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST))
                .content_type("application/json; charset=utf-8")
                .body(e.body().to_string())
        }
    }
}

fn headers_of(req: &HttpRequest) -> Vec<(String, String)> {
    req.headers()
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_ascii_lowercase(), v.to_string()))
        })
        .collect()
}

fn client_request_id(req: &HttpRequest) -> String {
    req.headers()
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_string)
}

async fn graph(req: HttpRequest, body: Bytes, state: web::Data<SimState>) -> HttpResponse {
    let rid = client_request_id(&req);
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    let claims = match state.entra.check_bearer(auth) {
        Ok(c) => c,
        Err(msg) => {
            state.counters.request("unauthorized", None);
            let resp = GraphResponse::json(401, error_body("InvalidAuthenticationToken", msg, Some(&rid)))
                .with_header("WWW-Authenticate", "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\"");
            return to_http(&state, resp, &rid).await;
        }
    };
    let full = req.uri().path();
    let path = full.strip_prefix("/v1.0").unwrap_or(full).to_string();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let greq = GraphRequest {
        method: Method::parse(req.method().as_str()),
        path,
        query,
        headers: headers_of(&req),
        body,
        claims,
    };
    let resp = if greq.path == "/$batch" && greq.method == Method::Post {
        crate::batch::handle(&state, greq).await
    } else {
        crate::router::handle(&state, greq).await
    };
    to_http(&state, resp, &rid).await
}

/// Converts a Graph response, applying network faults.
pub(crate) async fn to_http(state: &SimState, mut resp: GraphResponse, rid: &str) -> HttpResponse {
    if let Body::Json(v) = &mut resp.body {
        if let Some(inner) = v
            .pointer_mut("/error/innerError")
            .and_then(|i| i.as_object_mut())
        {
            inner.insert("request-id".into(), rid.into());
            inner.insert("client-request-id".into(), rid.into());
        }
    }
    if let Some(NetFault::Stall(ms)) = resp.fault {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let mut b = HttpResponse::build(
        StatusCode::from_u16(resp.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    );
    b.insert_header(("request-id", rid.to_string()));
    b.insert_header(("client-request-id", rid.to_string()));
    b.insert_header(("OData-Version", "4.0"));
    for (k, v) in &resp.headers {
        b.insert_header((k.as_str(), v.as_str()));
    }
    let (bytes, ctype) = match resp.body {
        Body::Json(v) => (Bytes::from(v.to_string()), "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8".to_string()),
        Body::Raw(b, t) => (b, t),
        Body::Empty => (Bytes::new(), String::new()),
    };
    state.counters.bytes(bytes.len() as u64);
    if !ctype.is_empty() {
        b.insert_header(("Content-Type", ctype));
    }
    match resp.fault {
        Some(NetFault::Reset) => b.body(BoxBody::new(SizedStream::new(
            bytes.len().max(1) as u64,
            stream::iter(vec![Err::<Bytes, std::io::Error>(std::io::Error::other(
                "connection reset by fault injection",
            ))]),
        ))),
        Some(NetFault::Truncate) => {
            let half = bytes.slice(..bytes.len() / 2);
            b.body(BoxBody::new(SizedStream::new(
                bytes.len().max(1) as u64,
                stream::iter(vec![
                    Ok(half),
                    Err(std::io::Error::other("truncated by fault injection")),
                ]),
            )))
        }
        _ => b.body(bytes),
    }
}
