//! Registering the app with the admin's delegated token: the application with its permissions
//! and certificate, its service principal, admin consent (one app role assignment per
//! permission), then waiting, with backoff, until the new app signs in with all of them.

use std::path::PathBuf;
use std::time::Duration;

use backhome_graph::{AuthError, Client, ClientConfig, Cloud, Credential, Error as ClientError};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::cert::GeneratedCert;
use super::error::RegisterError;
use super::http::{CallError, Delegated};
use super::permissions::{GRAPH_APP_ID, REQUIRED};
use crate::task::Credentials;

/// How to register (and renew): cloud, sign-in client, names, patience.
#[derive(Clone, Debug)]
pub struct RegisterOptions {
    /// The cloud (or explicit endpoints).
    pub cloud: Cloud,
    /// An extra CA certificate (PEM) to trust.
    pub extra_ca_pem: Option<PathBuf>,
    /// The public client the admin signs in through.
    pub public_client_id: String,
    /// Display name of the new application.
    pub display_name: String,
    /// Validity of the certificate, in days.
    pub cert_days: u32,
    /// How long to wait for a new app or key to replicate.
    pub ready_timeout: Duration,
    /// The first pause between sign-in attempts while waiting (doubles, at most 30 s).
    pub first_backoff: Duration,
}

impl RegisterOptions {
    /// Defaults for `cloud`: Microsoft Graph Command Line Tools as sign-in client, a two-year
    /// certificate, up to five minutes for replication.
    #[must_use]
    pub fn new(cloud: Cloud) -> Self {
        Self {
            cloud,
            extra_ca_pem: None,
            public_client_id: super::device::DEFAULT_PUBLIC_CLIENT_ID.into(),
            display_name: "Backhome for Microsoft 365".into(),
            cert_days: super::cert::DEFAULT_DAYS,
            ready_timeout: Duration::from_secs(300),
            first_backoff: Duration::from_secs(2),
        }
    }

    /// The delegated scopes the admin is asked for: create apps, grant app roles, read the
    /// organisation (tenant id).
    #[must_use]
    pub fn scopes(&self) -> Vec<String> {
        let scope = self.cloud.scope();
        let graph = scope.trim_end_matches("/.default");
        [
            "Application.ReadWrite.All",
            "AppRoleAssignment.ReadWrite.All",
            "User.Read",
        ]
        .iter()
        .map(|s| format!("{graph}/{s}"))
        .collect()
    }
}

/// A registered application, ready for a task.
#[derive(Clone, Serialize)]
pub struct Registration {
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id.
    pub app_id: String,
    /// The application's object id (needed to roll its keys).
    pub object_id: String,
    /// Display name.
    pub display_name: String,
    /// The certificate's thumbprint.
    pub thumbprint: String,
    /// End of the certificate's validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The permissions its token carries.
    pub granted: Vec<String>,
    /// The `.pfx` and its password.
    #[serde(skip)]
    pub credentials: Credentials,
}

impl std::fmt::Debug for Registration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registration")
            .field("tenant_id", &self.tenant_id)
            .field("app_id", &self.app_id)
            .field("thumbprint", &self.thumbprint)
            .finish_non_exhaustive()
    }
}

/// Steps of a registration, for progress reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Creating the application with its certificate and permissions.
    CreatingApplication,
    /// Creating its service principal.
    CreatingServicePrincipal,
    /// Granting admin consent.
    GrantingConsent,
    /// Waiting until the new app can sign in.
    WaitingForReplication,
}

fn str_field(v: &Value, k: &str, what: &'static str) -> Result<String, RegisterError> {
    v[k].as_str()
        .map(str::to_owned)
        .ok_or_else(|| RegisterError::Malformed {
            what,
            detail: format!("no {k}"),
        })
}

fn refused(e: CallError, step: &'static str, account: &str) -> RegisterError {
    match e {
        CallError::Graph(g) if g.status == 403 || g.has_code("Authorization_RequestDenied") => {
            RegisterError::NotAdmin {
                account: account.to_owned(),
                step,
                graph: g,
            }
        }
        other => other.during(step),
    }
}

/// Creates the application, its service principal and its consent. On a refusal after the
/// application exists, the application is deleted again so nothing half-made stays behind.
pub(crate) async fn create(
    graph: &Delegated,
    opts: &RegisterOptions,
    cert: &GeneratedCert,
    progress: &(dyn Fn(Step) + Send + Sync),
) -> Result<(String, String, String), RegisterError> {
    let org = graph
        .call(Method::GET, "/organization?$select=id,displayName", None)
        .await
        .map_err(|e| refused(e, "read the organisation", &graph.account))?;
    let tenant_id = org["value"][0]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| RegisterError::Malformed {
            what: "Microsoft Graph",
            detail: "no organisation id".into(),
        })?;
    progress(Step::CreatingApplication);
    let body = json!({
        "displayName": opts.display_name,
        "signInAudience": "AzureADMyOrg",
        "requiredResourceAccess": [{
            "resourceAppId": GRAPH_APP_ID,
            "resourceAccess": REQUIRED.iter().map(|p| json!({"id": p.id, "type": "Role"})).collect::<Vec<_>>(),
        }],
        "keyCredentials": [cert.key_credential(&format!("CN={} (Backhome NAS)", opts.display_name))],
    });
    let app = graph
        .call(Method::POST, "/applications", Some(&body))
        .await
        .map_err(|e| refused(e, "create applications", &graph.account))?;
    let object_id = str_field(&app, "id", "Microsoft Graph")?;
    let app_id = str_field(&app, "appId", "Microsoft Graph")?;
    match consent(graph, &app_id, progress).await {
        Ok(()) => Ok((tenant_id, app_id, object_id)),
        Err(e) => {
            let path = format!("/applications/{object_id}");
            if let Err(cleanup) = graph.call(Method::DELETE, &path, None).await {
                tracing::warn!(
                    app_id,
                    error = %cleanup.during("delete the half-registered application"),
                    "the half-registered application could not be deleted"
                );
            }
            Err(e)
        }
    }
}

async fn consent(
    graph: &Delegated,
    app_id: &str,
    progress: &(dyn Fn(Step) + Send + Sync),
) -> Result<(), RegisterError> {
    progress(Step::CreatingServicePrincipal);
    let sp = settle(graph, "/servicePrincipals", &json!({"appId": app_id}))
        .await
        .map_err(|e| {
            refused(
                e,
                "create the application's service principal",
                &graph.account,
            )
        })?;
    let sp_id = str_field(&sp, "id", "Microsoft Graph")?;
    progress(Step::GrantingConsent);
    let path = format!("/servicePrincipals?$filter=appId eq '{GRAPH_APP_ID}'&$select=id,appRoles");
    let graph_sp = graph.call(Method::GET, &path, None).await.map_err(|e| {
        refused(
            e,
            "find Microsoft Graph's service principal",
            &graph.account,
        )
    })?;
    let graph_sp = &graph_sp["value"][0];
    let graph_sp_id = str_field(graph_sp, "id", "Microsoft Graph")?;
    let offered: Vec<(&str, &str)> = graph_sp["appRoles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| Some((r["id"].as_str()?, r["value"].as_str()?)))
                .collect()
        })
        .unwrap_or_default();
    for p in REQUIRED {
        if !offered
            .iter()
            .any(|(id, value)| id.eq_ignore_ascii_case(p.id) && *value == p.name)
        {
            return Err(RegisterError::Malformed {
                what: "Microsoft Graph's service principal",
                detail: format!("it offers no app role {} with id {}", p.name, p.id),
            });
        }
        let body = json!({"principalId": sp_id, "resourceId": graph_sp_id, "appRoleId": p.id});
        let path = format!("/servicePrincipals/{graph_sp_id}/appRoleAssignedTo");
        match settle(graph, &path, &body).await {
            Ok(_) => {}
            Err(CallError::Graph(g)) if g.message.contains("already exists") => {}
            Err(e) => {
                return Err(refused(
                    e,
                    "grant admin consent for application permissions",
                    &graph.account,
                ));
            }
        }
    }
    Ok(())
}

/// Whether Graph's refusal may just mean that an object made a moment ago is not visible yet.
fn not_visible_yet(g: &backhome_graph::GraphError) -> bool {
    let m = g.message.to_ascii_lowercase();
    g.status == 404
        || (g.status == 400
            && (m.contains("does not exist")
                || m.contains("does not reference")
                || m.contains("not found")))
}

/// POSTs `body` to `path`, trying again for about half a minute while Graph does not see an
/// object created a moment ago (directory replication).
async fn settle(graph: &Delegated, path: &str, body: &Value) -> Result<Value, CallError> {
    let mut pause = Duration::from_millis(500);
    loop {
        match graph.call(Method::POST, path, Some(body)).await {
            Err(CallError::Graph(g)) if not_visible_yet(&g) && pause <= Duration::from_secs(16) => {
                tracing::info!(
                    path,
                    "Graph does not see a new object yet ({g}); retrying in {pause:?}"
                );
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            other => return other,
        }
    }
}

/// Whether a sign-in refusal may just mean "not replicated yet".
fn replication_lag(e: &ClientError) -> bool {
    match e {
        ClientError::Auth(a) => match a {
            AuthError::AppNotFound { .. } | AuthError::CertificateRejected { .. } => true,
            AuthError::Other { codes, .. } => {
                codes.contains("AADSTS7000229") || codes.contains("AADSTS65001")
            }
            other => other.is_temporary(),
        },
        other => matches!(
            other.class(),
            backhome_graph::ErrorClass::Temporary | backhome_graph::ErrorClass::Throttled { .. }
        ),
    }
}

/// Signs in as the app with `creds` until its token carries every required permission, waiting
/// with backoff while Entra ID has not replicated the app or key yet, at most
/// `opts.ready_timeout`. Returns the granted permissions.
///
/// # Errors
/// [`RegisterError::NotReady`] when time ran out; a refusal that waiting cannot cure at once.
pub async fn wait_until_ready(
    opts: &RegisterOptions,
    tenant_id: &str,
    app_id: &str,
    creds: &Credentials,
) -> Result<Vec<String>, RegisterError> {
    let started = tokio::time::Instant::now();
    let mut pause = opts.first_backoff;
    loop {
        let mut config = ClientConfig::new(opts.cloud.clone(), tenant_id, app_id);
        config.extra_ca_pem.clone_from(&opts.extra_ca_pem);
        // Each attempt is one request: this loop does the waiting.
        config.retry.max_attempts = 1;
        let credential = Credential::from_pkcs12_der(&creds.pfx, &creds.password)?;
        let client = Client::new(config, credential)?;
        let last = match client.sign_in().await {
            Ok(info) => {
                let roles = info.roles.unwrap_or_default();
                let missing = super::permissions::missing(&roles);
                if missing.is_empty() {
                    return Ok(roles);
                }
                // Consent replicates too: a token may come before all its roles do.
                format!("the token lacks {}", missing.join(", "))
            }
            Err(e) if replication_lag(&e) => e.to_string(),
            Err(e) => return Err(e.into()),
        };
        let waited = started.elapsed();
        if waited + pause > opts.ready_timeout {
            if last.starts_with("the token lacks") {
                return Err(RegisterError::MissingPermissions {
                    missing: last.trim_start_matches("the token lacks ").to_owned(),
                });
            }
            return Err(RegisterError::NotReady { waited, last });
        }
        tracing::info!(
            app_id,
            "the new application cannot sign in yet ({last}); retrying in {pause:?}"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}
