//! App registrations made through Graph: `/applications` (create, get, update, delete, `addKey`,
//! `removeKey`), `/servicePrincipals` (create, get, list by `appId`), app role assignments
//! (`appRoleAssignedTo`, `appRoleAssignments`), `/me`, and what the token endpoint knows of
//! these apps: nothing until the replication delay has passed, no token before the service
//! principal exists and admin consent is granted, and a key only once it has replicated.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use openssl::hash::MessageDigest;
use openssl::sign::Verifier;
use openssl::x509::X509;
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};

use crate::auth::{App, Claims, EntraError, RegisteredCert, err};
use crate::http::{GraphRequest, GraphResponse, Method};
use crate::msgraph::{APP_ADMIN_ROLES, CONSENT_ROLES, GRAPH_APP_ID};
use crate::state::SimState;
use crate::time_fmt::{iso, now_ms};

/// The audience a proof of possession (`addKey`, `removeKey`) must name.
pub const PROOF_AUDIENCE: &str = "00000002-0000-0000-c000-000000000000";

/// Behaviour of app registration, set through `/_sim/registration`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Settings {
    /// How long after its creation a new app (and after its addition a new key) stays unknown
    /// to the token endpoint, in milliseconds. Applies to apps and keys made while it is set.
    pub replication_delay_ms: u64,
    /// Sign-ins through the device code flow fail with AADSTS65001: a policy blocks consent.
    pub consent_blocked: bool,
    /// Members without an admin role may register applications (Entra's default: yes).
    pub users_can_register_apps: bool,
    /// Lifetime of device codes, in seconds (Entra: 900).
    pub device_expires_in: i64,
    /// Polling interval the device code flow asks for, in seconds (Entra: 5).
    pub device_interval: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            replication_delay_ms: 0,
            consent_blocked: false,
            users_can_register_apps: true,
            device_expires_in: 900,
            device_interval: 5,
        }
    }
}

/// A certificate registered on an application.
#[derive(Clone)]
pub struct KeyCred {
    /// Key id.
    pub key_id: uuid::Uuid,
    /// Display name.
    pub display_name: String,
    /// Start of validity (Unix seconds).
    pub start: i64,
    /// End of validity (Unix seconds).
    pub end: i64,
    /// The certificate.
    pub cert: X509,
    /// SHA-1 thumbprint.
    pub sha1: [u8; 20],
    /// SHA-256 thumbprint.
    pub sha256: [u8; 32],
    /// From when the token endpoint accepts it (added + the replication delay then in force).
    pub usable_ms: i64,
}

/// An application object.
#[derive(Clone)]
pub struct Application {
    /// Object id.
    pub id: uuid::Uuid,
    /// Application (client) id.
    pub app_id: uuid::Uuid,
    /// Display name.
    pub display_name: String,
    /// `signInAudience`.
    pub sign_in_audience: String,
    /// `requiredResourceAccess` as sent.
    pub required: Value,
    /// Certificates.
    pub keys: Vec<KeyCred>,
    /// Owners (users who created it).
    pub owners: Vec<uuid::Uuid>,
    /// Creation (Unix milliseconds).
    pub created_ms: i64,
    /// From when the token endpoint knows it (created + the replication delay then in force).
    pub visible_ms: i64,
}

/// A service principal.
#[derive(Clone)]
pub struct ServicePrincipal {
    /// Object id.
    pub id: uuid::Uuid,
    /// Application id.
    pub app_id: String,
    /// Display name.
    pub display_name: String,
    /// `appRoles`.
    pub app_roles: Value,
    /// Creation (Unix milliseconds).
    pub created_ms: i64,
}

impl ServicePrincipal {
    /// `createdDateTime` of a service principal (the Microsoft Graph one predates the tenant).
    fn created(&self) -> Value {
        if self.created_ms == 0 {
            Value::Null
        } else {
            Value::String(iso(self.created_ms / 1000))
        }
    }
}

/// An app role assignment (a granted application permission).
#[derive(Clone)]
pub struct Assignment {
    /// Id.
    pub id: String,
    /// The service principal granted the role.
    pub principal_id: uuid::Uuid,
    /// The resource service principal (Microsoft Graph).
    pub resource_id: uuid::Uuid,
    /// The app role.
    pub app_role_id: String,
    /// Creation (Unix seconds).
    pub created: i64,
}

#[derive(Default)]
struct Data {
    apps: Vec<Application>,
    sps: Vec<ServicePrincipal>,
    assignments: Vec<Assignment>,
}

/// Applications, service principals and role assignments of the tenant.
pub struct Registry {
    /// Behaviour switches.
    pub settings: RwLock<Settings>,
    data: Mutex<Data>,
}

impl Registry {
    /// A registry holding only the Microsoft Graph service principal (object id `graph_sp`).
    #[must_use]
    pub fn new(graph_sp: uuid::Uuid) -> Self {
        let graph = ServicePrincipal {
            id: graph_sp,
            app_id: GRAPH_APP_ID.into(),
            display_name: "Microsoft Graph".into(),
            app_roles: crate::msgraph::app_roles_json(),
            created_ms: 0,
        };
        Self {
            settings: RwLock::new(Settings::default()),
            data: Mutex::new(Data {
                sps: vec![graph],
                ..Data::default()
            }),
        }
    }

    /// What the token endpoint may know of `client_id`: `Ok(None)` when it is not an app
    /// registered through Graph, the app with its granted roles and replicated keys when it may
    /// get tokens, the Entra error otherwise.
    ///
    /// # Errors
    /// AADSTS700016 (not replicated yet or deleted), AADSTS7000229 (no service principal),
    /// AADSTS65001 (no admin consent).
    pub fn token_view(&self, client_id: &str, domain: &str) -> Result<Option<App>, EntraError> {
        let Ok(id) = uuid::Uuid::parse_str(client_id) else {
            return Ok(None);
        };
        let now = now_ms();
        let data = self.data.lock();
        let Some(app) = data.apps.iter().find(|a| a.app_id == id) else {
            return Ok(None);
        };
        if app.visible_ms > now {
            return Err(err(
                400,
                "unauthorized_client",
                700_016,
                format!(
                    "Application with identifier '{client_id}' was not found in the directory '{domain}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
                ),
            ));
        }
        let Some(sp) = data
            .sps
            .iter()
            .find(|s| s.app_id == client_id.to_lowercase())
        else {
            return Err(err(
                400,
                "invalid_client",
                7_000_229,
                format!(
                    "The client application {client_id} is missing service principal in the tenant {domain}. See instructions here: https://go.microsoft.com/fwlink/?linkid=2225119"
                ),
            ));
        };
        let roles: Vec<String> = data
            .assignments
            .iter()
            .filter(|a| a.principal_id == sp.id)
            .filter_map(|a| crate::msgraph::role_value(&a.app_role_id).map(str::to_string))
            .collect();
        if roles.is_empty() {
            return Err(err(
                400,
                "invalid_grant",
                65_001,
                format!(
                    "The user or administrator has not consented to use the application with ID '{client_id}' named '{}'. Send an interactive authorization request for this user and resource.",
                    app.display_name
                ),
            ));
        }
        let secs = now / 1000;
        let mut certs = Vec::new();
        for k in &app.keys {
            if k.usable_ms > now || k.end < secs || k.start > secs + 300 {
                continue;
            }
            if let Ok(key) = k.cert.public_key() {
                certs.push(RegisteredCert {
                    sha1: k.sha1,
                    sha256: k.sha256,
                    key,
                });
            }
        }
        Ok(Some(App { id, roles, certs }))
    }

    /// Replication catches up: every app and key made so far is known to the token endpoint now.
    pub fn replicate_now(&self) {
        let now = now_ms();
        let mut data = self.data.lock();
        for a in &mut data.apps {
            a.visible_ms = a.visible_ms.min(now);
            for k in &mut a.keys {
                k.usable_ms = k.usable_ms.min(now);
            }
        }
    }

    /// The replication delay in force, in milliseconds.
    fn delay_ms(&self) -> i64 {
        i64::try_from(self.settings.read().replication_delay_ms).unwrap_or(i64::MAX)
    }

    /// Whether an app registered through Graph has this application id (also deleted ones are
    /// forgotten, so `false` for them).
    #[must_use]
    pub fn knows(&self, app_id: uuid::Uuid) -> bool {
        self.data.lock().apps.iter().any(|a| a.app_id == app_id)
    }

    /// The registry as the control API shows it: apps with their keys' thumbprints, service
    /// principals and granted roles.
    #[must_use]
    pub fn dump(&self) -> Value {
        let data = self.data.lock();
        let apps: Vec<Value> = data
            .apps
            .iter()
            .map(|a| {
                let sp = data.sps.iter().find(|s| s.app_id == a.app_id.to_string());
                let roles: Vec<&str> = sp
                    .map(|sp| {
                        data.assignments
                            .iter()
                            .filter(|x| x.principal_id == sp.id)
                            .filter_map(|x| crate::msgraph::role_value(&x.app_role_id))
                            .collect()
                    })
                    .unwrap_or_default();
                json!({
                    "id": a.id.to_string(),
                    "app_id": a.app_id.to_string(),
                    "display_name": a.display_name,
                    "owners": a.owners.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "keys": a.keys.iter().map(|k| json!({
                        "key_id": k.key_id.to_string(),
                        "thumbprint": hex(&k.sha1),
                        "end": iso(k.end),
                    })).collect::<Vec<_>>(),
                    "service_principal": sp.map(|s| s.id.to_string()),
                    "roles": roles,
                })
            })
            .collect();
        json!({"applications": apps})
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

fn denied() -> GraphResponse {
    GraphResponse::error(
        403,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

fn bad(message: &str) -> GraphResponse {
    GraphResponse::error(400, "Request_BadRequest", message)
}

fn not_found(what: &str) -> GraphResponse {
    GraphResponse::resource_not_found(what)
}

/// Delegated scope or application role `perm` (or a broader one).
fn allowed(claims: &Claims, perms: &[&str]) -> bool {
    match &claims.user {
        Some(u) => perms.iter().any(|p| u.has_scope(p)),
        None => claims
            .roles
            .iter()
            .any(|r| perms.iter().any(|p| r.eq_ignore_ascii_case(p))),
    }
}

const APP_WRITE: &[&str] = &["Application.ReadWrite.All", "Directory.ReadWrite.All"];
const APP_READ: &[&str] = &[
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
];
const GRANT: &[&str] = &["AppRoleAssignment.ReadWrite.All"];

/// Whether the caller may change `app`: its owner or an application admin (delegated), an app
/// with `Application.ReadWrite.All`, or (`own_keys`) the app itself rolling its keys.
fn may_manage(claims: &Claims, app: &Application, own_keys: bool) -> bool {
    match &claims.user {
        Some(u) => {
            allowed(claims, APP_WRITE)
                && (app.owners.contains(&u.oid) || u.has_role(APP_ADMIN_ROLES))
        }
        None => (own_keys && claims.app_id == app.app_id) || allowed(claims, APP_WRITE),
    }
}

/// `applications(appId='…')` or `servicePrincipals(appId='…')` → the app id.
fn alt_key(seg: &str, prefix: &str) -> Option<String> {
    let rest = seg.strip_prefix(prefix)?;
    let inner = rest.strip_prefix("(")?.strip_suffix(")")?;
    let value = inner
        .strip_prefix("appId=")
        .or_else(|| inner.strip_prefix("appid="))?;
    Some(value.trim_matches('\'').to_lowercase())
}

/// `appId eq '…'` of a `$filter`.
fn filter_app_id(req: &GraphRequest) -> Result<Option<String>, GraphResponse> {
    let Some(f) = req.param("filter") else {
        return Ok(None);
    };
    let parts: Vec<&str> = f.split_whitespace().collect();
    match parts.as_slice() {
        [field, op, value]
            if field.eq_ignore_ascii_case("appId") && op.eq_ignore_ascii_case("eq") =>
        {
            Ok(Some(value.trim_matches('\'').to_lowercase()))
        }
        _ => Err(bad(&format!(
            "Unsupported or invalid query filter clause: {f}"
        ))),
    }
}

fn key_json(k: &KeyCred) -> Value {
    json!({
        "customKeyIdentifier": STANDARD.encode(k.sha1),
        "displayName": k.display_name,
        "endDateTime": iso(k.end),
        "key": null,
        "keyId": k.key_id.to_string(),
        "startDateTime": iso(k.start),
        "type": "AsymmetricX509Cert",
        "usage": "Verify",
    })
}

fn app_json(state: &SimState, a: &Application) -> Value {
    json!({
        "@odata.context": format!("{}/$metadata#applications/$entity", state.graph()),
        "id": a.id.to_string(),
        "appId": a.app_id.to_string(),
        "displayName": a.display_name,
        "createdDateTime": iso(a.created_ms / 1000),
        "signInAudience": a.sign_in_audience,
        "publisherDomain": state.tenant.domain,
        "requiredResourceAccess": a.required,
        "keyCredentials": a.keys.iter().map(key_json).collect::<Vec<_>>(),
        "passwordCredentials": [],
    })
}

fn sp_json(state: &SimState, s: &ServicePrincipal) -> Value {
    json!({
        "id": s.id.to_string(),
        "appId": s.app_id,
        "displayName": s.display_name,
        "accountEnabled": true,
        "servicePrincipalType": "Application",
        "appOwnerOrganizationId": if s.app_id == GRAPH_APP_ID { "f8cdef31-a31e-4b4a-93e4-5f571e91255a".to_string() } else { state.tenant.id.to_string() },
        "appRoles": s.app_roles,
        "createdDateTime": s.created(),
        "keyCredentials": [],
    })
}

fn assignment_json(data: &Data, a: &Assignment) -> Value {
    let name = |id: uuid::Uuid| {
        data.sps
            .iter()
            .find(|s| s.id == id)
            .map(|s| s.display_name.clone())
    };
    json!({
        "id": a.id,
        "deletedDateTime": null,
        "appRoleId": a.app_role_id,
        "createdDateTime": iso(a.created),
        "principalDisplayName": name(a.principal_id),
        "principalId": a.principal_id.to_string(),
        "principalType": "ServicePrincipal",
        "resourceDisplayName": name(a.resource_id),
        "resourceId": a.resource_id.to_string(),
    })
}

/// Parses a `keyCredential` object: an `AsymmetricX509Cert` with usage `Verify` and the
/// certificate's DER in base64.
fn parse_key(v: &Value, now: i64, delay_ms: i64) -> Result<KeyCred, GraphResponse> {
    if v["type"].as_str() != Some("AsymmetricX509Cert") || v["usage"].as_str() != Some("Verify") {
        return Err(bad(
            "Invalid value specified for property 'type' or 'usage' of resource 'KeyCredential': certificates are added as type AsymmetricX509Cert with usage Verify.",
        ));
    }
    let der = v["key"]
        .as_str()
        .and_then(|k| STANDARD.decode(k).ok())
        .ok_or_else(|| {
            bad("Invalid value specified for property 'key' of resource 'KeyCredential'.")
        })?;
    let cert = X509::from_der(&der).map_err(|_| {
        bad("Invalid value specified for property 'key' of resource 'KeyCredential'.")
    })?;
    let epoch = openssl::asn1::Asn1Time::from_unix(0).map_err(|_| bad("bad certificate"))?;
    let secs = |t: &openssl::asn1::Asn1TimeRef| {
        epoch
            .diff(t)
            .map(|d| i64::from(d.days) * 86_400 + i64::from(d.secs))
    };
    let (start, end) = match (secs(cert.not_before()), secs(cert.not_after())) {
        (Ok(s), Ok(e)) => (s, e),
        _ => return Err(bad("The certificate's validity dates cannot be read.")),
    };
    if end < now {
        return Err(bad(
            "Key credential end date is invalid: the certificate has expired.",
        ));
    }
    let key_id = match v["keyId"].as_str() {
        Some(k) => uuid::Uuid::parse_str(k).map_err(|_| {
            bad("Invalid value specified for property 'keyId' of resource 'KeyCredential'.")
        })?,
        None => uuid::Uuid::new_v4(),
    };
    Ok(KeyCred {
        key_id,
        display_name: v["displayName"].as_str().unwrap_or("").to_string(),
        start,
        end,
        sha1: openssl::sha::sha1(&der),
        sha256: openssl::sha::sha256(&der),
        cert,
        usable_ms: now_ms().saturating_add(delay_ms),
    })
}

/// Checks a proof of possession: a JWT signed (RS256) with one of the app's valid certificates,
/// `aud` 00000002-0000-0000-c000-000000000000, `iss` the application's object id, and within its
/// validity.
fn check_proof(app: &Application, proof: &str, now: i64) -> Result<(), GraphResponse> {
    let fail = |why: &str| {
        bad(&format!(
            "Proof of possession of an existing key of the application could not be verified: {why}."
        ))
    };
    let mut parts = proof.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(fail("the proof is not a signed JWT"));
    };
    let decode = |x: &str| -> Option<Value> {
        URL_SAFE_NO_PAD
            .decode(x)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    };
    let (Some(header), Some(claims), Ok(sig)) = (decode(h), decode(p), URL_SAFE_NO_PAD.decode(s))
    else {
        return Err(fail("the proof is not a signed JWT"));
    };
    if header["alg"].as_str() != Some("RS256") {
        return Err(fail("the proof must be signed with RS256"));
    }
    let want = header["x5t"]
        .as_str()
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .ok_or_else(|| fail("the proof's header has no x5t thumbprint"))?;
    let key = app
        .keys
        .iter()
        .find(|k| k.sha1[..] == want[..] && k.end >= now && k.start <= now + 300)
        .ok_or_else(|| fail("the signing certificate is not a valid key of the application"))?;
    let verified = key
        .cert
        .public_key()
        .and_then(|pk| {
            let mut v = Verifier::new(MessageDigest::sha256(), &pk)?;
            v.update(format!("{h}.{p}").as_bytes())?;
            v.verify(&sig)
        })
        .unwrap_or(false);
    if !verified {
        return Err(fail("the signature does not match"));
    }
    if claims["aud"].as_str() != Some(PROOF_AUDIENCE) {
        return Err(fail(
            "the audience must be 00000002-0000-0000-c000-000000000000",
        ));
    }
    if claims["iss"].as_str().map(str::to_lowercase) != Some(app.id.to_string()) {
        return Err(fail("the issuer must be the application's object id"));
    }
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let nbf = claims["nbf"].as_i64().unwrap_or(i64::MAX);
    if exp + 300 < now || nbf - 300 > now {
        return Err(fail("the proof is outside its validity period"));
    }
    Ok(())
}

/// Handles `/applications…`, `/servicePrincipals…` and `/me`.
pub fn route(state: &SimState, req: &GraphRequest, s: &[&str]) -> GraphResponse {
    let Some(head) = s.first() else {
        return GraphResponse::bad_url("");
    };
    if head.eq_ignore_ascii_case("me") {
        return me(state, req, &s[1..]);
    }
    if head.to_ascii_lowercase().starts_with("applications") {
        return applications(state, req, s);
    }
    service_principals(state, req, s)
}

fn me(state: &SimState, req: &GraphRequest, rest: &[&str]) -> GraphResponse {
    let Some(user) = &req.claims.user else {
        return GraphResponse::error(
            400,
            "BadRequest",
            "/me request is only valid with delegated authentication flow.",
        );
    };
    if !rest.is_empty() || req.method != Method::Get {
        return GraphResponse::bad_url(rest.first().copied().unwrap_or("me"));
    }
    let dir = state.tenant.dir.read();
    match dir.users.iter().find(|u| u.id == user.oid && !u.deleted) {
        Some(u) => GraphResponse::ok(json!({
            "id": u.id.to_string(), "userPrincipalName": u.upn, "displayName": u.display_name,
        })),
        None => not_found(&user.oid.to_string()),
    }
}

fn applications(state: &SimState, req: &GraphRequest, s: &[&str]) -> GraphResponse {
    let reg = &state.registry;
    let now = now_ms() / 1000;
    let alt = alt_key(s[0], "applications");
    let id_seg = if alt.is_some() {
        None
    } else {
        s.get(1).copied()
    };
    let rest: &[&str] = if alt.is_some() {
        &s[1..]
    } else {
        s.get(2..).unwrap_or(&[])
    };
    if alt.is_none() && s.len() == 1 {
        return match req.method {
            Method::Post => create_app(state, req),
            Method::Get => {
                if !allowed(&req.claims, APP_READ) {
                    return denied();
                }
                let filter = match filter_app_id(req) {
                    Ok(f) => f,
                    Err(r) => return r,
                };
                let data = reg.data.lock();
                let value: Vec<Value> = data
                    .apps
                    .iter()
                    .filter(|a| filter.as_ref().is_none_or(|f| a.app_id.to_string() == *f))
                    .map(|a| app_json(state, a))
                    .collect();
                GraphResponse::ok(json!({
                    "@odata.context": format!("{}/$metadata#applications", state.graph()),
                    "value": value,
                }))
            }
            _ => GraphResponse::error(405, "Request_BadRequest", "Method not allowed."),
        };
    }
    let mut data = reg.data.lock();
    let pos = data.apps.iter().position(|a| match (&alt, id_seg) {
        (Some(app_id), _) => a.app_id.to_string() == *app_id,
        (None, Some(id)) => a.id.to_string() == id.to_lowercase(),
        _ => false,
    });
    let Some(pos) = pos else {
        return not_found(alt.as_deref().or(id_seg).unwrap_or(""));
    };
    let app = data.apps[pos].clone();
    match (req.method, rest) {
        (Method::Get, []) => {
            if !allowed(&req.claims, APP_READ) && !may_manage(&req.claims, &app, false) {
                return denied();
            }
            GraphResponse::ok(app_json(state, &app))
        }
        (Method::Patch, []) => {
            if !may_manage(&req.claims, &app, false) {
                return denied();
            }
            let body = match req.json() {
                Ok(b) => b,
                Err(r) => return r,
            };
            let mut updated = app.clone();
            if let Some(n) = body["displayName"].as_str() {
                updated.display_name = n.to_string();
            }
            if !body["requiredResourceAccess"].is_null() {
                updated.required = body["requiredResourceAccess"].clone();
            }
            if let Some(keys) = body["keyCredentials"].as_array() {
                let mut new_keys = Vec::new();
                for k in keys {
                    let existing = k["keyId"].as_str().and_then(|id| {
                        app.keys
                            .iter()
                            .find(|x| x.key_id.to_string() == id.to_lowercase())
                    });
                    match (existing, k["key"].is_null()) {
                        (Some(e), true) => new_keys.push(e.clone()),
                        _ => match parse_key(k, now, reg.delay_ms()) {
                            Ok(key) => new_keys.push(key),
                            Err(r) => return r,
                        },
                    }
                }
                updated.keys = new_keys;
            }
            data.apps[pos] = updated;
            GraphResponse::empty(204)
        }
        (Method::Delete, []) => {
            if !may_manage(&req.claims, &app, false) {
                return denied();
            }
            data.apps.remove(pos);
            let app_id = app.app_id.to_string();
            let sps: Vec<uuid::Uuid> = data
                .sps
                .iter()
                .filter(|x| x.app_id == app_id)
                .map(|x| x.id)
                .collect();
            data.sps.retain(|x| x.app_id != app_id);
            data.assignments
                .retain(|a| !sps.contains(&a.principal_id) && !sps.contains(&a.resource_id));
            drop(data);
            state.entra.unregister(app.app_id);
            GraphResponse::empty(204)
        }
        (Method::Post, [action]) if action.eq_ignore_ascii_case("addKey") => {
            if !may_manage(&req.claims, &app, true) {
                return denied();
            }
            let body = match req.json() {
                Ok(b) => b,
                Err(r) => return r,
            };
            if let Err(r) = check_proof(&app, body["proof"].as_str().unwrap_or(""), now) {
                return r;
            }
            if !body["passwordCredential"].is_null() {
                return bad(
                    "A passwordCredential is only allowed with a key of type X509CertAndPassword.",
                );
            }
            let key = match parse_key(&body["keyCredential"], now, reg.delay_ms()) {
                Ok(k) => k,
                Err(r) => return r,
            };
            if app
                .keys
                .iter()
                .any(|k| k.key_id == key.key_id || k.sha1 == key.sha1)
            {
                return bad("The key credential already exists on the application.");
            }
            let out = key_json(&key);
            data.apps[pos].keys.push(key);
            GraphResponse::ok(out)
        }
        (Method::Post, [action]) if action.eq_ignore_ascii_case("removeKey") => {
            if !may_manage(&req.claims, &app, true) {
                return denied();
            }
            let body = match req.json() {
                Ok(b) => b,
                Err(r) => return r,
            };
            if let Err(r) = check_proof(&app, body["proof"].as_str().unwrap_or(""), now) {
                return r;
            }
            let key_id = body["keyId"].as_str().unwrap_or("").to_lowercase();
            let before = data.apps[pos].keys.len();
            data.apps[pos]
                .keys
                .retain(|k| k.key_id.to_string() != key_id);
            if data.apps[pos].keys.len() == before {
                return not_found(&key_id);
            }
            GraphResponse::empty(204)
        }
        _ => GraphResponse::bad_url(rest.first().copied().unwrap_or("")),
    }
}

fn create_app(state: &SimState, req: &GraphRequest) -> GraphResponse {
    let claims = &req.claims;
    if !allowed(claims, APP_WRITE) {
        return denied();
    }
    let owners = match &claims.user {
        Some(u) => {
            let may = u.has_role(APP_ADMIN_ROLES)
                || u.has_role(&["cf1c38e5-3621-4004-a7cb-879624dced7c"])
                || state.registry.settings.read().users_can_register_apps;
            if !may {
                return denied();
            }
            vec![u.oid]
        }
        None => Vec::new(),
    };
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(name) = body["displayName"]
        .as_str()
        .filter(|n| !n.trim().is_empty())
    else {
        return bad("Property 'displayName' is required.");
    };
    let now = now_ms() / 1000;
    let mut keys = Vec::new();
    if let Some(list) = body["keyCredentials"].as_array() {
        for k in list {
            match parse_key(k, now, state.registry.delay_ms()) {
                Ok(key) => keys.push(key),
                Err(r) => return r,
            }
        }
    }
    let app = Application {
        id: uuid::Uuid::new_v4(),
        app_id: uuid::Uuid::new_v4(),
        display_name: name.to_string(),
        sign_in_audience: body["signInAudience"]
            .as_str()
            .unwrap_or("AzureADandPersonalMicrosoftAccount")
            .to_string(),
        required: if body["requiredResourceAccess"].is_null() {
            json!([])
        } else {
            body["requiredResourceAccess"].clone()
        },
        keys,
        owners,
        created_ms: now_ms(),
        visible_ms: now_ms().saturating_add(state.registry.delay_ms()),
    };
    let out = app_json(state, &app);
    state.registry.data.lock().apps.push(app);
    GraphResponse::json(201, out)
}

fn service_principals(state: &SimState, req: &GraphRequest, s: &[&str]) -> GraphResponse {
    let reg = &state.registry;
    let alt = alt_key(s[0], "servicePrincipals");
    if alt.is_none() && s.len() == 1 {
        return match req.method {
            Method::Post => create_sp(state, req),
            Method::Get => {
                if !allowed(&req.claims, APP_READ) {
                    return denied();
                }
                let filter = match filter_app_id(req) {
                    Ok(f) => f,
                    Err(r) => return r,
                };
                let data = reg.data.lock();
                let value: Vec<Value> = data
                    .sps
                    .iter()
                    .filter(|x| filter.as_ref().is_none_or(|f| x.app_id == *f))
                    .map(|x| sp_json(state, x))
                    .collect();
                GraphResponse::ok(json!({
                    "@odata.context": format!("{}/$metadata#servicePrincipals", state.graph()),
                    "value": value,
                }))
            }
            _ => GraphResponse::error(405, "Request_BadRequest", "Method not allowed."),
        };
    }
    let id_seg = if alt.is_some() {
        None
    } else {
        s.get(1).copied()
    };
    let rest: &[&str] = if alt.is_some() {
        &s[1..]
    } else {
        s.get(2..).unwrap_or(&[])
    };
    let mut data = reg.data.lock();
    let Some(sp) = data
        .sps
        .iter()
        .find(|x| match (&alt, id_seg) {
            (Some(app_id), _) => x.app_id == *app_id,
            (None, Some(id)) => x.id.to_string() == id.to_lowercase(),
            _ => false,
        })
        .cloned()
    else {
        return not_found(alt.as_deref().or(id_seg).unwrap_or(""));
    };
    match (req.method, rest) {
        (Method::Get, []) => {
            if !allowed(&req.claims, APP_READ) {
                return denied();
            }
            GraphResponse::ok(sp_json(state, &sp))
        }
        (Method::Get, [list]) => {
            if !allowed(&req.claims, APP_READ) {
                return denied();
            }
            let to = list.eq_ignore_ascii_case("appRoleAssignedTo");
            if !to && !list.eq_ignore_ascii_case("appRoleAssignments") {
                return GraphResponse::bad_url(list);
            }
            let value: Vec<Value> = data
                .assignments
                .iter()
                .filter(|a| {
                    if to {
                        a.resource_id == sp.id
                    } else {
                        a.principal_id == sp.id
                    }
                })
                .map(|a| assignment_json(&data, a))
                .collect();
            GraphResponse::ok(json!({"value": value}))
        }
        (Method::Post, [list])
            if list.eq_ignore_ascii_case("appRoleAssignedTo")
                || list.eq_ignore_ascii_case("appRoleAssignments") =>
        {
            let allowed_to_grant = match &req.claims.user {
                Some(u) => u.has_scope(GRANT[0]) && u.has_role(CONSENT_ROLES),
                None => allowed(&req.claims, GRANT),
            };
            if !allowed_to_grant {
                return denied();
            }
            let body = match req.json() {
                Ok(b) => b,
                Err(r) => return r,
            };
            let parse = |k: &str| body[k].as_str().and_then(|v| uuid::Uuid::parse_str(v).ok());
            let (Some(principal), Some(resource), Some(role)) = (
                parse("principalId"),
                parse("resourceId"),
                parse("appRoleId"),
            ) else {
                return bad("principalId, resourceId and appRoleId are required GUIDs.");
            };
            let to = list.eq_ignore_ascii_case("appRoleAssignedTo");
            if (to && resource != sp.id) || (!to && principal != sp.id) {
                return bad(
                    "The service principal in the URL must be the resource (appRoleAssignedTo) or the principal (appRoleAssignments) of the assignment.",
                );
            }
            let Some(res) = data.sps.iter().find(|x| x.id == resource).cloned() else {
                return not_found(&resource.to_string());
            };
            if !data.sps.iter().any(|x| x.id == principal) {
                return not_found(&principal.to_string());
            }
            let role_s = role.to_string();
            let exists = res.app_roles.as_array().is_some_and(|roles| {
                roles
                    .iter()
                    .any(|r| r["id"].as_str() == Some(role_s.as_str()))
            });
            if !exists {
                return bad(&format!(
                    "Permission being assigned was not found on application '{}'.",
                    res.app_id
                ));
            }
            if data.assignments.iter().any(|a| {
                a.principal_id == principal && a.resource_id == resource && a.app_role_id == role_s
            }) {
                return bad("Permission being assigned already exists on the object.");
            }
            let mut raw = [0u8; 24];
            if openssl::rand::rand_bytes(&mut raw).is_err() {
                return GraphResponse::error(500, "InternalServerError", "no randomness");
            }
            let a = Assignment {
                id: URL_SAFE_NO_PAD.encode(raw),
                principal_id: principal,
                resource_id: resource,
                app_role_id: role_s,
                created: now_ms() / 1000,
            };
            let out = assignment_json(&data, &a);
            data.assignments.push(a);
            GraphResponse::json(201, out)
        }
        _ => GraphResponse::bad_url(rest.first().copied().unwrap_or("")),
    }
}

fn create_sp(state: &SimState, req: &GraphRequest) -> GraphResponse {
    if !allowed(&req.claims, APP_WRITE) {
        return denied();
    }
    let body = match req.json() {
        Ok(b) => b,
        Err(r) => return r,
    };
    let app_id = body["appId"].as_str().unwrap_or("").to_lowercase();
    let mut data = state.registry.data.lock();
    let Some(app) = data
        .apps
        .iter()
        .find(|a| a.app_id.to_string() == app_id)
        .cloned()
    else {
        return bad(&format!(
            "The appId '{app_id}' of the service principal does not reference a valid application object."
        ));
    };
    if let Some(u) = &req.claims.user {
        if !app.owners.contains(&u.oid) && !u.has_role(APP_ADMIN_ROLES) {
            return denied();
        }
    }
    if data.sps.iter().any(|x| x.app_id == app_id) {
        return GraphResponse::error(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            "The service principal cannot be created, updated, or restored because the service principal name already exists.",
        );
    }
    let sp = ServicePrincipal {
        id: uuid::Uuid::new_v4(),
        app_id,
        display_name: app.display_name.clone(),
        app_roles: json!([]),
        created_ms: now_ms(),
    };
    let out = sp_json(state, &sp);
    data.sps.push(sp);
    GraphResponse::json(201, out)
}
