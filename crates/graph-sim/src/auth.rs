//! Entra ID: registered apps, the token endpoint with real client-assertion validation, and the
//! bearer tokens Graph routes check.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};

use crate::time_fmt::now;

/// Application permissions a fully consented backup app gets.
pub const FULL_ROLES: &[&str] = &[
    "User.Read.All",
    "Group.Read.All",
    "Directory.Read.All",
    "Sites.ReadWrite.All",
    "Files.ReadWrite.All",
    "Mail.ReadWrite",
    "Calendars.ReadWrite",
    "Contacts.ReadWrite",
    "ChannelMessage.Read.All",
    "Channel.ReadBasic.All",
    "Team.ReadBasic.All",
    "Teamwork.Migrate.All",
];

/// A certificate registered on an app.
#[derive(Clone)]
pub struct RegisteredCert {
    /// SHA-1 thumbprint.
    pub sha1: [u8; 20],
    /// SHA-256 thumbprint.
    pub sha256: [u8; 32],
    /// Public key.
    pub key: PKey<Public>,
}

/// A registered application (service principal in the tenant).
#[derive(Clone)]
pub struct App {
    /// Application (client) id.
    pub id: uuid::Uuid,
    /// Granted application permissions (empty = no admin consent).
    pub roles: Vec<String>,
    /// Registered certificates.
    pub certs: Vec<RegisteredCert>,
}

/// What a bearer token carries.
#[derive(Clone, Debug)]
pub struct Claims {
    /// Application id.
    pub app_id: uuid::Uuid,
    /// Granted roles.
    pub roles: Arc<Vec<String>>,
    /// Expiry (Unix seconds).
    pub exp: i64,
    /// The signed-in user of a delegated token (`None` for app-only tokens).
    pub user: Option<DelegatedUser>,
}

/// The signed-in user a delegated token carries.
#[derive(Clone, Debug)]
pub struct DelegatedUser {
    /// The user's object id (`oid`).
    pub oid: uuid::Uuid,
    /// The user's principal name (`upn`).
    pub upn: String,
    /// Delegated scopes (`scp`).
    pub scopes: Arc<Vec<String>>,
    /// Directory role template ids (`wids`).
    pub wids: Arc<Vec<String>>,
}

impl DelegatedUser {
    /// Whether the token carries the delegated scope `scope`.
    #[must_use]
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s.eq_ignore_ascii_case(scope))
    }

    /// Whether the user holds one of the directory roles (template ids).
    #[must_use]
    pub fn has_role(&self, templates: &[&str]) -> bool {
        self.wids
            .iter()
            .any(|w| templates.iter().any(|t| w.eq_ignore_ascii_case(t)))
    }
}

/// Kinds of access a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Area {
    /// Users.
    Users,
    /// Groups.
    Groups,
    /// Sites.
    Sites,
    /// Files.
    Files,
    /// Mail.
    Mail,
    /// Calendars.
    Calendars,
    /// Contacts.
    Contacts,
    /// Teams and channels.
    Teams,
    /// Channel messages.
    ChannelMessages,
    /// Teams migration.
    Migrate,
}

impl Claims {
    /// Whether the token allows `area` (writes need a `ReadWrite` role).
    #[must_use]
    pub fn allows(&self, area: Area, write: bool) -> bool {
        let has = |r: &str| self.roles.iter().any(|x| x.eq_ignore_ascii_case(r));
        match area {
            Area::Users => {
                has("User.Read.All") || has("User.ReadWrite.All") || has("Directory.Read.All")
            }
            Area::Groups => {
                has("Group.Read.All") || has("Group.ReadWrite.All") || has("Directory.Read.All")
            }
            Area::Sites | Area::Files => {
                has("Sites.ReadWrite.All")
                    || has("Files.ReadWrite.All")
                    || (!write && (has("Sites.Read.All") || has("Files.Read.All")))
            }
            Area::Mail => has("Mail.ReadWrite") || (!write && has("Mail.Read")),
            Area::Calendars => has("Calendars.ReadWrite") || (!write && has("Calendars.Read")),
            Area::Contacts => has("Contacts.ReadWrite") || (!write && has("Contacts.Read")),
            Area::Teams => {
                has("Team.ReadBasic.All")
                    || has("Channel.ReadBasic.All")
                    || has("Group.Read.All")
                    || has("Teamwork.Migrate.All")
            }
            Area::ChannelMessages => {
                has("ChannelMessage.Read.All") || (write && has("Teamwork.Migrate.All"))
            }
            Area::Migrate => has("Teamwork.Migrate.All"),
        }
    }
}

/// Entra's state: apps, signing key for issued tokens, seen assertion ids.
pub struct Entra {
    tenant_id: uuid::Uuid,
    domain: String,
    apps: RwLock<Vec<App>>,
    hmac_key: Vec<u8>,
    seen_jti: Mutex<HashMap<String, i64>>,
    /// Lifetime of issued tokens, in seconds.
    pub token_lifetime: RwLock<i64>,
}

/// An Entra error: HTTP status, `error`, AADSTS code, description.
#[derive(Debug)]
pub struct EntraError {
    /// HTTP status.
    pub status: u16,
    /// OAuth `error` value.
    pub error: &'static str,
    /// AADSTS number.
    pub code: u32,
    /// Description (without the AADSTS prefix).
    pub description: String,
}

pub(crate) fn err(
    status: u16,
    error: &'static str,
    code: u32,
    description: impl Into<String>,
) -> EntraError {
    EntraError {
        status,
        error,
        code,
        description: description.into(),
    }
}

impl EntraError {
    /// Entra's error JSON.
    #[must_use]
    pub fn body(&self) -> Value {
        let trace = uuid::Uuid::new_v4();
        let corr = uuid::Uuid::new_v4();
        let ts = crate::time_fmt::iso(now()).replace('T', " ");
        json!({
            "error": self.error,
            "error_description": format!("AADSTS{}: {}\r\nTrace ID: {trace}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}", self.code, self.description),
            "error_codes": [self.code],
            "timestamp": ts,
            "trace_id": trace.to_string(),
            "correlation_id": corr.to_string(),
            "error_uri": format!("https://login.microsoftonline.com/error?code={}", self.code),
        })
    }
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

impl Entra {
    /// Entra for one tenant; `hmac_key` signs issued tokens.
    #[must_use]
    pub fn new(
        tenant_id: uuid::Uuid,
        domain: String,
        hmac_key: Vec<u8>,
        token_lifetime: i64,
    ) -> Self {
        Self {
            tenant_id,
            domain,
            apps: RwLock::new(Vec::new()),
            hmac_key,
            seen_jti: Mutex::new(HashMap::new()),
            token_lifetime: RwLock::new(token_lifetime),
        }
    }

    /// Registers an app (or replaces the one with the same id).
    pub fn register(&self, app: App) {
        let mut apps = self.apps.write();
        apps.retain(|a| a.id != app.id);
        apps.push(app);
    }

    /// Forgets an app (its registration was deleted).
    pub fn unregister(&self, app_id: uuid::Uuid) {
        self.apps.write().retain(|a| a.id != app_id);
    }

    /// The roles of an app, `None` when unknown.
    #[must_use]
    pub fn roles(&self, app_id: uuid::Uuid) -> Option<Vec<String>> {
        self.apps
            .read()
            .iter()
            .find(|a| a.id == app_id)
            .map(|a| a.roles.clone())
    }

    /// Sets the roles of an app; false when it is unknown.
    pub fn set_roles(&self, app_id: uuid::Uuid, roles: Vec<String>) -> bool {
        let mut apps = self.apps.write();
        match apps.iter_mut().find(|a| a.id == app_id) {
            Some(a) => {
                a.roles = roles;
                true
            }
            None => false,
        }
    }

    /// Handles `POST /{tenant}/oauth2/v2.0/token`. `endpoint` is the URL the request was sent to
    /// (the expected `aud`).
    ///
    /// # Errors
    /// The Entra error to answer with.
    pub fn token(
        &self,
        tenant: &str,
        form: &[(String, String)],
        login_base: &str,
    ) -> Result<Value, EntraError> {
        let tenant_ok = tenant.eq_ignore_ascii_case(&self.tenant_id.to_string())
            || tenant.eq_ignore_ascii_case(&self.domain);
        if matches!(
            tenant.to_lowercase().as_str(),
            "common" | "consumers" | "organizations"
        ) {
            return Err(err(
                400,
                "invalid_request",
                9_001_023,
                "The grant type isn't supported over the /common or /consumers endpoints. Please use the /organizations or tenant-specific endpoint.",
            ));
        }
        if !tenant_ok {
            return Err(err(
                400,
                "invalid_request",
                90_002,
                format!(
                    "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
                ),
            ));
        }
        let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        let grant = get("grant_type").ok_or_else(|| {
            err(
                400,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        })?;
        if grant != "client_credentials" {
            return Err(err(
                400,
                "unsupported_grant_type",
                70_003,
                format!("The app requested an unsupported grant type '{grant}'."),
            ));
        }
        let client_id = get("client_id").ok_or_else(|| {
            err(
                400,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'client_id'.",
            )
        })?;
        let scope = get("scope").ok_or_else(|| {
            err(
                400,
                "invalid_request",
                900_144,
                "The request body must contain the following parameter: 'scope'.",
            )
        })?;
        if scope
            .split(' ')
            .any(|s| s != "https://graph.microsoft.com/.default")
        {
            return Err(err(
                400,
                "invalid_scope",
                1_002_012,
                format!(
                    "The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
                ),
            ));
        }
        let Some(assertion) = get("client_assertion") else {
            return Err(err(
                401,
                "invalid_client",
                7_000_218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            ));
        };
        if get("client_assertion_type")
            != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        {
            return Err(err(
                400,
                "invalid_request",
                7_000_219,
                "'client_assertion_type' must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
            ));
        }
        let app_id = uuid::Uuid::parse_str(client_id).map_err(|_| err(400, "unauthorized_client", 700_016, format!("Application with identifier '{client_id}' was not found in the directory '{}'.", self.domain)))?;
        let app = self.apps.read().iter().find(|a| a.id == app_id).cloned().ok_or_else(|| {
            err(400, "unauthorized_client", 700_016, format!("Application with identifier '{client_id}' was not found in the directory '{}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.", self.domain))
        })?;
        self.validate_assertion(&app, assertion, tenant, login_base)?;
        let lifetime = *self.token_lifetime.read();
        let token = self.issue(&app, lifetime);
        Ok(
            json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}),
        )
    }

    fn validate_assertion(
        &self,
        app: &App,
        assertion: &str,
        tenant: &str,
        login_base: &str,
    ) -> Result<(), EntraError> {
        let malformed = || {
            err(
                400,
                "invalid_client",
                50_027,
                "JWT token is invalid or malformed.",
            )
        };
        let mut parts = assertion.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        let header: Value = URL_SAFE_NO_PAD
            .decode(h)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(malformed)?;
        let claims: Value = URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(s).map_err(|_| malformed())?;
        let alg = header["alg"].as_str().unwrap_or("");
        let cert = if let Some(t) = header["x5t#S256"].as_str() {
            let want = URL_SAFE_NO_PAD.decode(t).map_err(|_| malformed())?;
            app.certs.iter().find(|c| c.sha256[..] == want[..])
        } else if let Some(t) = header["x5t"].as_str() {
            let want = URL_SAFE_NO_PAD.decode(t).map_err(|_| malformed())?;
            app.certs.iter().find(|c| c.sha1[..] == want[..])
        } else {
            return Err(err(
                401,
                "invalid_client",
                700_027,
                "Client assertion failed signature validation. [Reason - The key was not found., Thumbprint of key used by client: 'none']",
            ));
        };
        let Some(cert) = cert else {
            return Err(err(
                401,
                "invalid_client",
                700_027,
                format!(
                    "The certificate with identifier used to sign the client assertion is not registered on application. [Reason - The key was not found.] Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.",
                    app.id
                ),
            ));
        };
        let signed = format!("{h}.{p}");
        let ok = (|| -> Result<bool, openssl::error::ErrorStack> {
            let mut v = Verifier::new(MessageDigest::sha256(), &cert.key)?;
            match alg {
                "RS256" => v.set_rsa_padding(Padding::PKCS1)?,
                "PS256" => {
                    v.set_rsa_padding(Padding::PKCS1_PSS)?;
                    v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
                }
                _ => return Ok(false),
            }
            v.update(signed.as_bytes())?;
            v.verify(&signature)
        })()
        .unwrap_or(false);
        if !ok {
            return Err(err(
                401,
                "invalid_client",
                700_027,
                "Client assertion failed signature validation.",
            ));
        }
        let aud = claims["aud"].as_str().unwrap_or("");
        let aud_ok = [
            tenant.to_string(),
            self.tenant_id.to_string(),
            self.domain.clone(),
        ]
        .iter()
        .any(|t| {
            let base = login_base.trim_end_matches('/');
            aud == format!("{base}/{t}/oauth2/v2.0/token")
                || aud == format!("{base}/{t}/oauth2/token")
                || aud == format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/token")
        });
        if !aud_ok {
            return Err(err(
                401,
                "invalid_client",
                50_012,
                format!(
                    "Client assertion audience claim does not match Realm issuer. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials . Audience: '{aud}'."
                ),
            ));
        }
        let id = app.id.to_string();
        if claims["iss"].as_str() != Some(id.as_str())
            || claims["sub"].as_str() != Some(id.as_str())
        {
            return Err(err(
                401,
                "invalid_client",
                700_021,
                "Client assertion application identifier doesn't match 'client_id' parameter. Review the documentation at https://docs.microsoft.com/en-us/azure/active-directory/develop/active-directory-certificate-credentials .",
            ));
        }
        let now = now();
        let skew = 300;
        let exp = claims["exp"].as_i64().ok_or_else(malformed)?;
        let nbf = claims["nbf"].as_i64().unwrap_or(0);
        if exp + skew < now || nbf - skew > now {
            return Err(err(
                400,
                "invalid_client",
                700_024,
                "Client assertion is not within its valid time range.",
            ));
        }
        let jti = claims["jti"].as_str().ok_or_else(malformed)?.to_string();
        let mut seen = self.seen_jti.lock();
        seen.retain(|_, e| *e + skew >= now);
        if seen.insert(jti, exp).is_some() {
            return Err(err(
                400,
                "invalid_client",
                700_025,
                "The client assertion was already used (duplicate 'jti'); assertions are single-use.",
            ));
        }
        Ok(())
    }

    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let key = PKey::hmac(&self.hmac_key).and_then(|k| {
            let mut s = Signer::new(MessageDigest::sha256(), &k)?;
            s.update(data)?;
            s.sign_to_vec()
        });
        key.unwrap_or_default()
    }

    /// Issues an access token for `app` valid for `lifetime` seconds.
    #[must_use]
    pub fn issue(&self, app: &App, lifetime: i64) -> String {
        let now = now();
        let header = json!({"typ": "JWT", "alg": "HS256", "kid": "graph-sim"});
        let payload = json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{}/", self.tenant_id),
            "iat": now, "nbf": now, "exp": now + lifetime,
            "appid": app.id.to_string(), "idtyp": "app", "oid": app.id.to_string(), "sub": app.id.to_string(),
            "roles": app.roles, "tid": self.tenant_id.to_string(), "ver": "1.0",
        });
        let head = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let sig = self.sign(head.as_bytes());
        format!("{head}.{}", b64(&sig))
    }

    /// Issues a delegated access token for a signed-in user through the public client
    /// `client_id`, with the delegated `scopes` and the user's directory roles (`wids`).
    #[must_use]
    pub fn issue_delegated(
        &self,
        client_id: &str,
        user: (uuid::Uuid, &str),
        scopes: &[String],
        wids: &[String],
        lifetime: i64,
    ) -> String {
        let now = now();
        let header = json!({"typ": "JWT", "alg": "HS256", "kid": "graph-sim"});
        let payload = json!({
            "aud": "https://graph.microsoft.com",
            "iss": format!("https://sts.windows.net/{}/", self.tenant_id),
            "iat": now, "nbf": now, "exp": now + lifetime,
            "appid": client_id, "idtyp": "user", "oid": user.0.to_string(), "sub": user.0.to_string(),
            "upn": user.1, "scp": scopes.join(" "), "wids": wids, "tid": self.tenant_id.to_string(), "ver": "1.0",
        });
        let head = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(payload.to_string().as_bytes())
        );
        let sig = self.sign(head.as_bytes());
        format!("{head}.{}", b64(&sig))
    }

    /// The tenant's id.
    #[must_use]
    pub fn tenant_id(&self) -> uuid::Uuid {
        self.tenant_id
    }

    /// Whether `tenant` (a path segment of the login host) names this tenant.
    #[must_use]
    pub fn is_tenant(&self, tenant: &str) -> bool {
        tenant.eq_ignore_ascii_case(&self.tenant_id.to_string())
            || tenant.eq_ignore_ascii_case(&self.domain)
    }

    /// Checks an `Authorization` header value; `Err(message)` for a 401.
    ///
    /// # Errors
    /// Why the token is not acceptable.
    pub fn check_bearer(&self, header: Option<&str>) -> Result<Claims, &'static str> {
        let token = header
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .ok_or("Access token is empty.")?;
        let (head, sig) = token
            .rsplit_once('.')
            .ok_or("IDX14100: JWT is not well formed, there are no dots (.).")?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| "Invalid signature.")?;
        let expected = self.sign(head.as_bytes());
        if !openssl::memcmp::eq(&expected, &sig) || expected.len() != sig.len() {
            return Err("Access token validation failure. Invalid audience or signature.");
        }
        let payload = head
            .split('.')
            .nth(1)
            .ok_or("IDX14100: JWT is not well formed.")?;
        let claims: Value = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("IDX14100: JWT is not well formed.")?;
        let exp = claims["exp"].as_i64().unwrap_or(0);
        if exp <= now() {
            return Err("Lifetime validation failed, the token is expired.");
        }
        let app_id = claims["appid"]
            .as_str()
            .and_then(|s| uuid::Uuid::parse_str(s).ok())
            .ok_or("Invalid token.")?;
        let roles = claims["roles"]
            .as_array()
            .map(|r| {
                r.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let strings = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        let user = if claims["idtyp"].as_str() == Some("user") {
            let oid = claims["oid"]
                .as_str()
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .ok_or("Invalid token.")?;
            Some(DelegatedUser {
                oid,
                upn: claims["upn"].as_str().unwrap_or("").to_string(),
                scopes: Arc::new(
                    claims["scp"]
                        .as_str()
                        .unwrap_or("")
                        .split(' ')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                ),
                wids: Arc::new(strings(&claims["wids"])),
            })
        } else {
            None
        };
        Ok(Claims {
            app_id,
            roles: Arc::new(roles),
            exp,
            user,
        })
    }
}

/// Builds a client assertion (used by tests, the benchmark and anyone embedding the simulator).
///
/// `sha256_thumbprint` selects `PS256` + `x5t#S256`; otherwise `RS256` + `x5t`.
///
/// # Errors
/// OpenSSL failures.
pub fn client_assertion(
    key: &PKey<openssl::pkey::Private>,
    cert: &openssl::x509::X509,
    app_id: &str,
    audience: &str,
    sha256_thumbprint: bool,
    lifetime: i64,
) -> Result<String, openssl::error::ErrorStack> {
    let der = cert.to_der()?;
    let header = if sha256_thumbprint {
        json!({"alg": "PS256", "typ": "JWT", "x5t#S256": b64(&openssl::sha::sha256(&der))})
    } else {
        json!({"alg": "RS256", "typ": "JWT", "x5t": b64(&openssl::sha::sha1(&der))})
    };
    let now = now();
    let claims = json!({"aud": audience, "iss": app_id, "sub": app_id, "jti": uuid::Uuid::new_v4().to_string(),
        "nbf": now, "iat": now, "exp": now + lifetime});
    let head = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut signer = Signer::new(MessageDigest::sha256(), key)?;
    if sha256_thumbprint {
        signer.set_rsa_padding(Padding::PKCS1_PSS)?;
        signer.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
    }
    signer.update(head.as_bytes())?;
    Ok(format!("{head}.{}", b64(&signer.sign_to_vec()?)))
}
