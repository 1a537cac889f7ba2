//! Exports of backed-up data as downloads: a ZIP of the selection, or an MBOX of its mail.
//!
//! Both are streamed to any [`Write`] — a file, standard output, an HTTP body — without building
//! the archive in memory or in a temporary file: contents are copied through fixed buffers, and
//! what is kept is one central-directory record per ZIP entry and the names of the directories
//! being written.
//!
//! **ZIP** ([`export_zip`]): every selected path appears under its full backup path
//! (`users/ann@contoso.com/mail/Inbox/…`), so several selections never clash. Folders become
//! directories; mail is `.eml` (the MIME exactly as backed up), events `.ics`, contacts `.vcf`,
//! files themselves, channel conversations a standalone `.html` transcript. Names are made safe
//! for Windows, macOS and Linux by [`names`].
//!
//! **MBOX** ([`export_mbox`]): one mboxrd stream with every message under the selected paths, in
//! folder order. Messages keep their bytes (line endings included); lines starting with `From `
//! after any number of `>` get one more `>`, and a `From ` separator line carries the sender and the
//! received time. A mail client imports it as one folder. [`export_mbox_per_folder`] writes a ZIP
//! with one such file per mail folder instead (`Inbox.mbox`, `Inbox/Projects.mbox`, …); the
//! command line picks it when several folders of the selection hold mail.

mod convert;
pub mod group_thread;
pub mod html;
pub mod ics;
pub mod mbox;
pub mod names;
pub mod tz;
mod tz_windows;
pub mod vcf;
pub mod zip;

use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};

use backhome_store::{NodeKind, Repository, RunId, StoreError, VersionRecord};
use serde::Serialize;
use time::OffsetDateTime;

use crate::cli::browse::{self, BrowseError, Target};
use crate::paths;
use names::Siblings;
use zip::{Method, ZipStream};

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// Items written (messages, events, contacts, files, conversations).
    pub items: u64,
    /// Directories written (ZIP only).
    pub folders: u64,
    /// Bytes of item data written, before compression.
    pub bytes: u64,
    /// Bytes written to the output.
    pub written: u64,
    /// Items exported in another form than asked for, with the reason (an event whose JSON
    /// cannot be converted to iCalendar is exported as `.json`).
    pub warnings: Vec<String>,
}

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A selected path does not exist, or is malformed.
    #[error(transparent)]
    Browse(#[from] BrowseError),
    /// The repository failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Writing the output (or reading a content) failed.
    #[error("export stream: {0}")]
    Io(#[from] io::Error),
    /// An item could not be converted.
    #[error("{path}: {reason}")]
    Convert {
        /// The item's backup path.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// The selection holds no mail (MBOX export).
    #[error("no mail folder or message in the selection")]
    NoMail,
    /// Nothing was selected.
    #[error("no path selected")]
    Empty,
}

/// The selected paths as name lists, without duplicates and without paths inside another
/// selected path.
fn selections(paths_in: &[String]) -> Result<Vec<Vec<String>>, ExportError> {
    if paths_in.is_empty() {
        return Err(ExportError::Empty);
    }
    let mut sel: Vec<Vec<String>> = Vec::new();
    for p in paths_in {
        sel.push(paths::split(p).map_err(BrowseError::BadPath)?);
    }
    sel.sort();
    sel.dedup();
    let mut out: Vec<Vec<String>> = Vec::new();
    for s in sel {
        if !out.iter().any(|o| s.starts_with(o)) {
            out.push(s);
        }
    }
    Ok(out)
}

fn is_folder(kind: NodeKind) -> bool {
    matches!(
        kind,
        NodeKind::Root
            | NodeKind::MailFolder
            | NodeKind::Calendar
            | NodeKind::ContactFolder
            | NodeKind::Drive
            | NodeKind::DriveFolder
            | NodeKind::Channel
    )
}

/// Extensions of formats that are usually compressed already: stored, not deflated.
const COMPRESSED: [&str; 38] = [
    "zip", "gz", "tgz", "bz2", "xz", "zst", "7z", "rar", "jpg", "jpeg", "png", "gif", "webp",
    "heic", "heif", "avif", "mp3", "mp4", "m4a", "m4v", "mov", "avi", "mkv", "webm", "ogg", "opus",
    "flac", "docx", "xlsx", "pptx", "odt", "ods", "odp", "pdf", "jar", "apk", "cab", "msi",
];

/// Files above this size are stored: deflating them costs the NAS more than it saves.
const DEFLATE_LIMIT: u64 = 1 << 30;

fn method_for(name: &str, size: u64) -> Method {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if size > DEFLATE_LIMIT || COMPRESSED.contains(&ext.as_str()) {
        Method::Stored
    } else {
        Method::Deflated
    }
}

fn with_extension(name: &str, ext: &str) -> String {
    if name.to_ascii_lowercase().ends_with(ext) {
        name.to_owned()
    } else {
        format!("{name}{ext}")
    }
}

struct ZipExport<'a, W: Write> {
    repo: &'a Repository,
    run: RunId,
    zip: ZipStream<W>,
    dirs: HashMap<String, Siblings>,
    written_dirs: HashSet<String>,
    report: ExportReport,
    /// One `.mbox` per mail folder instead of the whole tree.
    mbox: bool,
}

fn archive_join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}/{name}")
    }
}

impl<W: Write> ZipExport<'_, W> {
    fn enter_dir(
        &mut self,
        parent: &str,
        original: &str,
        modified: Option<OffsetDateTime>,
    ) -> Result<String, ExportError> {
        let name = self
            .dirs
            .entry(parent.to_owned())
            .or_default()
            .dir(original);
        let full = archive_join(parent, &name);
        if self.written_dirs.insert(full.clone()) {
            self.zip
                .add_dir(&full, modified.unwrap_or(OffsetDateTime::UNIX_EPOCH))?;
            self.report.folders += 1;
        }
        Ok(full)
    }

    fn selection(&mut self, names: &[String]) -> Result<(), ExportError> {
        let path = paths::join(names);
        let mut archive = String::new();
        let parents = names.len().saturating_sub(1);
        for n in &names[..parents] {
            archive = self.enter_dir(&archive, n, None)?;
        }
        match browse::resolve(self.repo, self.run, &path)? {
            Target::Virtual(entries) => {
                if let Some(last) = names.last() {
                    self.enter_dir(&archive, last, None)?;
                }
                for e in entries {
                    let sub = paths::split(&e.path).map_err(BrowseError::BadPath)?;
                    self.selection(&sub)?;
                }
            }
            Target::Node(v) => self.node(&archive, &path, &v)?,
        }
        Ok(())
    }

    /// A group conversation thread: one HTML transcript of its posts in delivery order, named
    /// after the thread, and its attachments in a folder of the same name.
    fn group_thread(
        &mut self,
        parent: &str,
        path: &str,
        v: &VersionRecord,
    ) -> Result<(), ExportError> {
        let children = self.repo.list_children(v.node, self.run)?;
        let mut posts = Vec::new();
        let mut rest = Vec::new();
        for c in children {
            let child_path = format!("{path}/{}", paths::encode_segment(&c.name));
            let post = match (c.kind, c.content) {
                (NodeKind::ChannelMessage, Some(content)) => {
                    convert::json(self.repo, &child_path, content.id)
                }
                _ => {
                    rest.push((child_path, c));
                    continue;
                }
            };
            match post {
                Ok(post) => posts.push(post),
                // A post that is not JSON is exported as it was stored, beside the transcript.
                Err(ExportError::Convert { path, reason }) => {
                    self.report
                        .warnings
                        .push(format!("{path}: {reason}; exported as stored"));
                    rest.push((child_path, c));
                }
                Err(e) => return Err(e),
            }
        }
        let topic = v.metadata.get("topic").and_then(serde_json::Value::as_str);
        let html = group_thread::thread_to_html(topic.unwrap_or(&v.name), &posts).into_bytes();
        let name = with_extension(&v.name, ".html");
        self.converted_item(parent, &name, v.modified, &html)?;
        if !rest.is_empty() {
            let dir = self.enter_dir(parent, &v.name, v.modified)?;
            for (child_path, c) in &rest {
                self.node(&dir, child_path, c)?;
            }
            self.dirs.remove(&dir);
        }
        Ok(())
    }

    fn node(&mut self, parent: &str, path: &str, v: &VersionRecord) -> Result<(), ExportError> {
        if self.mbox {
            return self.mbox_node(parent, path, v);
        }
        if v.kind == NodeKind::Channel && group_thread::is_thread_path(path) {
            return self.group_thread(parent, path, v);
        }
        if is_folder(v.kind) {
            let dir = self.enter_dir(parent, &v.name, v.modified)?;
            for c in self.repo.list_children(v.node, self.run)? {
                let child_path = format!("{path}/{}", paths::encode_segment(&c.name));
                self.node(&dir, &child_path, &c)?;
            }
            self.dirs.remove(&dir);
            return Ok(());
        }
        let Some(content) = v.content else {
            return Ok(());
        };
        let conversion = match v.kind {
            NodeKind::Message => Some((".eml", None)),
            NodeKind::Event => Some((".ics", Some(convert::event(self.repo, path, content.id)))),
            NodeKind::Contact => {
                Some((".vcf", Some(convert::contact(self.repo, path, content.id))))
            }
            NodeKind::ChannelMessage if group_thread::is_in_thread(path) => Some((
                ".html",
                Some(convert::group_post(self.repo, path, content.id)),
            )),
            NodeKind::ChannelMessage => Some((
                ".html",
                Some(convert::conversation(self.repo, path, content.id)),
            )),
            _ => None,
        };
        let (name, converted) = match conversion {
            None => (v.name.clone(), None),
            Some((ext, None)) => (with_extension(&v.name, ext), None),
            Some((ext, Some(Ok(bytes)))) => (with_extension(&v.name, ext), Some(bytes)),
            // An item that cannot be converted is exported as the JSON it was backed up as.
            Some((_, Some(Err(ExportError::Convert { path, reason })))) => {
                self.report
                    .warnings
                    .push(format!("{path}: {reason}; exported as JSON"));
                (with_extension(&v.name, ".json"), None)
            }
            Some((_, Some(Err(e)))) => return Err(e),
        };
        if let Some(bytes) = converted {
            return self.converted_item(parent, &name, v.modified, &bytes);
        }
        let entry = self.dirs.entry(parent.to_owned()).or_default().file(&name);
        let full = archive_join(parent, &entry);
        let modified = v.modified.unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut reader = self.repo.read_content(content.id)?;
        let method = if v.kind == NodeKind::Message {
            Method::Deflated
        } else {
            method_for(&entry, content.size)
        };
        let n = self
            .zip
            .add_file(&full, modified, method, content.size, &mut reader)?;
        self.report.items += 1;
        self.report.bytes += n;
        Ok(())
    }

    /// Writes one item converted in memory (a transcript, an `.ics`, a `.vcf`) as a file of
    /// `parent` named after `name` (made unique among its siblings), and counts it.
    fn converted_item(
        &mut self,
        parent: &str,
        name: &str,
        modified: Option<OffsetDateTime>,
        bytes: &[u8],
    ) -> Result<(), ExportError> {
        let entry = self.dirs.entry(parent.to_owned()).or_default().file(name);
        let full = archive_join(parent, &entry);
        let n = self.zip.add_file(
            &full,
            modified.unwrap_or(OffsetDateTime::UNIX_EPOCH),
            Method::Deflated,
            bytes.len() as u64,
            &mut &bytes[..],
        )?;
        self.report.items += 1;
        self.report.bytes += n;
        Ok(())
    }
}

/// Writes a ZIP of `paths` at run `run` to `out`, streamed (see the module docs).
///
/// # Errors
/// A path that does not exist at that run, a repository or output failure, or an item that
/// cannot be converted. The output is then incomplete.
pub fn export_zip(
    repo: &Repository,
    run: RunId,
    paths: &[String],
    out: impl Write,
) -> Result<ExportReport, ExportError> {
    let sel = selections(paths)?;
    let mut ex = ZipExport {
        repo,
        run,
        zip: ZipStream::new(out),
        dirs: HashMap::new(),
        written_dirs: HashSet::new(),
        report: ExportReport::default(),
        mbox: false,
    };
    for s in &sel {
        ex.selection(s)?;
    }
    let mut report = ex.report;
    let (_, written) = ex.zip.finish()?;
    report.written = written;
    Ok(report)
}

/// Writes a ZIP with one mboxrd file per mail folder under `paths`: `Inbox.mbox` next to an
/// `Inbox/` directory holding its subfolders' files, under the full backup path as in
/// [`export_zip`]. Streamed like [`export_zip`].
///
/// # Errors
/// As [`export_mbox`].
pub fn export_mbox_per_folder(
    repo: &Repository,
    run: RunId,
    paths: &[String],
    out: impl Write,
) -> Result<ExportReport, ExportError> {
    let sel = selections(paths)?;
    let mut ex = ZipExport {
        repo,
        run,
        zip: ZipStream::new(out),
        dirs: HashMap::new(),
        written_dirs: HashSet::new(),
        report: ExportReport::default(),
        mbox: true,
    };
    for s in &sel {
        ex.selection(s)?;
    }
    if ex.report.items == 0 && ex.report.folders == 0 {
        return Err(ExportError::NoMail);
    }
    let mut report = ex.report;
    let (_, written) = ex.zip.finish()?;
    report.written = written;
    Ok(report)
}

/// How many mail folders under `paths` hold messages: what decides between one MBOX stream
/// and [`export_mbox_per_folder`].
///
/// # Errors
/// A path that does not exist, or a repository failure.
pub fn mail_folders_with_mail(
    repo: &Repository,
    run: RunId,
    paths: &[String],
) -> Result<usize, ExportError> {
    mbox::count_folders(repo, run, &selections(paths)?)
}

/// Writes one mboxrd stream of every message under `paths` at run `run` (see the module docs).
///
/// # Errors
/// A path that does not exist, no mail in the selection, a repository or output failure.
pub fn export_mbox(
    repo: &Repository,
    run: RunId,
    paths: &[String],
    out: impl Write,
) -> Result<ExportReport, ExportError> {
    mbox::export(repo, run, &selections(paths)?, out)
}

impl<W: Write> ZipExport<'_, W> {
    /// The MBOX-per-folder walk: a mail folder becomes `<name>.mbox` (if it holds messages)
    /// and, for its subfolders, a `<name>/` directory.
    fn mbox_node(
        &mut self,
        parent: &str,
        path: &str,
        v: &VersionRecord,
    ) -> Result<(), ExportError> {
        match v.kind {
            NodeKind::Root | NodeKind::MailFolder => {}
            NodeKind::Message => return self.mbox_file(parent, &v.name, std::slice::from_ref(v)),
            _ => return Ok(()),
        }
        let children = self.repo.list_children(v.node, self.run)?;
        let (messages, folders): (Vec<_>, Vec<_>) = children
            .into_iter()
            .filter(|c| matches!(c.kind, NodeKind::Message | NodeKind::MailFolder))
            .partition(|c| c.kind == NodeKind::Message);
        if v.kind == NodeKind::Root && messages.is_empty() && folders.is_empty() {
            return Ok(());
        }
        if !messages.is_empty() {
            self.mbox_file(parent, &v.name, &messages)?;
        }
        drop(messages);
        if !folders.is_empty() {
            let dir = self.enter_dir(parent, &v.name, v.modified)?;
            for c in &folders {
                let child_path = format!("{path}/{}", paths::encode_segment(&c.name));
                self.mbox_node(&dir, &child_path, c)?;
            }
            self.dirs.remove(&dir);
        }
        Ok(())
    }

    fn mbox_file(
        &mut self,
        parent: &str,
        name: &str,
        messages: &[VersionRecord],
    ) -> Result<(), ExportError> {
        let entry_name = self
            .dirs
            .entry(parent.to_owned())
            .or_default()
            .file(&format!("{name}.mbox"));
        let full = archive_join(parent, &entry_name);
        // Quoting adds at most one byte per line; the separators are short.
        let hint: u64 = messages
            .iter()
            .map(|m| m.size.saturating_mul(2) + 256)
            .sum();
        let method = if hint > DEFLATE_LIMIT {
            Method::Stored
        } else {
            Method::Deflated
        };
        let modified = messages
            .iter()
            .filter_map(|m| m.modified)
            .max()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut entry = self.zip.start_file(&full, modified, method, hint)?;
        for m in messages {
            let Some(content) = m.content else {
                continue;
            };
            let line = mbox::separator(&m.metadata, m.modified);
            entry.write_all(line.as_bytes())?;
            let mut reader = self.repo.read_content(content.id)?;
            let mut q = mbox::Quoter::new(&mut entry);
            let n = io::copy(&mut reader, &mut q)?;
            q.finish()?;
            entry.write_all(b"\n")?;
            self.report.items += 1;
            self.report.bytes += n;
        }
        entry.finish()?;
        Ok(())
    }
}

/// Reads a whole (small) content: event, contact and conversation JSON.
fn read_small(
    repo: &Repository,
    path: &str,
    id: backhome_store::ContentId,
) -> Result<Vec<u8>, ExportError> {
    const LIMIT: u64 = 256 << 20;
    let mut buf = Vec::new();
    repo.read_content(id)?
        .take(LIMIT + 1)
        .read_to_end(&mut buf)?;
    if buf.len() as u64 > LIMIT {
        return Err(ExportError::Convert {
            path: path.to_owned(),
            reason: "larger than 256 MiB".into(),
        });
    }
    Ok(buf)
}
