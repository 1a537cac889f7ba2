//! Backhome's Microsoft Graph client: the only code that speaks HTTP to Microsoft.

/// A Microsoft cloud: where to sign in and where Graph lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cloud {
    /// Base URL of the Entra ID login host.
    pub login: String,
    /// Base URL of Microsoft Graph.
    pub graph: String,
}

impl Cloud {
    /// The global (worldwide) Microsoft cloud.
    #[must_use]
    pub fn global() -> Self {
        Self {
            login: "https://login.microsoftonline.com".into(),
            graph: "https://graph.microsoft.com".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn global_cloud_hosts() {
        let c = super::Cloud::global();
        assert!(c.login.ends_with("microsoftonline.com"));
        assert!(c.graph.ends_with("graph.microsoft.com"));
    }
}
