//! Why a registration or renewal failed, in words that say what to do.
//!
//! Each error has a stable snake_case [`RegisterError::code`] the service and the UI switch on.
//! Text never contains the admin's token, a device code, a `.pfx` password or a private key.

use std::time::Duration;

use backhome_graph::GraphError;

/// A failure of app registration or certificate renewal.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// The signed-in account may not create the application or grant its permissions.
    #[error(
        "the account {account} is not allowed to {step}: sign in as a Global Administrator (or a Privileged Role Administrator) of the tenant and start again (Microsoft Graph said: {graph})"
    )]
    NotAdmin {
        /// The signed-in account (UPN), when known.
        account: String,
        /// What was refused.
        step: &'static str,
        /// Graph's answer.
        graph: Box<GraphError>,
    },
    /// A tenant policy blocked consent to the sign-in application or to the new app.
    #[error(
        "a policy of the tenant blocked consent (AADSTS{code}): allow administrators to consent to applications in Microsoft Entra ID (Enterprise applications > Consent and permissions), or register the app yourself with the guide and import its certificate"
    )]
    ConsentBlocked {
        /// The AADSTS number.
        code: u64,
    },
    /// Nobody signed in before the code expired.
    #[error(
        "the sign-in code expired before anyone signed in with it: start the registration again and enter the new code within {minutes} minutes"
    )]
    CodeExpired {
        /// How long the code was valid.
        minutes: u64,
    },
    /// The admin declined on the sign-in page.
    #[error(
        "the sign-in was declined on the Microsoft sign-in page: start again and accept the requested permissions"
    )]
    Declined,
    /// Entra ID refused the sign-in for another reason.
    #[error("Microsoft Entra ID refused the sign-in ({error} {codes}): {description}")]
    SignIn {
        /// OAuth `error`.
        error: String,
        /// AADSTS codes.
        codes: String,
        /// First line of the description.
        description: String,
    },
    /// The new app still could not get a token when the wait ended.
    #[error(
        "the new application was created but could not sign in within {waited:?} ({last}); Microsoft Entra ID can take a few minutes to replicate a new application: wait, then retry the check"
    )]
    NotReady {
        /// How long it was tried.
        waited: Duration,
        /// The last refusal.
        last: String,
    },
    /// The app signed in but its token lacks permissions that were granted.
    #[error(
        "the application signed in but its token lacks the permissions {missing}: grant admin consent for them in the Entra admin center"
    )]
    MissingPermissions {
        /// The permissions missing, comma-separated.
        missing: String,
    },
    /// Graph refused a step.
    #[error("Microsoft Graph refused to {step}: {graph}")]
    Graph {
        /// What was being done.
        step: &'static str,
        /// Graph's answer.
        graph: Box<GraphError>,
    },
    /// The Microsoft sign-in service or Graph could not be reached.
    #[error("cannot reach {host}: {source}")]
    Unreachable {
        /// The host.
        host: String,
        /// The cause (URL removed).
        source: reqwest::Error,
    },
    /// An answer that could not be understood.
    #[error("unreadable answer from {what}: {detail}")]
    Malformed {
        /// What answered.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// Making or reading a certificate failed.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The `.pfx` cannot be used.
    #[error(transparent)]
    Credential(#[from] backhome_graph::CredentialError),
    /// The Graph client (the app's own sign-in) failed.
    #[error(transparent)]
    Client(#[from] backhome_graph::Error),
    /// Endpoints or cloud.
    #[error(transparent)]
    Config(#[from] backhome_graph::ConfigError),
    /// The task database.
    #[error(transparent)]
    Task(#[from] crate::task::TaskStoreError),
    /// The registration record file.
    #[error("app registration record {path}: {detail}")]
    Record {
        /// The file.
        path: String,
        /// What failed.
        detail: String,
    },
    /// Renewal needs the application's object id, which this NAS did not record.
    #[error(
        "the application {app_id} was not registered from this NAS, so its object id is unknown: give the Object ID shown on the app's overview page in the Entra admin center"
    )]
    ObjectIdUnknown {
        /// The application id.
        app_id: String,
    },
    /// The job was cancelled or is unknown.
    #[error("no registration {0} (it finished long ago, was cancelled, or never existed)")]
    UnknownJob(String),
}

impl RegisterError {
    /// A stable snake_case code for the API and the UI.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAdmin { .. } => "not_admin",
            Self::ConsentBlocked { .. } => "consent_blocked",
            Self::CodeExpired { .. } => "code_expired",
            Self::Declined => "declined",
            Self::SignIn { .. } => "sign_in_refused",
            Self::NotReady { .. } => "not_ready",
            Self::MissingPermissions { .. } => "missing_permissions",
            Self::Graph { .. } => "graph_error",
            Self::Unreachable { .. } => "unreachable",
            Self::Malformed { .. } => "malformed_answer",
            Self::Certificate(_) | Self::Credential(_) => "certificate",
            Self::Client(_) => "sign_in_failed",
            Self::Config(_) => "configuration",
            Self::Task(_) => "task",
            Self::Record { .. } => "record",
            Self::ObjectIdUnknown { .. } => "object_id_unknown",
            Self::UnknownJob(_) => "unknown_registration",
        }
    }
}
