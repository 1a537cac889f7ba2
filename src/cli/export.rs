//! `backhome export --task NAME [--at RUN_ID|RFC3339] --format zip|mbox --out FILE|- PATH…`.
//!
//! `--format zip` writes one ZIP of all selected paths. `--format mbox` writes one mboxrd stream
//! when the selection holds mail in one folder (or selected messages), and when several folders
//! hold mail a ZIP with one `.mbox` per folder, the folder tree kept (it says so on standard
//! error). Every path is checked before the output is opened, so a mistyped path never
//! truncates an existing file; an export that fails half-way removes its partial file.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Context;
use clap::ValueEnum;

use super::browse;
use super::commands::{at_run, open_repo};
use crate::export::{self, ExportReport};
use crate::task::TaskStore;

/// What `backhome export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A ZIP with the folder tree: `.eml`, `.ics`, `.vcf`, files, `.html` transcripts.
    Zip,
    /// One mboxrd stream of the selected mail; a ZIP of one `.mbox` per folder when several
    /// folders hold mail.
    Mbox,
}

/// `backhome export`: writes the export to `out` (`-` for standard output) and prints a summary
/// to standard error.
///
/// # Errors
/// No such task, run or path, or the export failed (its partial file is removed).
pub fn export(
    data: &Path,
    task: &str,
    at: Option<&str>,
    format: Format,
    out: &Path,
    paths: &[String],
) -> anyhow::Result<()> {
    let spec = TaskStore::open(data)?.get(task)?;
    let repo = open_repo(&spec, false)?;
    let run = at_run(&repo, at)?;
    for p in paths {
        browse::resolve(&repo, run, p)?;
    }
    let per_folder =
        format == Format::Mbox && export::mail_folders_with_mail(&repo, run, paths)? > 1;
    if per_folder {
        eprintln!("several mail folders selected: writing a ZIP with one .mbox per folder");
    }
    let write = |w: &mut dyn Write| -> Result<ExportReport, export::ExportError> {
        match format {
            Format::Zip => export::export_zip(&repo, run, paths, w),
            Format::Mbox if per_folder => export::export_mbox_per_folder(&repo, run, paths, w),
            Format::Mbox => export::export_mbox(&repo, run, paths, w),
        }
    };
    let report = if out == Path::new("-") {
        let mut stdout = BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
        let r = write(&mut stdout)?;
        stdout.flush().context("writing to standard output")?;
        r
    } else {
        let file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut w = BufWriter::with_capacity(256 * 1024, file);
        let result = write(&mut w).map_err(anyhow::Error::from).and_then(|r| {
            let file = w.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(r)
        });
        match result {
            Ok(r) => r,
            Err(e) => {
                let _ = std::fs::remove_file(out);
                return Err(e.context(format!("exporting to {}", out.display())));
            }
        }
    };
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    eprintln!(
        "exported {} items ({} bytes of data, {} folders) from run {}: {} bytes written",
        report.items, report.bytes, report.folders, run.0, report.written
    );
    Ok(())
}
