//! Registers the Entra ID application a task uses, from the NAS: a certificate made here, the
//! device authorization flow for the admin's sign-in, and the app, its key and consent created
//! through Microsoft Graph.
