//! The OAuth 2.0 device authorization grant: `POST /{tenant}/oauth2/v2.0/devicecode`, polling
//! the token endpoint with `urn:ietf:params:oauth:grant-type:device_code`, and the control
//! operations that play the user on the other device (approve as a chosen user with chosen
//! directory roles, or decline).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::auth::{EntraError, err};
use crate::state::SimState;
use crate::time_fmt::now_ms;

/// The device-code grant type.
pub const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

#[derive(Clone, Debug)]
enum Outcome {
    Waiting,
    Approved {
        oid: uuid::Uuid,
        upn: String,
        wids: Vec<String>,
    },
    Declined,
    Redeemed,
}

#[derive(Clone, Debug)]
struct Pending {
    device_code: String,
    user_code: String,
    client_id: String,
    scopes: Vec<String>,
    expires_ms: i64,
    interval: i64,
    last_poll_ms: Option<i64>,
    outcome: Outcome,
}

/// Device codes handed out and what became of them.
#[derive(Default)]
pub struct DeviceFlows {
    pending: Mutex<Vec<Pending>>,
}

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    // A failure leaves zeros; the simulator's codes only need to be unique per test.
    if openssl::rand::rand_bytes(&mut b).is_err() {
        let t = now_ms().to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = t[i % t.len()].wrapping_add(i as u8);
        }
    }
    b
}

fn user_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    random(9)
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

fn get<'a>(form: &'a [(String, String)], k: &str) -> Option<&'a str> {
    form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

fn missing(param: &str) -> EntraError {
    err(
        400,
        "invalid_request",
        900_144,
        format!("The request body must contain the following parameter: '{param}'."),
    )
}

fn check_tenant(state: &SimState, tenant: &str) -> Result<(), EntraError> {
    let alias = matches!(
        tenant.to_ascii_lowercase().as_str(),
        "organizations" | "common"
    );
    if alias || state.entra.is_tenant(tenant) {
        return Ok(());
    }
    Err(err(
        400,
        "invalid_request",
        90_002,
        format!(
            "Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        ),
    ))
}

/// Handles `POST /{tenant}/oauth2/v2.0/devicecode`.
///
/// # Errors
/// The Entra error to answer with.
pub fn start(
    state: &SimState,
    tenant: &str,
    form: &[(String, String)],
) -> Result<Value, EntraError> {
    check_tenant(state, tenant)?;
    let client_id = get(form, "client_id").ok_or_else(|| missing("client_id"))?;
    if uuid::Uuid::parse_str(client_id).is_err() {
        return Err(err(
            400,
            "unauthorized_client",
            700_016,
            format!("Application with identifier '{client_id}' was not found in the directory."),
        ));
    }
    let scope = get(form, "scope").ok_or_else(|| missing("scope"))?;
    let scopes: Vec<String> = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if scopes.is_empty() {
        return Err(missing("scope"));
    }
    let settings = state.registry.settings.read().clone();
    let pending = Pending {
        device_code: URL_SAFE_NO_PAD.encode(random(48)),
        user_code: user_code(),
        client_id: client_id.to_string(),
        scopes,
        expires_ms: now_ms() + settings.device_expires_in * 1000,
        interval: settings.device_interval.max(1),
        last_poll_ms: None,
        outcome: Outcome::Waiting,
    };
    let uri = "https://microsoft.com/devicelogin";
    let out = json!({
        "user_code": pending.user_code,
        "device_code": pending.device_code,
        "verification_uri": uri,
        "expires_in": settings.device_expires_in,
        "interval": pending.interval,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {} to authenticate.", pending.user_code),
    });
    state.device.pending.lock().push(pending);
    Ok(out)
}

/// Handles a token request with the device-code grant.
///
/// # Errors
/// `authorization_pending`, `slow_down`, `authorization_declined`, `expired_token`,
/// `bad_verification_code`, or AADSTS65001 when a policy blocks consent.
pub fn redeem(
    state: &SimState,
    tenant: &str,
    form: &[(String, String)],
) -> Result<Value, EntraError> {
    check_tenant(state, tenant)?;
    let client_id = get(form, "client_id").ok_or_else(|| missing("client_id"))?;
    let code = get(form, "device_code").ok_or_else(|| missing("device_code"))?;
    let now = now_ms();
    let mut all = state.device.pending.lock();
    let Some(p) = all
        .iter_mut()
        .find(|p| p.device_code == code && p.client_id.eq_ignore_ascii_case(client_id))
    else {
        return Err(err(
            400,
            "bad_verification_code",
            70_000,
            "The provided value for the input parameter 'device_code' is not valid.",
        ));
    };
    if now > p.expires_ms && !matches!(p.outcome, Outcome::Redeemed) {
        return Err(err(
            400,
            "expired_token",
            70_019,
            "The provided value for the 'device_code' parameter has expired. The user must sign in again.",
        ));
    }
    let last = p.last_poll_ms.replace(now);
    match p.outcome.clone() {
        Outcome::Waiting => {
            // 200 ms of tolerance for timers that fire a little early.
            if last.is_some_and(|l| now - l < p.interval * 1000 - 200) {
                return Err(err(
                    400,
                    "slow_down",
                    70_016,
                    "The client is polling too often; wait at least the interval between requests.",
                ));
            }
            Err(err(
                400,
                "authorization_pending",
                70_016,
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            ))
        }
        Outcome::Declined => Err(err(
            400,
            "authorization_declined",
            70_000,
            "The end user declined the authorization request.",
        )),
        Outcome::Redeemed => Err(err(
            400,
            "invalid_grant",
            54_005,
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.",
        )),
        Outcome::Approved { oid, upn, wids } => {
            p.outcome = Outcome::Redeemed;
            if state.registry.settings.read().consent_blocked {
                return Err(err(
                    400,
                    "invalid_grant",
                    65_001,
                    format!(
                        "The user or administrator has not consented to use the application with ID '{}'. Send an interactive authorization request for this user and resource. A tenant policy blocks consent to this application.",
                        p.client_id
                    ),
                ));
            }
            let scp: Vec<String> = p
                .scopes
                .iter()
                .filter(|s| {
                    !matches!(
                        s.as_str(),
                        "openid" | "profile" | "offline_access" | "email"
                    )
                })
                .map(|s| s.rsplit('/').next().unwrap_or(s).to_string())
                .collect();
            let lifetime = *state.entra.token_lifetime.read();
            let token =
                state
                    .entra
                    .issue_delegated(&p.client_id, (oid, &upn), &scp, &wids, lifetime);
            let mut out = json!({
                "token_type": "Bearer",
                "scope": scp.join(" "),
                "expires_in": lifetime,
                "ext_expires_in": lifetime,
                "access_token": token,
            });
            if p.scopes.iter().any(|s| s == "offline_access") {
                out["refresh_token"] = Value::String(URL_SAFE_NO_PAD.encode(random(32)));
            }
            Ok(out)
        }
    }
}

/// Plays the user: approves `user_code` as `user` (UPN or id; the first member when `None`)
/// holding the directory `roles` (names or template ids).
///
/// # Errors
/// Unknown code, user or role.
pub fn approve(
    state: &SimState,
    code: &str,
    user: Option<&str>,
    roles: &[String],
) -> Result<Value, String> {
    let (oid, upn) = {
        let dir = state.tenant.dir.read();
        let found = match user {
            Some(key) => dir.users.iter().find(|u| {
                !u.deleted
                    && (u.upn.eq_ignore_ascii_case(key) || u.id.to_string() == key.to_lowercase())
            }),
            None => dir.users.iter().find(|u| !u.deleted),
        };
        let u = found.ok_or_else(|| format!("no user {}", user.unwrap_or("(any)")))?;
        (u.id, u.upn.clone())
    };
    let mut wids = Vec::new();
    for r in roles {
        let id = crate::msgraph::directory_role(r)
            .ok_or_else(|| format!("unknown directory role {r}"))?;
        wids.push(id.to_string());
    }
    set(
        state,
        code,
        Outcome::Approved {
            oid,
            upn: upn.clone(),
            wids: wids.clone(),
        },
    )?;
    Ok(json!({"user": upn, "oid": oid.to_string(), "wids": wids}))
}

/// Plays the user declining `user_code`.
///
/// # Errors
/// Unknown code.
pub fn decline(state: &SimState, code: &str) -> Result<(), String> {
    set(state, code, Outcome::Declined)
}

fn set(state: &SimState, code: &str, outcome: Outcome) -> Result<(), String> {
    let mut all = state.device.pending.lock();
    let p = all
        .iter_mut()
        .find(|p| p.user_code.eq_ignore_ascii_case(code))
        .ok_or_else(|| format!("no device code with user code {code}"))?;
    if now_ms() > p.expires_ms {
        return Err(format!("the code {code} has expired"));
    }
    if !matches!(p.outcome, Outcome::Waiting) {
        return Err(format!("the code {code} was already used"));
    }
    p.outcome = outcome;
    Ok(())
}

/// The codes handed out, newest last: user code, client, scopes, seconds left, state.
#[must_use]
pub fn list(state: &SimState) -> Value {
    let now = now_ms();
    let all = state.device.pending.lock();
    Value::Array(
        all.iter()
            .map(|p| {
                json!({
                    "user_code": p.user_code,
                    "client_id": p.client_id,
                    "scope": p.scopes.join(" "),
                    "expires_in": (p.expires_ms - now).max(0) / 1000,
                    "state": match p.outcome {
                        Outcome::Waiting => "pending",
                        Outcome::Approved { .. } => "approved",
                        Outcome::Declined => "declined",
                        Outcome::Redeemed => "redeemed",
                    },
                })
            })
            .collect(),
    )
}
