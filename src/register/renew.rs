//! Renewing a task's certificate without downtime: a new key is made here and added to the
//! application (`addKey`, proving possession of the current key), the task switches to it only
//! once it signs in, and only then is the old key removed (`removeKey`). Backups keep working
//! with the old key until the switch and with the new one after it.

use std::path::{Path, PathBuf};

use backhome_graph::{Call, Cloud, Credential};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;

use super::app::{RegisterOptions, wait_until_ready};
use super::cert::{self, GeneratedCert};
use super::error::RegisterError;
use crate::task::{Credentials, TaskSpec, TaskStore};

/// What a renewal did.
#[derive(Clone, Debug, Serialize)]
pub struct Renewal {
    /// The new certificate's thumbprint.
    pub thumbprint: String,
    /// Its end of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// The replaced certificate's thumbprint.
    pub old_thumbprint: String,
    /// Whether the old key was removed from the application.
    pub old_removed: bool,
    /// What the admin should still do, if anything.
    pub note: Option<String>,
}

/// Registration options matching a task's cloud or endpoints.
///
/// # Errors
/// An unknown cloud or bad endpoints.
pub fn options_for(spec: &TaskSpec) -> Result<RegisterOptions, RegisterError> {
    let cloud = match (&spec.login_endpoint, &spec.graph_endpoint) {
        (Some(login), Some(graph)) => Cloud::custom(login, graph)?,
        _ => spec.cloud.parse::<Cloud>()?,
    };
    let mut opts = RegisterOptions::new(cloud);
    opts.extra_ca_pem.clone_from(&spec.ca_cert);
    Ok(opts)
}

fn post(path: String, body: &serde_json::Value) -> Result<Call, RegisterError> {
    Ok(Call::post_json(path, body)?)
}

/// Renews the certificate of the app `spec` uses, whose application object id is `object_id`.
/// `commit` stores the new credentials once they work; the old key is removed after it
/// returned `Ok`.
///
/// # Errors
/// The current certificate cannot prove possession (expired: register again), Graph refused,
/// or the new key did not start working in time (the old one then stays, nothing changes).
pub async fn renew<F>(
    spec: &TaskSpec,
    creds: &Credentials,
    object_id: &str,
    opts: &RegisterOptions,
    commit: impl FnOnce(Credentials) -> F,
) -> Result<Renewal, RegisterError>
where
    F: Future<Output = Result<(), RegisterError>>,
{
    let old = Credential::from_pkcs12_der(&creds.pfx, &creds.password)?;
    let cn = opts.display_name.clone();
    let days = opts.cert_days;
    let new: GeneratedCert = tokio::task::spawn_blocking(move || cert::generate(&cn, days))
        .await
        .map_err(|e| RegisterError::Certificate(format!("key generation stopped: {e}")))??;
    let client = crate::connect::client(spec, creds)?;
    let body = json!({
        "keyCredential": new.key_credential(&format!("CN={} (Backhome NAS)", opts.display_name)),
        "passwordCredential": null,
        "proof": cert::proof(&old, object_id)?,
    });
    client
        .json::<serde_json::Value>(post(format!("/applications/{object_id}/addKey"), &body)?)
        .await?;
    let new_creds = new.credentials();
    wait_until_ready(opts, &spec.tenant_id, &spec.app_id, &new_creds).await?;
    commit(new_creds.clone()).await?;
    let new_client = crate::connect::client(spec, &new_creds)?;
    let body = json!({
        "keyId": cert::key_id_for(&old.sha1_thumbprint()).to_string(),
        "proof": cert::proof(&new.credential()?, object_id)?,
    });
    let (old_removed, note) = match new_client
        .send(post(format!("/applications/{object_id}/removeKey"), &body)?)
        .await
    {
        Ok(_) => (true, None),
        Err(e) => {
            tracing::warn!(error = %e, "the old certificate could not be removed from the application");
            (
                false,
                Some(format!(
                    "remove the old certificate (thumbprint {}) under Certificates & secrets of the application in the Entra admin center: {e}",
                    old.thumbprint_hex()
                )),
            )
        }
    };
    Ok(Renewal {
        thumbprint: new.thumbprint.clone(),
        not_after: new.not_after,
        old_thumbprint: old.thumbprint_hex(),
        old_removed,
        note,
    })
}

/// Renews the certificate of task `name` in the data dir: the object id comes from `object_id`
/// or from this NAS's registration record; the task's credentials are replaced once the new
/// certificate works.
///
/// # Errors
/// As [`renew`]; [`RegisterError::ObjectIdUnknown`] for an app not registered from this NAS
/// when no object id is given.
pub async fn renew_task(
    data_dir: &Path,
    name: &str,
    object_id: Option<&str>,
    ready_timeout: Option<std::time::Duration>,
) -> Result<Renewal, RegisterError> {
    let dir = data_dir.to_path_buf();
    let task = name.to_owned();
    let (spec, creds) = blocking(move || {
        let store = TaskStore::open(&dir)?;
        Ok((store.get(&task)?, store.credentials(&task)?))
    })
    .await?;
    let object_id = match object_id {
        Some(o) => o.to_owned(),
        None => super::record::get(data_dir, &spec.app_id)?
            .map(|r| r.object_id)
            .ok_or_else(|| RegisterError::ObjectIdUnknown {
                app_id: spec.app_id.clone(),
            })?,
    };
    let mut opts = options_for(&spec)?;
    if let Some(t) = ready_timeout {
        opts.ready_timeout = t;
    }
    let dir: PathBuf = data_dir.to_path_buf();
    let spec2 = spec.clone();
    renew(&spec, &creds, &object_id, &opts, move |new_creds| {
        blocking(move || {
            let store = TaskStore::open(&dir)?;
            store.update(&spec2, Some(&new_creds))?;
            Ok(())
        })
    })
    .await
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RegisterError> + Send + 'static,
) -> Result<T, RegisterError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RegisterError::Record {
            path: "task database".into(),
            detail: format!("worker stopped: {e}"),
        })?
}
