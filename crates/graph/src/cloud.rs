//! Microsoft clouds as data: where to sign in and where Graph lives.

use std::net::IpAddr;
use std::str::FromStr;

use url::{Host, Url};

use crate::error::ConfigError;

/// A Microsoft cloud: the Entra ID login host and the Microsoft Graph host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cloud {
    /// The worldwide cloud (also GCC "moderate").
    Global,
    /// US Government L4 (GCC High).
    UsGov,
    /// US Government L5 (DoD).
    UsGovDod,
    /// China, operated by 21Vianet.
    China,
    /// Explicit endpoints (a simulator, a proxy, a new cloud). Built with [`Cloud::custom`].
    Custom {
        /// Base URL of the login service (the token endpoint is `{login}/{tenant}/oauth2/v2.0/token`).
        login: Url,
        /// Base URL of Graph, without the version (`/v1.0` is appended).
        graph: Url,
    },
}

impl Cloud {
    /// The worldwide cloud.
    #[must_use]
    pub fn global() -> Self {
        Cloud::Global
    }

    /// Explicit login and Graph endpoints. Plain `http://` is accepted only for loopback hosts.
    /// A trailing `/v1.0` on the Graph URL is ignored.
    pub fn custom(login: &str, graph: &str) -> Result<Self, ConfigError> {
        let login = parse_endpoint("login", login)?;
        let mut graph = parse_endpoint("Graph", graph)?;
        let path = graph.path().trim_end_matches('/').to_owned();
        if let Some(stripped) = path
            .strip_suffix("/v1.0")
            .or_else(|| path.strip_suffix("/beta"))
        {
            graph.set_path(stripped);
        }
        Ok(Cloud::Custom { login, graph })
    }

    /// The short name used on the command line (`custom` for explicit endpoints).
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Cloud::Global => "global",
            Cloud::UsGov => "usgov",
            Cloud::UsGovDod => "usgovdod",
            Cloud::China => "china",
            Cloud::Custom { .. } => "custom",
        }
    }

    /// Base URL of the login service, without a trailing slash.
    #[must_use]
    pub fn login(&self) -> String {
        match self {
            Cloud::Global => "https://login.microsoftonline.com".into(),
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us".into(),
            Cloud::China => "https://login.chinacloudapi.cn".into(),
            Cloud::Custom { login, .. } => login.as_str().trim_end_matches('/').to_owned(),
        }
    }

    /// Base URL of Microsoft Graph (no version), without a trailing slash.
    #[must_use]
    pub fn graph(&self) -> String {
        match self {
            Cloud::Global => "https://graph.microsoft.com".into(),
            Cloud::UsGov => "https://graph.microsoft.us".into(),
            Cloud::UsGovDod => "https://dod-graph.microsoft.us".into(),
            Cloud::China => "https://microsoftgraph.chinacloudapi.cn".into(),
            Cloud::Custom { graph, .. } => graph.as_str().trim_end_matches('/').to_owned(),
        }
    }

    /// The token endpoint for a tenant.
    #[must_use]
    pub fn token_endpoint(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.login())
    }

    /// The `.default` scope of Graph in this cloud. For explicit endpoints on a loopback host (a
    /// local simulator or proxy of Microsoft Graph) it is the global Graph scope; for other
    /// explicit endpoints it is the endpoint's own `/.default`. [`crate::ClientConfig::scope`]
    /// overrides it.
    #[must_use]
    pub fn scope(&self) -> String {
        match self {
            Cloud::Custom { graph, .. } if is_loopback(graph) => {
                "https://graph.microsoft.com/.default".into()
            }
            _ => format!("{}/.default", self.graph()),
        }
    }

    /// The versioned Graph root, e.g. `https://graph.microsoft.com/v1.0`.
    #[must_use]
    pub fn graph_v1(&self) -> String {
        format!("{}/v1.0", self.graph())
    }
}

impl FromStr for Cloud {
    type Err = ConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "global" | "public" | "worldwide" => Ok(Cloud::Global),
            "usgov" | "usgovl4" | "gcchigh" => Ok(Cloud::UsGov),
            "usgovdod" | "usgovl5" | "dod" => Ok(Cloud::UsGovDod),
            "china" | "21vianet" => Ok(Cloud::China),
            _ => Err(ConfigError::UnknownCloud(s.to_owned())),
        }
    }
}

impl std::fmt::Display for Cloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cloud::Custom { login, graph } => write!(f, "custom (login {login}, Graph {graph})"),
            other => f.write_str(other.name()),
        }
    }
}

/// Whether a URL's host is a loopback address (127.0.0.0/8, ::1, localhost).
#[must_use]
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    }
}

/// Checks that a URL may be contacted: `https`, or `http` to a loopback host.
pub(crate) fn check_scheme(what: &'static str, url: &Url) -> Result<(), ConfigError> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(ConfigError::InsecureHttp {
            what,
            url: url.as_str().to_owned(),
        }),
        other => Err(ConfigError::BadUrl {
            what,
            url: url.as_str().to_owned(),
            reason: format!("scheme {other}: is not http or https"),
        }),
    }
}

fn parse_endpoint(what: &'static str, text: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(text.trim()).map_err(|e| ConfigError::BadUrl {
        what,
        url: text.to_owned(),
        reason: e.to_string(),
    })?;
    if url.host().is_none() {
        return Err(ConfigError::BadUrl {
            what,
            url: text.to_owned(),
            reason: "no host".into(),
        });
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(ConfigError::BadUrl {
            what,
            url: text.to_owned(),
            reason: "an endpoint has no query or fragment".into(),
        });
    }
    check_scheme(what, &url)?;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_clouds() {
        assert_eq!("global".parse::<Cloud>().unwrap(), Cloud::Global);
        let gov: Cloud = "usgov".parse().unwrap();
        assert_eq!(gov.login(), "https://login.microsoftonline.us");
        assert_eq!(gov.graph(), "https://graph.microsoft.us");
        let dod: Cloud = "USGovDoD".parse().unwrap();
        assert_eq!(dod.graph(), "https://dod-graph.microsoft.us");
        assert_eq!(dod.login(), "https://login.microsoftonline.us");
        let cn: Cloud = "china".parse().unwrap();
        assert_eq!(cn.login(), "https://login.chinacloudapi.cn");
        assert_eq!(
            cn.scope(),
            "https://microsoftgraph.chinacloudapi.cn/.default"
        );
        assert_eq!(
            Cloud::global().token_endpoint("contoso.onmicrosoft.com"),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let err = "germany".parse::<Cloud>().unwrap_err();
        assert!(err.to_string().contains("global, usgov, usgovdod, china"));
    }

    #[test]
    fn http_only_for_loopback() {
        for ok in [
            "http://127.0.0.1:8080",
            "http://127.5.6.7",
            "http://[::1]:9000",
            "http://localhost:1",
        ] {
            Cloud::custom(ok, ok).unwrap();
        }
        let err = Cloud::custom("http://10.0.0.1", "https://graph.example").unwrap_err();
        assert!(
            matches!(err, ConfigError::InsecureHttp { what: "login", .. }),
            "{err}"
        );
        assert!(err.to_string().contains("only allowed for loopback"));
        let err = Cloud::custom("https://login.example", "http://graph.example").unwrap_err();
        assert!(matches!(
            err,
            ConfigError::InsecureHttp { what: "Graph", .. }
        ));
        assert!(Cloud::custom("ftp://x", "https://y").is_err());
        assert!(Cloud::custom("not a url", "https://y").is_err());
    }

    #[test]
    fn custom_strips_version() {
        let c = Cloud::custom("http://127.0.0.1:5000/", "http://127.0.0.1:5000/v1.0/").unwrap();
        assert_eq!(c.graph(), "http://127.0.0.1:5000");
        assert_eq!(c.graph_v1(), "http://127.0.0.1:5000/v1.0");
        assert_eq!(
            c.token_endpoint("t"),
            "http://127.0.0.1:5000/t/oauth2/v2.0/token"
        );
    }
}
