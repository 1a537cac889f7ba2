//! Notifications for administrators: a DSM desktop notification through `synodsmnotify` where
//! the program exists, and always the log.

use std::path::{Path, PathBuf};

/// Where DSM keeps `synodsmnotify`.
const DSM_NOTIFY: &[&str] = &["/usr/syno/bin/synodsmnotify", "/usr/bin/synodsmnotify"];

/// How serious a notice is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Something needs attention but the work was done.
    Warning,
    /// Something failed.
    Error,
}

/// Sends notices to DSM administrators.
#[derive(Clone, Debug)]
pub struct Notifier {
    program: Option<PathBuf>,
}

impl Notifier {
    /// A notifier using `program` when given, else DSM's `synodsmnotify` when it exists.
    #[must_use]
    pub fn new(program: Option<PathBuf>) -> Self {
        let program = program.or_else(|| {
            DSM_NOTIFY
                .iter()
                .map(Path::new)
                .find(|p| p.is_file())
                .map(Path::to_path_buf)
        });
        Self { program }
    }

    /// Logs the notice and shows it on the DSM desktop of every administrator.
    pub fn notify(&self, severity: Severity, title: &str, message: &str) {
        match severity {
            Severity::Warning => tracing::warn!(notice = title, "{message}"),
            Severity::Error => tracing::error!(notice = title, "{message}"),
        }
        let Some(program) = &self.program else {
            return;
        };
        let result = std::process::Command::new(program)
            .arg("@administrators")
            .arg(title)
            .arg(message)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        match result {
            Ok(s) if s.success() => {}
            Ok(s) => {
                tracing::warn!(program = %program.display(), status = %s, "desktop notification failed")
            }
            Err(e) => {
                tracing::warn!(program = %program.display(), error = %e, "desktop notification failed")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_gets_the_group_title_and_message() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        let script = d.path().join("notify.sh");
        std::fs::write(
            &script,
            format!("#!/bin/sh\nprintf '%s|' \"$@\" > {}\n", out.display()),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&script).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&script, perms).unwrap();
        Notifier::new(Some(script)).notify(Severity::Error, "Backup failed", "task t: boom");
        assert_eq!(
            std::fs::read_to_string(out).unwrap(),
            "@administrators|Backup failed|task t: boom|"
        );
    }
}
