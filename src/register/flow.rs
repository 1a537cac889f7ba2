//! "Register the app for me" from start to end: a certificate made here and a sign-in code
//! ([`begin`]), then, once the admin signed in, the app created with the delegated token, which
//! is dropped right after ([`Pending::create`]), then waiting until the app signs in
//! ([`Created::wait_ready`]).

use std::path::{Path, PathBuf};

use super::app::{self, RegisterOptions, Registration, Step};
use super::cert::GeneratedCert;
use super::device::{self, DeviceCode};
use super::error::RegisterError;
use super::http::{Delegated, Http};
use super::record::{self, AppRecord};

/// A registration waiting for the admin to sign in.
pub struct Pending {
    http: Http,
    opts: RegisterOptions,
    cert: GeneratedCert,
    code: DeviceCode,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("code", &self.code)
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

/// Makes the key and certificate (on a blocking thread) and asks for a sign-in code.
///
/// # Errors
/// Certificate generation, or the sign-in service refused or could not be reached.
pub async fn begin(opts: RegisterOptions) -> Result<Pending, RegisterError> {
    let cn = opts.display_name.clone();
    let days = opts.cert_days;
    let cert = tokio::task::spawn_blocking(move || super::cert::generate(&cn, days))
        .await
        .map_err(|e| RegisterError::Certificate(format!("key generation stopped: {e}")))??;
    let http = Http::new(opts.cloud.clone(), opts.extra_ca_pem.as_deref())?;
    let code = device::start(&http, &opts.public_client_id, &opts.scopes()).await?;
    Ok(Pending {
        http,
        opts,
        cert,
        code,
    })
}

impl Pending {
    /// What to show the admin: the code and the sign-in page.
    #[must_use]
    pub fn code(&self) -> &DeviceCode {
        &self.code
    }

    /// The certificate made for the app.
    #[must_use]
    pub fn certificate(&self) -> &GeneratedCert {
        &self.cert
    }

    /// Waits for the admin's sign-in, then creates the application, its service principal and
    /// its consent with the admin's token, which is discarded when this returns. Remembers the
    /// application's object id in `data_dir` (for renewals).
    ///
    /// # Errors
    /// Declined, expired code, blocked consent, not an admin, or a Graph failure.
    pub async fn create(
        self,
        data_dir: Option<&Path>,
        progress: &(dyn Fn(Step) + Send + Sync),
    ) -> Result<Created, RegisterError> {
        let signed_in = device::wait(&self.http, &self.opts.public_client_id, &self.code).await?;
        let mut graph = Delegated::new(self.http.clone(), signed_in.token);
        if let Ok(me) = graph
            .call(reqwest::Method::GET, "/me?$select=userPrincipalName", None)
            .await
        {
            graph.account = me["userPrincipalName"].as_str().unwrap_or("").to_owned();
        }
        let created = app::create(&graph, &self.opts, &self.cert, progress).await;
        drop(graph);
        let (tenant_id, app_id, object_id) = created?;
        if let Some(dir) = data_dir {
            record::put(
                dir,
                &app_id,
                AppRecord {
                    tenant_id: tenant_id.clone(),
                    object_id: object_id.clone(),
                },
            )?;
        }
        Ok(Created {
            opts: self.opts,
            cert: self.cert,
            tenant_id,
            app_id,
            object_id,
        })
    }
}

/// An application created and consented, maybe not yet able to sign in.
#[derive(Clone, Debug)]
pub struct Created {
    opts: RegisterOptions,
    cert: GeneratedCert,
    /// Directory (tenant) id.
    pub tenant_id: String,
    /// Application (client) id.
    pub app_id: String,
    /// The application's object id.
    pub object_id: String,
}

impl Created {
    /// Waits (with backoff, up to the options' timeout) until the app signs in with every
    /// permission; may be called again after [`RegisterError::NotReady`].
    ///
    /// # Errors
    /// [`RegisterError::NotReady`] or a refusal waiting cannot cure.
    pub async fn wait_ready(&self) -> Result<Registration, RegisterError> {
        let creds = self.cert.credentials();
        let granted =
            app::wait_until_ready(&self.opts, &self.tenant_id, &self.app_id, &creds).await?;
        Ok(Registration {
            tenant_id: self.tenant_id.clone(),
            app_id: self.app_id.clone(),
            object_id: self.object_id.clone(),
            display_name: self.opts.display_name.clone(),
            thumbprint: self.cert.thumbprint.clone(),
            not_after: self.cert.not_after,
            granted,
            credentials: creds,
        })
    }
}

/// [`begin`], hand the code to `on_code`, [`Pending::create`], [`Created::wait_ready`]: the
/// whole registration for callers that wait (the command line, tests).
///
/// # Errors
/// As the steps.
pub async fn register(
    opts: RegisterOptions,
    data_dir: Option<PathBuf>,
    on_code: impl FnOnce(&DeviceCode),
    progress: &(dyn Fn(Step) + Send + Sync),
) -> Result<Registration, RegisterError> {
    let pending = begin(opts).await?;
    on_code(pending.code());
    let created = pending.create(data_dir.as_deref(), progress).await?;
    progress(Step::WaitingForReplication);
    created.wait_ready().await
}
