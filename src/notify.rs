//! Notifications for administrators: a DSM desktop notification through `synodsmnotify` where
//! the program exists, and always the log. Which events notify, and whom, is set in
//! `notifications.json` in the data dir ([`NotificationSettings`]); the notifier reads it at
//! every event, so a change through the API applies to the next one.
//!
//! `synodsmnotify` has no e-mail of its own: DSM forwards desktop notifications by e-mail, SMS or
//! push according to its own Control Panel → Notification settings.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use time::{Date, OffsetDateTime};

/// Where DSM keeps `synodsmnotify`.
const DSM_NOTIFY: &[&str] = &["/usr/syno/bin/synodsmnotify", "/usr/bin/synodsmnotify"];

/// The settings file in the data dir.
pub const SETTINGS_FILE: &str = "notifications.json";

/// At most this many recipients.
const MAX_RECIPIENTS: usize = 20;

/// How serious a notice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// For information: the work was done.
    Info,
    /// Something needs attention but the work was done.
    Warning,
    /// Something failed.
    Error,
}

/// What happened: each event can be switched on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A backup failed or could not start.
    RunFailed,
    /// A backup finished, but some items could not be backed up.
    RunPartial,
    /// A backup finished without errors.
    RunSucceeded,
    /// Old restore points (and their btrfs snapshots) could not be pruned after a backup.
    RetentionFailed,
    /// A task's certificate expires within the configured number of days, or has expired.
    CertificateExpiring,
    /// A test notice asked for by an administrator (always sent).
    Test,
}

impl Event {
    /// How serious the event is.
    #[must_use]
    pub fn severity(self) -> Severity {
        match self {
            Event::RunFailed => Severity::Error,
            Event::RunPartial | Event::RetentionFailed | Event::CertificateExpiring => {
                Severity::Warning
            }
            Event::RunSucceeded | Event::Test => Severity::Info,
        }
    }
}

/// Which events notify, and whom.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationSettings {
    /// A backup failed or could not start.
    pub run_failed: bool,
    /// A backup finished with item errors.
    pub run_partial: bool,
    /// A backup finished without errors.
    pub run_succeeded: bool,
    /// Retention (pruning old restore points and snapshots) failed after a backup.
    pub retention_failed: bool,
    /// A task's certificate expires within `certificate_days` days (checked before each backup
    /// and every six hours, at most one notice a day per task).
    pub certificate_expiring: bool,
    /// How many days ahead of expiry to warn (1–365).
    pub certificate_days: u32,
    /// DSM users (`alice`) and groups (`@administrators`) whose desktop shows the notices.
    pub recipients: Vec<String>,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            run_failed: true,
            run_partial: true,
            run_succeeded: false,
            retention_failed: true,
            certificate_expiring: true,
            certificate_days: 30,
            recipients: vec!["@administrators".into()],
        }
    }
}

/// Why settings could not be read, checked or written.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A field has a value that is not allowed.
    #[error("{0}")]
    Invalid(String),
    /// The settings file is not valid JSON of the right shape.
    #[error("{path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// There is no program that shows desktop notifications (not on DSM).
    #[error(
        "no desktop notification program: synodsmnotify was not found (notices go to the log only)"
    )]
    NoProgram,
    /// The program failed for a recipient.
    #[error("{program} failed for {recipient}: {reason}")]
    Delivery {
        /// The program.
        program: String,
        /// The recipient.
        recipient: String,
        /// Its exit status or the error.
        reason: String,
    },
}

impl NotificationSettings {
    /// Checks every field.
    ///
    /// # Errors
    /// [`NotifyError::Invalid`] naming the first bad field.
    pub fn validate(&self) -> Result<(), NotifyError> {
        let bad = |m: String| Err(NotifyError::Invalid(m));
        if !(1..=365).contains(&self.certificate_days) {
            return bad(format!(
                "certificate_days must be between 1 and 365, not {}",
                self.certificate_days
            ));
        }
        if self.recipients.is_empty() {
            return bad("recipients: name at least one DSM user or @group".into());
        }
        if self.recipients.len() > MAX_RECIPIENTS {
            return bad(format!(
                "recipients: at most {MAX_RECIPIENTS} users or groups"
            ));
        }
        for (i, r) in self.recipients.iter().enumerate() {
            let name = r.strip_prefix('@').unwrap_or(r);
            let ok = !name.is_empty()
                && name.len() <= 64
                && !name.starts_with(['-', ' '])
                && name
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | ' '));
            if !ok {
                return bad(format!(
                    "recipients: '{r}' is not a DSM user name or @group (letters, digits, '.', '_', '-', ' ')"
                ));
            }
            if self.recipients[..i]
                .iter()
                .any(|o| o.eq_ignore_ascii_case(r))
            {
                return bad(format!("recipients: '{r}' is listed twice"));
            }
        }
        Ok(())
    }

    /// Whether `event` notifies.
    #[must_use]
    pub fn wants(&self, event: Event) -> bool {
        match event {
            Event::RunFailed => self.run_failed,
            Event::RunPartial => self.run_partial,
            Event::RunSucceeded => self.run_succeeded,
            Event::RetentionFailed => self.retention_failed,
            Event::CertificateExpiring => self.certificate_expiring,
            Event::Test => true,
        }
    }

    /// The settings of `data_dir`: the defaults when the file does not exist.
    ///
    /// # Errors
    /// The file cannot be read or parsed.
    pub fn load(data_dir: &Path) -> Result<Self, NotifyError> {
        let path = data_dir.join(SETTINGS_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| NotifyError::Parse { path, source })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(NotifyError::Io { path, source }),
        }
    }

    /// Checks the settings and writes them to `data_dir` atomically (a temporary file, synced,
    /// renamed over the old one).
    ///
    /// # Errors
    /// Invalid settings, or the file cannot be written.
    pub fn save(&self, data_dir: &Path) -> Result<(), NotifyError> {
        self.validate()?;
        let path = data_dir.join(SETTINGS_FILE);
        let tmp = path.with_extension("json.tmp");
        let io = |source| NotifyError::Io {
            path: path.clone(),
            source,
        };
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| io(std::io::Error::other(e)))?;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(data_dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
        Ok(())
    }
}

/// Sends notices to DSM users and groups.
#[derive(Clone, Debug)]
pub struct Notifier {
    program: Option<PathBuf>,
    data_dir: Option<PathBuf>,
    /// The day a certificate notice was last sent, per task.
    certificate_days: Arc<Mutex<HashMap<String, Date>>>,
}

impl Notifier {
    /// A notifier using `program` when given, else DSM's `synodsmnotify` when it exists. Until
    /// [`Notifier::with_settings`] it uses the default settings.
    #[must_use]
    pub fn new(program: Option<PathBuf>) -> Self {
        let program = program.or_else(|| {
            DSM_NOTIFY
                .iter()
                .map(Path::new)
                .find(|p| p.is_file())
                .map(Path::to_path_buf)
        });
        Self {
            program,
            data_dir: None,
            certificate_days: Arc::default(),
        }
    }

    /// The same notifier, reading its settings from `data_dir` at every event.
    #[must_use]
    pub fn with_settings(mut self, data_dir: &Path) -> Self {
        self.data_dir = Some(data_dir.to_path_buf());
        self
    }

    /// Whether a desktop notification program was found (else notices go to the log only).
    #[must_use]
    pub fn has_program(&self) -> bool {
        self.program.is_some()
    }

    /// The settings now: the file's, or the defaults (a broken file is logged and the defaults
    /// used, so that failures still notify).
    #[must_use]
    pub fn settings(&self) -> NotificationSettings {
        let Some(dir) = &self.data_dir else {
            return NotificationSettings::default();
        };
        NotificationSettings::load(dir).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "notification settings unreadable; using the defaults");
            NotificationSettings::default()
        })
    }

    /// Logs the notice and, when the settings want `event`, shows it on the DSM desktop of every
    /// recipient.
    pub fn notify(&self, event: Event, title: &str, message: &str) {
        match event.severity() {
            Severity::Info => tracing::info!(notice = title, "{message}"),
            Severity::Warning => tracing::warn!(notice = title, "{message}"),
            Severity::Error => tracing::error!(notice = title, "{message}"),
        }
        let settings = self.settings();
        if !settings.wants(event) {
            return;
        }
        if let Err(e) = self.deliver(&settings.recipients, title, message)
            && !matches!(e, NotifyError::NoProgram)
        {
            tracing::warn!(error = %e, "desktop notification failed");
        }
    }

    /// Notices a task certificate that expires within the configured days (`days_left`
    /// negative: expired), at most once a day per task.
    pub fn certificate(&self, task: &str, days_left: i64, now: OffsetDateTime) {
        let settings = self.settings();
        if days_left >= i64::from(settings.certificate_days) {
            return;
        }
        if let Ok(mut seen) = self.certificate_days.lock() {
            if seen.get(task) == Some(&now.date()) {
                return;
            }
            seen.insert(task.to_owned(), now.date());
        }
        let message = if days_left < 0 {
            format!("Task {task}: the certificate has expired; backups fail until it is renewed.")
        } else {
            format!(
                "Task {task}: the certificate expires in {days_left} days; renew it on the task's page."
            )
        };
        self.notify(
            Event::CertificateExpiring,
            "Backhome certificate expiring",
            &message,
        );
    }

    /// Sends a test notice to the configured recipients, whatever the event settings.
    ///
    /// # Errors
    /// No notification program, or it failed; the recipients it reached are returned on success.
    pub fn test(&self) -> Result<Vec<String>, NotifyError> {
        let settings = self.settings();
        tracing::info!(recipients = ?settings.recipients, "test notification");
        self.deliver(
            &settings.recipients,
            "Backhome test notification",
            "Notifications from Backhome reach this desktop.",
        )?;
        Ok(settings.recipients)
    }

    fn deliver(
        &self,
        recipients: &[String],
        title: &str,
        message: &str,
    ) -> Result<(), NotifyError> {
        let Some(program) = &self.program else {
            return Err(NotifyError::NoProgram);
        };
        let mut first_error = None;
        for r in recipients {
            let result = std::process::Command::new(program)
                .arg(r)
                .arg(title)
                .arg(message)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
            let reason = match result {
                Ok(s) if s.success() => continue,
                Ok(s) => s.to_string(),
                Err(e) => e.to_string(),
            };
            if first_error.is_none() {
                first_error = Some(NotifyError::Delivery {
                    program: program.display().to_string(),
                    recipient: r.clone(),
                    reason,
                });
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path) -> (PathBuf, PathBuf) {
        let out = dir.join("out");
        let script = dir.join("notify.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s|' \"$@\" >> {}\n", out.display()),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
        (script, out)
    }

    #[test]
    fn the_program_gets_the_group_title_and_message() {
        let d = tempfile::tempdir().unwrap();
        let (script, out) = script(d.path());
        Notifier::new(Some(script)).notify(Event::RunFailed, "Backup failed", "task t: boom");
        assert_eq!(
            std::fs::read_to_string(out).unwrap(),
            "@administrators|Backup failed|task t: boom|"
        );
    }

    #[test]
    fn settings_choose_events_and_recipients() {
        let d = tempfile::tempdir().unwrap();
        let (script, out) = script(d.path());
        let n = Notifier::new(Some(script)).with_settings(d.path());
        n.notify(Event::RunSucceeded, "ok", "m");
        assert!(!out.exists(), "success is off by default");
        NotificationSettings {
            run_failed: false,
            run_succeeded: true,
            recipients: vec!["admin".into(), "@ops".into()],
            ..NotificationSettings::default()
        }
        .save(d.path())
        .unwrap();
        n.notify(Event::RunFailed, "failed", "m");
        n.notify(Event::RunSucceeded, "ok", "m");
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "admin|ok|m|@ops|ok|m|"
        );
    }

    #[test]
    fn certificate_notices_once_a_day_within_the_days() {
        let d = tempfile::tempdir().unwrap();
        let (script, out) = script(d.path());
        let n = Notifier::new(Some(script)).with_settings(d.path());
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        n.certificate("t", 45, now);
        assert!(!out.exists(), "45 days is beyond the default 30");
        n.certificate("t", 10, now);
        n.certificate("t", 9, now + time::Duration::hours(1));
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(text.matches("expires in 10 days").count(), 1, "{text}");
        n.certificate("t", 9, now + time::Duration::days(1));
        assert!(std::fs::read_to_string(&out).unwrap().contains("in 9 days"));
    }

    #[test]
    fn bad_settings_are_refused_with_the_field() {
        let bad = |s: NotificationSettings| s.validate().unwrap_err().to_string();
        let d = NotificationSettings::default;
        assert!(
            bad(NotificationSettings {
                certificate_days: 0,
                ..d()
            })
            .contains("certificate_days")
        );
        assert!(
            bad(NotificationSettings {
                recipients: vec![],
                ..d()
            })
            .contains("at least one")
        );
        assert!(
            bad(NotificationSettings {
                recipients: vec!["a;rm".into()],
                ..d()
            })
            .contains("'a;rm'")
        );
        assert!(
            bad(NotificationSettings {
                recipients: vec!["-x".into()],
                ..d()
            })
            .contains("'-x'")
        );
        assert!(
            bad(NotificationSettings {
                recipients: vec!["A".into(), "a".into()],
                ..d()
            })
            .contains("twice")
        );
        let dir = tempfile::tempdir().unwrap();
        assert!(
            NotificationSettings {
                certificate_days: 400,
                ..d()
            }
            .save(dir.path())
            .is_err()
        );
        assert!(!dir.path().join(SETTINGS_FILE).exists());
    }

    #[test]
    fn a_test_without_a_program_says_so() {
        let n = Notifier {
            program: None,
            data_dir: None,
            certificate_days: Arc::default(),
        };
        assert!(matches!(n.test(), Err(NotifyError::NoProgram)));
    }
}
