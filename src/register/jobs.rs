//! Registrations the service runs for the wizard: each a job with an id, started with a
//! sign-in code and finished in the background, whose state the wizard polls and whose result
//! (tenant id, app id and the certificate, which stays on the NAS) a task is created from.
//! "I'll do it myself" jobs only hold a certificate, for the `.cer` download and the guide.
//! Jobs live in memory; a finished job is forgotten after an hour.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use std::sync::{Mutex, MutexGuard};
use time::OffsetDateTime;

use super::app::{RegisterOptions, Registration, Step};
use super::cert::GeneratedCert;
use super::device::DeviceCode;
use super::error::RegisterError;
use super::flow::{self, Created};
use super::permissions::{Permission, REQUIRED};
use crate::task::Credentials;

/// How long a finished job is kept.
const KEEP: Duration = Duration::from_secs(3600);

/// Where a job stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum JobState {
    /// The code is shown; nobody signed in yet.
    WaitingForSignIn,
    /// Signed in; creating the app.
    Working {
        /// The current step.
        step: Step,
    },
    /// Done: the result can make a task.
    Done,
    /// Failed; `code` is stable, `message` says what to do.
    Failed {
        /// [`RegisterError::code`].
        code: String,
        /// The error's text.
        message: String,
    },
    /// A certificate for registering the app by hand.
    Manual,
}

/// The certificate of a job, as shown.
#[derive(Clone, Debug, Serialize)]
pub struct CertSummary {
    /// Upper-case hex SHA-1 thumbprint.
    pub thumbprint: String,
    /// End of validity.
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
}

/// What the wizard sees of a job.
#[derive(Clone, Debug, Serialize)]
pub struct JobView {
    /// The job id.
    pub id: uuid::Uuid,
    /// Its state.
    #[serde(flatten)]
    pub state: JobState,
    /// The code and page to sign in with (automatic registrations).
    pub sign_in: Option<DeviceCode>,
    /// The application permissions the app gets, each with why.
    pub permissions: &'static [Permission],
    /// The certificate made for the app.
    pub certificate: CertSummary,
    /// Tenant and app ids once done.
    pub result: Option<Registration>,
}

struct Job {
    state: JobState,
    cert: GeneratedCert,
    code: Option<DeviceCode>,
    result: Option<Registration>,
    created: Option<Created>,
    finished: Option<std::time::Instant>,
    task: Option<tokio::task::AbortHandle>,
}

impl Job {
    fn view(&self, id: uuid::Uuid) -> JobView {
        JobView {
            id,
            state: self.state.clone(),
            sign_in: self.code.clone(),
            permissions: REQUIRED,
            certificate: CertSummary {
                thumbprint: self.cert.thumbprint.clone(),
                not_after: self.cert.not_after,
            },
            result: self.result.clone(),
        }
    }
}

/// The service's registration jobs. Cheap to clone.
#[derive(Clone, Default)]
pub struct Registrations {
    jobs: Arc<Mutex<HashMap<uuid::Uuid, Job>>>,
}

impl std::fmt::Debug for Registrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrations")
            .field("jobs", &self.lock().len())
            .finish_non_exhaustive()
    }
}

fn failed(e: &RegisterError) -> JobState {
    JobState::Failed {
        code: e.code().to_owned(),
        message: e.to_string(),
    }
}

impl Registrations {
    /// No jobs yet.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<uuid::Uuid, Job>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn prune(&self) {
        self.lock()
            .retain(|_, j| j.finished.is_none_or(|t| t.elapsed() < KEEP));
    }

    /// Starts "register the app for me" on the current runtime: see [`Registrations::start_on`].
    ///
    /// # Errors
    /// Certificate generation or the sign-in service failed before a code was shown.
    pub async fn start(
        &self,
        opts: RegisterOptions,
        data_dir: Option<PathBuf>,
    ) -> Result<JobView, RegisterError> {
        self.start_on(opts, data_dir, &tokio::runtime::Handle::current())
            .await
    }

    /// Starts "register the app for me": makes the certificate, gets a sign-in code, and
    /// finishes on `runtime` once the admin signed in, recording the app in `data_dir`.
    ///
    /// # Errors
    /// Certificate generation or the sign-in service failed before a code was shown.
    pub async fn start_on(
        &self,
        opts: RegisterOptions,
        data_dir: Option<PathBuf>,
        runtime: &tokio::runtime::Handle,
    ) -> Result<JobView, RegisterError> {
        self.prune();
        let pending = flow::begin(opts).await?;
        let id = uuid::Uuid::new_v4();
        let job = Job {
            state: JobState::WaitingForSignIn,
            cert: pending.certificate().clone(),
            code: Some(pending.code().clone()),
            result: None,
            created: None,
            finished: None,
            task: None,
        };
        let view = job.view(id);
        self.lock().insert(id, job);
        let this = self.clone();
        let handle = runtime.spawn(async move {
            let progress = {
                let this = this.clone();
                move |step: Step| this.set(id, JobState::Working { step })
            };
            let created = match pending.create(data_dir.as_deref(), &progress).await {
                Ok(c) => c,
                Err(e) => return this.finish(id, Err(e)),
            };
            if let Some(j) = this.lock().get_mut(&id) {
                j.created = Some(created.clone());
            }
            this.set(
                id,
                JobState::Working {
                    step: Step::WaitingForReplication,
                },
            );
            let done = created.wait_ready().await;
            this.finish(id, done);
        });
        if let Some(j) = self.lock().get_mut(&id) {
            j.task = Some(handle.abort_handle());
        }
        Ok(view)
    }

    /// Starts "I'll do it myself": only a certificate, for the `.cer` and the guide.
    ///
    /// # Errors
    /// Certificate generation failed.
    pub async fn start_manual(&self, opts: &RegisterOptions) -> Result<JobView, RegisterError> {
        self.prune();
        let cn = opts.display_name.clone();
        let days = opts.cert_days;
        let cert = tokio::task::spawn_blocking(move || super::cert::generate(&cn, days))
            .await
            .map_err(|e| RegisterError::Certificate(format!("key generation stopped: {e}")))??;
        let id = uuid::Uuid::new_v4();
        let job = Job {
            state: JobState::Manual,
            cert,
            code: None,
            result: None,
            created: None,
            finished: None,
            task: None,
        };
        let view = job.view(id);
        self.lock().insert(id, job);
        Ok(view)
    }

    fn set(&self, id: uuid::Uuid, state: JobState) {
        if let Some(j) = self.lock().get_mut(&id)
            && !matches!(j.state, JobState::Done | JobState::Failed { .. })
        {
            j.state = state;
        }
    }

    fn finish(&self, id: uuid::Uuid, outcome: Result<Registration, RegisterError>) {
        if let Some(j) = self.lock().get_mut(&id) {
            match outcome {
                Ok(r) => {
                    j.state = JobState::Done;
                    j.result = Some(r);
                }
                Err(e) => {
                    tracing::warn!(job = %id, error = %e, "app registration failed");
                    j.state = failed(&e);
                }
            }
            j.finished = Some(std::time::Instant::now());
            j.task = None;
        }
    }

    /// A job's view.
    #[must_use]
    pub fn get(&self, id: uuid::Uuid) -> Option<JobView> {
        self.lock().get(&id).map(|j| j.view(id))
    }

    /// Waits until the job is done or failed (polling every 100 ms), at most `limit`.
    pub async fn wait(&self, id: uuid::Uuid, limit: Duration) -> Option<JobView> {
        let start = std::time::Instant::now();
        loop {
            let v = self.get(id)?;
            if matches!(
                v.state,
                JobState::Done | JobState::Failed { .. } | JobState::Manual
            ) || start.elapsed() > limit
            {
                return Some(v);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The job's certificate as a `.cer` (PEM).
    #[must_use]
    pub fn cer(&self, id: uuid::Uuid) -> Option<String> {
        self.lock().get(&id).map(|j| j.cert.cer_pem())
    }

    /// The certificate's thumbprint of a job (for the guide).
    #[must_use]
    pub fn thumbprint(&self, id: uuid::Uuid) -> Option<String> {
        self.lock().get(&id).map(|j| j.cert.thumbprint.clone())
    }

    /// The credentials a task is created with, by reference to a finished (or manual) job,
    /// with the tenant and app ids when the job registered the app.
    ///
    /// # Errors
    /// [`RegisterError::UnknownJob`] for an unknown job or one not finished successfully.
    pub fn credentials(
        &self,
        id: uuid::Uuid,
    ) -> Result<(Credentials, Option<Registration>), RegisterError> {
        let jobs = self.lock();
        let j = jobs
            .get(&id)
            .ok_or_else(|| RegisterError::UnknownJob(id.to_string()))?;
        match j.state {
            JobState::Done | JobState::Manual => Ok((j.cert.credentials(), j.result.clone())),
            _ => Err(RegisterError::UnknownJob(format!("{id} (not finished)"))),
        }
    }

    /// Checks again, on `runtime`, whether an app that was created but could not sign in in
    /// time works now.
    ///
    /// # Errors
    /// [`RegisterError::UnknownJob`] when the job has no created app.
    pub fn retry(
        &self,
        id: uuid::Uuid,
        runtime: &tokio::runtime::Handle,
    ) -> Result<JobView, RegisterError> {
        let created = {
            let mut jobs = self.lock();
            let j = jobs
                .get_mut(&id)
                .ok_or_else(|| RegisterError::UnknownJob(id.to_string()))?;
            let Some(c) = j
                .created
                .clone()
                .filter(|_| matches!(j.state, JobState::Failed { .. }))
            else {
                return Err(RegisterError::UnknownJob(format!(
                    "{id} (nothing to retry)"
                )));
            };
            j.state = JobState::Working {
                step: Step::WaitingForReplication,
            };
            j.finished = None;
            c
        };
        let this = self.clone();
        let handle = runtime.spawn(async move {
            let done = created.wait_ready().await;
            this.finish(id, done);
        });
        let mut jobs = self.lock();
        let j = jobs
            .get_mut(&id)
            .ok_or_else(|| RegisterError::UnknownJob(id.to_string()))?;
        j.task = Some(handle.abort_handle());
        Ok(j.view(id))
    }

    /// Cancels and forgets a job.
    pub fn cancel(&self, id: uuid::Uuid) -> bool {
        match self.lock().remove(&id) {
            Some(j) => {
                if let Some(t) = j.task {
                    t.abort();
                }
                true
            }
            None => false,
        }
    }
}
