//! What a backup task is: where the tenant is, what to back up, when, and for how long.

use std::collections::BTreeSet;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A Microsoft 365 workload a task can back up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// Exchange Online mail, with its folder tree.
    Mail,
    /// Exchange calendars.
    Calendar,
    /// Exchange contacts.
    Contacts,
    /// OneDrive for Business.
    Onedrive,
    /// SharePoint document libraries.
    Sharepoint,
    /// Teams channels and their messages.
    Teams,
    /// Microsoft 365 groups: mailbox and calendar.
    Groups,
}

impl Service {
    /// Every service, in display order.
    pub const ALL: [Service; 7] = [
        Service::Mail,
        Service::Calendar,
        Service::Contacts,
        Service::Onedrive,
        Service::Sharepoint,
        Service::Teams,
        Service::Groups,
    ];

    /// The name used on the command line and in the API.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Mail => "mail",
            Service::Calendar => "calendar",
            Service::Contacts => "contacts",
            Service::Onedrive => "onedrive",
            Service::Sharepoint => "sharepoint",
            Service::Teams => "teams",
            Service::Groups => "groups",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Service {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Service::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| {
                format!(
                    "unknown service '{s}' (expected one of: {})",
                    Service::ALL.map(Service::as_str).join(", ")
                )
            })
    }
}

/// Which new accounts join the task by themselves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutoDiscovery {
    /// New users are added.
    pub users: bool,
    /// New Microsoft 365 groups are added.
    pub groups: bool,
    /// New SharePoint sites are added.
    pub sites: bool,
}

impl Default for AutoDiscovery {
    fn default() -> Self {
        Self {
            users: true,
            groups: true,
            sites: true,
        }
    }
}

/// When a task runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// Only when started by hand.
    #[default]
    Manual,
    /// A new incremental run soon after the last one ended.
    Continuous,
    /// On the given days of the week (0 = Monday) at the given times of day (`HH:MM`, NAS time).
    Fixed {
        /// Days of the week, 0 = Monday … 6 = Sunday.
        days: Vec<u8>,
        /// Times of day, `HH:MM`.
        times: Vec<String>,
    },
}

/// How long old versions stay.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Retention {
    /// Keep every version.
    #[default]
    KeepAll,
    /// Keep restore points of the last N days.
    Days {
        /// Number of days.
        days: u32,
    },
    /// Keep the last N runs.
    Runs {
        /// Number of runs.
        runs: u32,
    },
    /// Grandfather-father-son: N daily, weekly, monthly and yearly restore points.
    Gfs {
        /// Daily restore points.
        daily: u32,
        /// Weekly restore points.
        weekly: u32,
        /// Monthly restore points.
        monthly: u32,
        /// Yearly restore points.
        yearly: u32,
    },
}

/// A backup task as configured by an admin. Secrets are kept apart (see [`crate::secrets`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// Unique name of the task.
    pub name: String,
    /// Cloud: `global`, `usgov`, `usgovdod`, `china` or `custom`.
    pub cloud: String,
    /// Login endpoint overriding the cloud's (required for `custom`).
    pub login_endpoint: Option<String>,
    /// Graph endpoint overriding the cloud's (required for `custom`).
    pub graph_endpoint: Option<String>,
    /// Extra CA certificate (PEM) to trust for the endpoints.
    pub ca_cert: Option<PathBuf>,
    /// Directory (tenant) ID.
    pub tenant_id: String,
    /// Application (client) ID.
    pub app_id: String,
    /// Admin e-mail, for notices.
    pub admin_email: Option<String>,
    /// Workloads backed up.
    pub services: BTreeSet<Service>,
    /// When not empty, only these users (UPN or mail) are backed up.
    pub include_users: Vec<String>,
    /// Users never backed up.
    pub exclude_users: Vec<String>,
    /// When not empty, only these groups (mail nickname or mail) are backed up.
    pub include_groups: Vec<String>,
    /// Groups never backed up.
    pub exclude_groups: Vec<String>,
    /// When not empty, only these sites (URL) are backed up.
    pub include_sites: Vec<String>,
    /// Sites never backed up (URL).
    pub exclude_sites: Vec<String>,
    /// Auto-discovery switches.
    pub auto_discovery: AutoDiscovery,
    /// When the task runs.
    pub schedule: Schedule,
    /// How long old versions stay.
    pub retention: Retention,
    /// Whether portal users may browse their own accounts in this task.
    pub portal: bool,
    /// Where the task's repository lives.
    pub repo: PathBuf,
}

impl TaskSpec {
    /// A task of the global cloud with every service, no selection lists, auto-discovery on,
    /// a manual schedule, everything kept, and the portal off.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        tenant_id: impl Into<String>,
        app_id: impl Into<String>,
        repo: PathBuf,
    ) -> Self {
        Self {
            name: name.into(),
            cloud: "global".into(),
            login_endpoint: None,
            graph_endpoint: None,
            ca_cert: None,
            tenant_id: tenant_id.into(),
            app_id: app_id.into(),
            admin_email: None,
            services: Service::ALL.into_iter().collect(),
            include_users: vec![],
            exclude_users: vec![],
            include_groups: vec![],
            exclude_groups: vec![],
            include_sites: vec![],
            exclude_sites: vec![],
            auto_discovery: AutoDiscovery::default(),
            schedule: Schedule::Manual,
            retention: Retention::KeepAll,
            portal: false,
            repo,
        }
    }

    /// The same task pointed at explicit login and Graph endpoints (a simulator, a proxy).
    #[must_use]
    pub fn with_endpoints(mut self, login: impl Into<String>, graph: impl Into<String>) -> Self {
        self.cloud = "custom".into();
        self.login_endpoint = Some(login.into());
        self.graph_endpoint = Some(graph.into());
        self
    }

    /// The same task backing up only `services`.
    #[must_use]
    pub fn with_services(mut self, services: &[Service]) -> Self {
        self.services = services.iter().copied().collect();
        self
    }

    /// Checks the fields that do not need the network.
    ///
    /// # Errors
    /// Names the first field that is wrong and why.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.len() > 64 {
            return Err("name: must be 1 to 64 characters".into());
        }
        if self
            .name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
        {
            return Err("name: must not contain slashes or control characters".into());
        }
        for (field, v) in [("tenant_id", &self.tenant_id), ("app_id", &self.app_id)] {
            if v.trim().is_empty() {
                return Err(format!("{field}: is required"));
            }
        }
        if !is_guid(&self.app_id) {
            return Err("app_id: must be a GUID like 00000000-0000-0000-0000-000000000000".into());
        }
        if self.services.is_empty() {
            return Err("services: choose at least one service".into());
        }
        match self.cloud.as_str() {
            "global" | "usgov" | "usgovdod" | "china" => {}
            "custom" => {
                if self.login_endpoint.is_none() || self.graph_endpoint.is_none() {
                    return Err("cloud: custom needs both a login and a Graph endpoint".into());
                }
            }
            other => {
                return Err(format!(
                    "cloud: unknown cloud '{other}' (expected global, usgov, usgovdod or china)"
                ));
            }
        }
        if let Schedule::Fixed { days, times } = &self.schedule {
            if days.is_empty() || times.is_empty() || days.iter().any(|d| *d > 6) {
                return Err("schedule: fixed schedules need days 0-6 and at least one time".into());
            }
            if let Some(t) = times.iter().find(|t| parse_hhmm(t).is_none()) {
                return Err(format!("schedule: '{t}' is not a time of day (HH:MM)"));
            }
        }
        Ok(())
    }
}

/// Parses `HH:MM` into minutes after midnight.
#[must_use]
pub fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// Whether `s` has the form of a GUID.
#[must_use]
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> TaskSpec {
        TaskSpec::new(
            "contoso",
            "contoso.onmicrosoft.com",
            "6731de76-14a6-49ae-97bc-6eba6914391e",
            "/volume1/backhome/contoso".into(),
        )
    }

    #[test]
    fn services_parse_and_reject_unknown() {
        assert_eq!("OneDrive".parse::<Service>().unwrap(), Service::Onedrive);
        let err = "exchange".parse::<Service>().unwrap_err();
        assert!(err.contains("mail, calendar"), "{err}");
    }

    #[test]
    fn validation_names_the_field() {
        assert!(sample().validate().is_ok());
        let mut t = sample();
        t.app_id = "not-a-guid".into();
        assert!(t.validate().unwrap_err().starts_with("app_id"));
        let mut t = sample();
        t.cloud = "germany".into();
        assert!(t.validate().unwrap_err().starts_with("cloud"));
        let mut t = sample();
        t.schedule = Schedule::Fixed {
            days: vec![1],
            times: vec!["25:00".into()],
        };
        assert!(t.validate().unwrap_err().contains("25:00"));
        let mut t = sample();
        t.name = "a/b".into();
        assert!(t.validate().unwrap_err().starts_with("name"));
    }

    #[test]
    fn spec_round_trips_through_json() {
        let mut t = sample();
        t.schedule = Schedule::Fixed {
            days: vec![0, 4],
            times: vec!["02:30".into()],
        };
        t.retention = Retention::Gfs {
            daily: 7,
            weekly: 4,
            monthly: 12,
            yearly: 3,
        };
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<TaskSpec>(&json).unwrap(), t);
    }
}
