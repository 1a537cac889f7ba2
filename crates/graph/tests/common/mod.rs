//! A tiny HTTP/1.1 server for tests (one request per connection), able to misbehave on purpose:
//! reset connections, truncate bodies, stall. Plus a test certificate and client builders.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use backhome_graph::{Client, ClientConfig, Cloud, Credential, Limits, RetryPolicy};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::{X509, X509NameBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server saw it.
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .into_owned()
            .collect()
    }
}

/// What the server does.
#[derive(Clone, Debug)]
pub enum Reply {
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Announces `body.len()` but sends only `send` bytes, then closes.
    Truncated {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        send: usize,
    },
    /// Closes the connection without answering (RST).
    Reset,
    /// Announces `body.len()`, sends `send` bytes, then goes silent for `silence`.
    Stall {
        body: Vec<u8>,
        send: usize,
        silence: Duration,
    },
}

impl Reply {
    pub fn json(status: u16, value: &Value) -> Self {
        Reply::Full {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(value).unwrap(),
        }
    }

    pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Self {
        Reply::Full {
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn status(status: u16) -> Self {
        Self::raw(status, Vec::new())
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        match &mut self {
            Reply::Full { headers, .. } | Reply::Truncated { headers, .. } => {
                headers.push((name.into(), value.into()))
            }
            Reply::Reset | Reply::Stall { .. } => {}
        }
        self
    }
}

pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    pub log: Arc<Mutex<Vec<Req>>>,
}

impl Server {
    /// Requests seen so far.
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    /// Requests whose path contains `needle`.
    pub fn matching(&self, needle: &str) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.target.contains(needle))
            .collect()
    }
}

/// Starts a server on 127.0.0.1:0 answering with `handler`.
pub async fn serve<F, Fut>(handler: F) -> Server
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let log = log2.clone();
            tokio::spawn(async move {
                let _ = handle(stream, handler, log).await;
            });
        }
    });
    Server {
        addr,
        base: format!("http://{addr}"),
        log,
    }
}

async fn handle<F, Fut>(
    mut stream: TcpStream,
    handler: Arc<F>,
    log: Arc<Mutex<Vec<Req>>>,
) -> std::io::Result<()>
where
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Reply>,
{
    let outcome = exchange(&mut stream, handler, log).await?;
    if outcome != Outcome::Done {
        // An RST instead of an orderly close.
        #[allow(deprecated)]
        let _ = stream.set_linger(Some(Duration::ZERO));
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Done,
    Reset,
    Truncated,
}

/// Reads one request, answers it.
async fn exchange<S, F, Fut>(
    stream: &mut S,
    handler: Arc<F>,
    log: Arc<Mutex<Vec<Req>>>,
) -> std::io::Result<Outcome>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: Fn(Req) -> Fut,
    Fut: Future<Output = Reply>,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Outcome::Done);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let target = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    let req = Req {
        method,
        target,
        headers,
        body,
    };
    log.lock().unwrap().push(req.clone());
    let reply = handler(req).await;
    let (status, headers, body, send) = match reply {
        Reply::Reset => return Ok(Outcome::Reset),
        Reply::Stall {
            body,
            send,
            silence,
        } => {
            let head = format!(
                "HTTP/1.1 200 Answer\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body[..send.min(body.len())]).await?;
            stream.flush().await?;
            tokio::time::sleep(silence).await;
            return Ok(Outcome::Truncated);
        }
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let n = body.len();
            (status, headers, body, n)
        }
        Reply::Truncated {
            status,
            headers,
            body,
            send,
        } => (status, headers, body, send),
    };
    let mut out = format!(
        "HTTP/1.1 {status} Answer\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in &headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes()).await?;
    stream.write_all(&body[..send.min(body.len())]).await?;
    stream.flush().await?;
    if send < body.len() {
        // Let the client read what was sent before the connection drops.
        tokio::time::sleep(Duration::from_millis(20)).await;
        return Ok(Outcome::Truncated);
    }
    let _ = stream.shutdown().await;
    Ok(Outcome::Done)
}

/// Starts an HTTPS server on 127.0.0.1:0 with a self-signed certificate for 127.0.0.1 and
/// localhost; returns the server and the certificate as PEM.
pub async fn serve_tls<F, Fut>(handler: F) -> (Server, Vec<u8>)
where
    F: Fn(Req) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Reply> + Send + 'static,
{
    let (key, cert) = tls_cert();
    let pfx = openssl::pkcs12::Pkcs12::builder()
        .name("tls")
        .pkey(&key)
        .cert(&cert)
        .build2("pw")
        .unwrap()
        .to_der()
        .unwrap();
    let identity = native_tls::Identity::from_pkcs12(&pfx, "pw").unwrap();
    let acceptor =
        tokio_native_tls::TlsAcceptor::from(native_tls::TlsAcceptor::new(identity).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (handler, log, acceptor) = (handler.clone(), log2.clone(), acceptor.clone());
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(stream).await {
                    let _ = exchange(&mut tls, handler, log).await;
                }
            });
        }
    });
    (
        Server {
            addr,
            base: format!("https://{addr}"),
            log,
        },
        cert.to_pem().unwrap(),
    )
}

fn tls_cert() -> (PKey<Private>, X509) {
    use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "127.0.0.1").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(9).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .ip("127.0.0.1")
        .dns("localhost")
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (key, b.build())
}

/// A key and a self-signed certificate valid from `days_from` to `days_to` (relative to now).
pub fn key_and_cert(days_from: i64, days_to: i64) -> (PKey<Private>, X509) {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", "Backhome test").unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    b.set_not_before(&Asn1Time::from_unix(now + days_from * 86_400).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::from_unix(now + days_to * 86_400).unwrap())
        .unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    (key, b.build())
}

/// One valid credential per test binary.
pub fn credential() -> Credential {
    static CRED: OnceLock<Credential> = OnceLock::new();
    CRED.get_or_init(|| {
        let (key, cert) = key_and_cert(-1, 365);
        Credential::from_parts(key, cert).unwrap()
    })
    .clone()
}

pub const TENANT: &str = "contoso.onmicrosoft.com";
pub const APP: &str = "11111111-2222-3333-4444-555555555555";

/// A JWT-shaped access token carrying `roles` (signature not checked by tests).
pub fn access_token(roles: &[&str]) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"RS256"}"#);
    let payload = URL_SAFE_NO_PAD
        .encode(json!({ "roles": roles, "n": uuid::Uuid::new_v4().to_string() }).to_string());
    format!("{header}.{payload}.c2ln")
}

pub fn token_reply(roles: &[&str], expires_in: u64) -> Reply {
    Reply::json(
        200,
        &json!({ "token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in, "access_token": access_token(roles) }),
    )
}

pub fn is_token(req: &Req) -> bool {
    req.path().ends_with("/oauth2/v2.0/token")
}

/// Fast retries for tests.
pub fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 5,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(100),
        max_total_wait: Duration::from_secs(20),
    }
}

pub fn config(server: &Server) -> ClientConfig {
    let cloud = Cloud::custom(&server.base, &server.base).unwrap();
    let mut c = ClientConfig::new(cloud, TENANT, APP);
    c.retry = fast_retry();
    c.limits = Limits {
        global: 32,
        per_resource: 4,
    };
    c
}

pub fn client(server: &Server) -> Client {
    Client::new(config(server), credential()).unwrap()
}
