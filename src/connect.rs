//! From a task's definition and credentials to a Graph client.

use backhome_graph::{Client, ClientConfig, Cloud, Credential};

use crate::task::{Credentials, TaskSpec};

/// Builds the Graph client of a task: its cloud (or explicit endpoints), tenant, app and
/// certificate. Errors explain themselves in words an admin understands.
///
/// # Errors
/// A bad certificate or password, an unknown cloud, or endpoints that are not allowed.
pub fn client(spec: &TaskSpec, creds: &Credentials) -> Result<Client, backhome_graph::Error> {
    let cloud = match (&spec.login_endpoint, &spec.graph_endpoint) {
        (Some(login), Some(graph)) => Cloud::custom(login, graph)?,
        _ => spec.cloud.parse::<Cloud>()?,
    };
    let mut config = ClientConfig::new(cloud, spec.tenant_id.clone(), spec.app_id.clone());
    config.extra_ca_pem.clone_from(&spec.ca_cert);
    // Enough for every mailbox of a run to use its four Exchange slots at once.
    config.limits.global = crate::backup::OBJECTS_AT_ONCE * config.limits.per_resource;
    let credential = Credential::from_pkcs12_der(&creds.pfx, &creds.password)?;
    Client::new(config, credential)
}
