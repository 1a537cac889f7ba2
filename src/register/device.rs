//! The OAuth 2.0 device authorization grant: a code the admin enters on any device, and polling
//! until they signed in, as Microsoft documents it (`authorization_pending` → wait `interval`,
//! `slow_down` → wait five seconds more, `authorization_declined`, `expired_token`).

use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;

use super::error::RegisterError;
use super::http::Http;

/// The public client that signs the admin in: Microsoft Graph Command Line Tools, the
/// multi-tenant public client Microsoft's own Graph PowerShell uses for the device code flow.
pub const DEFAULT_PUBLIC_CLIENT_ID: &str = "14d82eec-204b-4c2f-b7e8-296a70dab67e";

/// What the admin needs to sign in, and the code the NAS polls with.
#[derive(Clone, Serialize)]
pub struct DeviceCode {
    /// The code to enter on the sign-in page.
    pub user_code: String,
    /// The sign-in page.
    pub verification_uri: String,
    /// When the code expires.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Microsoft's instructions, ready to show.
    pub message: String,
    #[serde(skip)]
    device_code: String,
    #[serde(skip)]
    interval: Duration,
    #[serde(skip)]
    lifetime: Duration,
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCode")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A delegated sign-in: the access token (never stored) and the tenant it belongs to.
pub(crate) struct SignedIn {
    pub(crate) token: String,
}

fn entra_refusal(json: &Value) -> (String, Vec<u64>, String) {
    let error = json["error"].as_str().unwrap_or("").to_owned();
    let codes = json["error_codes"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default();
    let description = json["error_description"]
        .as_str()
        .and_then(|d| d.lines().next())
        .unwrap_or("")
        .trim()
        .to_owned();
    (error, codes, description)
}

fn refused(json: &Value) -> RegisterError {
    let (error, codes, description) = entra_refusal(json);
    if let Some(&code) = codes
        .iter()
        .find(|c| matches!(c, 65_001 | 65_004 | 90_094 | 90_095 | 53_003))
    {
        return RegisterError::ConsentBlocked { code };
    }
    RegisterError::SignIn {
        error,
        codes: codes
            .iter()
            .map(|c| format!("AADSTS{c}"))
            .collect::<Vec<_>>()
            .join(","),
        description,
    }
}

/// Asks for a device code for `scopes` (organizations endpoint: the admin's sign-in decides the
/// tenant).
pub(crate) async fn start(
    http: &Http,
    client_id: &str,
    scopes: &[String],
) -> Result<DeviceCode, RegisterError> {
    let url = format!(
        "{}/organizations/oauth2/v2.0/devicecode",
        http.cloud.login()
    );
    let scope = scopes.join(" ");
    let (status, json) = http
        .post_form(&url, &[("client_id", client_id), ("scope", &scope)])
        .await?;
    if status != 200 {
        return Err(refused(&json));
    }
    let text = |k: &str| {
        json[k]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| RegisterError::Malformed {
                what: "the device code endpoint",
                detail: format!("no {k}"),
            })
    };
    let secs = |k: &str, default: u64| json[k].as_u64().unwrap_or(default);
    let lifetime = Duration::from_secs(secs("expires_in", 900));
    Ok(DeviceCode {
        user_code: text("user_code")?,
        verification_uri: text("verification_uri")?,
        message: json["message"].as_str().unwrap_or("").to_owned(),
        device_code: text("device_code")?,
        interval: Duration::from_secs(secs("interval", 5).max(1)),
        expires_at: OffsetDateTime::now_utc()
            + time::Duration::try_from(lifetime).unwrap_or(time::Duration::minutes(15)),
        lifetime,
    })
}

/// Polls until the admin signed in, declined, or the code expired.
pub(crate) async fn wait(
    http: &Http,
    client_id: &str,
    code: &DeviceCode,
) -> Result<SignedIn, RegisterError> {
    let url = format!("{}/organizations/oauth2/v2.0/token", http.cloud.login());
    let mut interval = code.interval;
    let minutes = code.lifetime.as_secs().div_ceil(60);
    loop {
        tokio::time::sleep(interval).await;
        let (status, json) = http
            .post_form(
                &url,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", client_id),
                    ("device_code", &code.device_code),
                ],
            )
            .await?;
        if status == 200 {
            let token = json["access_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| RegisterError::Malformed {
                    what: "the Microsoft sign-in service",
                    detail: "no access_token".into(),
                })?
                .to_owned();
            return Ok(SignedIn { token });
        }
        match json["error"].as_str().unwrap_or("") {
            "authorization_pending" => {}
            "slow_down" => interval += Duration::from_secs(5),
            "authorization_declined" | "access_denied" => return Err(RegisterError::Declined),
            "expired_token" => return Err(RegisterError::CodeExpired { minutes }),
            "temporarily_unavailable" => interval += Duration::from_secs(1),
            _ if status >= 500 => interval += Duration::from_secs(1),
            _ => return Err(refused(&json)),
        }
        if OffsetDateTime::now_utc() > code.expires_at + time::Duration::minutes(1) {
            return Err(RegisterError::CodeExpired { minutes });
        }
    }
}
