//! MBOX (mboxrd) export: `From ` separator lines, `>From ` quoting, message bytes kept.

use std::io::{self, Write};

use backhome_store::{NodeKind, Repository, RunId, VersionRecord};
use serde_json::Value;
use time::OffsetDateTime;

use super::{ExportError, ExportReport};
use crate::cli::browse::{self, BrowseError, Target};
use crate::paths;

const FROM: &[u8] = b"From ";

/// Where the quoting filter is in the current line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a line: `gt` `>` seen, then `matched` bytes of `From `.
    Start { gt: u64, matched: usize },
    /// Past the point where the line could need quoting.
    Middle,
}

/// Copies a message into an mboxrd stream, adding one `>` to every line that matches
/// `^>*From `. Works on any chunking of the input with constant memory.
pub struct Quoter<W: Write> {
    out: W,
    state: State,
    last: Option<u8>,
    written: u64,
}

impl<W: Write> Quoter<W> {
    /// Starts a message at the beginning of a line.
    pub fn new(out: W) -> Self {
        Self {
            out,
            state: State::Start { gt: 0, matched: 0 },
            last: None,
            written: 0,
        }
    }

    fn emit(&mut self, b: &[u8]) -> io::Result<()> {
        if let Some(&l) = b.last() {
            self.out.write_all(b)?;
            self.last = Some(l);
            self.written += b.len() as u64;
        }
        Ok(())
    }

    fn emit_gt(&mut self, n: u64) -> io::Result<()> {
        for _ in 0..n {
            self.emit(b">")?;
        }
        Ok(())
    }

    /// Ends the message: flushes a pending line start and makes sure it ends with a newline.
    /// Returns the output and the bytes written.
    ///
    /// # Errors
    /// Writing failed.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        if let State::Start { gt, matched } = self.state {
            self.emit_gt(gt)?;
            self.emit(&FROM[..matched])?;
        }
        if self.last.is_some_and(|l| l != b'\n') {
            self.emit(b"\n")?;
        }
        Ok((self.out, self.written))
    }
}

impl<W: Write> Write for Quoter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut i = 0;
        while i < buf.len() {
            match self.state {
                State::Middle => {
                    let rest = &buf[i..];
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(p) => {
                            self.emit(&rest[..=p])?;
                            i += p + 1;
                            self.state = State::Start { gt: 0, matched: 0 };
                        }
                        None => {
                            self.emit(rest)?;
                            i = buf.len();
                        }
                    }
                }
                State::Start { gt, matched } => {
                    let b = buf[i];
                    if matched == 0 && b == b'>' {
                        self.state = State::Start {
                            gt: gt + 1,
                            matched,
                        };
                        i += 1;
                    } else if b == FROM[matched] {
                        i += 1;
                        if matched + 1 == FROM.len() {
                            self.emit_gt(gt + 1)?;
                            self.emit(FROM)?;
                            self.state = State::Middle;
                        } else {
                            self.state = State::Start {
                                gt,
                                matched: matched + 1,
                            };
                        }
                    } else {
                        self.emit_gt(gt)?;
                        self.emit(&FROM[..matched])?;
                        self.state = State::Middle;
                    }
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The `From ` line of a message: its sender's address and its received time in asctime form.
#[must_use]
pub fn separator(metadata: &Value, fallback_time: Option<OffsetDateTime>) -> String {
    let sender = ["from", "sender"]
        .iter()
        .find_map(|k| {
            metadata
                .pointer(&format!("/{k}/emailAddress/address"))?
                .as_str()
        })
        .map(|a| {
            a.chars()
                .map(|c| {
                    if c.is_whitespace() || c.is_control() {
                        '_'
                    } else {
                        c
                    }
                })
                .collect::<String>()
        })
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "MAILER-DAEMON".to_owned());
    let when = ["receivedDateTime", "sentDateTime"]
        .iter()
        .find_map(|k| {
            let s = metadata.get(*k)?.as_str()?;
            OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
        })
        .or(fallback_time)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
    );
    let date = when
        .format(&fmt)
        .unwrap_or_else(|_| "Thu Jan  1 00:00:00 1970".to_owned());
    format!("From {sender} {date}\n")
}

struct Mbox<'a, W: Write> {
    repo: &'a Repository,
    run: RunId,
    out: Option<W>,
    mail_seen: bool,
    report: ExportReport,
}

impl<W: Write> Mbox<'_, W> {
    fn selection(&mut self, names: &[String]) -> Result<(), ExportError> {
        let path = paths::join(names);
        match browse::resolve(self.repo, self.run, &path)? {
            Target::Virtual(entries) => {
                for e in entries {
                    let sub = paths::split(&e.path).map_err(BrowseError::BadPath)?;
                    self.selection(&sub)?;
                }
            }
            Target::Node(v) => self.node(&v)?,
        }
        Ok(())
    }

    fn node(&mut self, v: &VersionRecord) -> Result<(), ExportError> {
        match v.kind {
            NodeKind::Message => self.message(v),
            NodeKind::MailFolder | NodeKind::Root => {
                if v.kind == NodeKind::MailFolder {
                    self.mail_seen = true;
                }
                for c in self.repo.list_children(v.node, self.run)? {
                    if matches!(c.kind, NodeKind::Message | NodeKind::MailFolder) {
                        self.node(&c)?;
                    }
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn message(&mut self, v: &VersionRecord) -> Result<(), ExportError> {
        self.mail_seen = true;
        let Some(content) = v.content else {
            return Ok(());
        };
        let Some(mut out) = self.out.take() else {
            return Ok(());
        };
        let line = separator(&v.metadata, v.modified);
        out.write_all(line.as_bytes())?;
        let mut reader = self.repo.read_content(content.id)?;
        let mut q = Quoter::new(out);
        let n = io::copy(&mut reader, &mut q)?;
        let (mut out, quoted) = q.finish()?;
        out.write_all(b"\n")?;
        self.report.items += 1;
        self.report.bytes += n;
        self.report.written += line.len() as u64 + quoted + 1;
        self.out = Some(out);
        Ok(())
    }
}

/// How many mail folders under `selections` hold messages.
pub(super) fn count_folders(
    repo: &Repository,
    run: RunId,
    selections: &[Vec<String>],
) -> Result<usize, ExportError> {
    fn walk(
        repo: &Repository,
        run: RunId,
        v: &VersionRecord,
        n: &mut usize,
    ) -> Result<(), ExportError> {
        if !matches!(v.kind, NodeKind::Root | NodeKind::MailFolder) {
            return Ok(());
        }
        let mut has_mail = false;
        for c in repo.list_children(v.node, run)? {
            match c.kind {
                NodeKind::Message => has_mail = true,
                NodeKind::MailFolder => walk(repo, run, &c, n)?,
                _ => {}
            }
        }
        if has_mail {
            *n += 1;
        }
        Ok(())
    }
    fn selection(
        repo: &Repository,
        run: RunId,
        names: &[String],
        n: &mut usize,
    ) -> Result<(), ExportError> {
        match browse::resolve(repo, run, &paths::join(names))? {
            Target::Virtual(entries) => {
                for e in entries {
                    let sub = paths::split(&e.path).map_err(BrowseError::BadPath)?;
                    selection(repo, run, &sub, n)?;
                }
            }
            Target::Node(v) => walk(repo, run, &v, n)?,
        }
        Ok(())
    }
    let mut n = 0;
    for s in selections {
        selection(repo, run, s, &mut n)?;
    }
    Ok(n)
}

/// Writes the mboxrd stream of the messages under `selections`.
pub(super) fn export<W: Write>(
    repo: &Repository,
    run: RunId,
    selections: &[Vec<String>],
    out: W,
) -> Result<ExportReport, ExportError> {
    let mut m = Mbox {
        repo,
        run,
        out: Some(io::BufWriter::with_capacity(64 * 1024, out)),
        mail_seen: false,
        report: ExportReport::default(),
    };
    for s in selections {
        m.selection(s)?;
    }
    if !m.mail_seen {
        return Err(ExportError::NoMail);
    }
    if let Some(mut out) = m.out.take() {
        out.flush()?;
    }
    Ok(m.report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut q = Quoter::new(Vec::new());
        for c in input.chunks(chunk.max(1)) {
            q.write_all(c).unwrap();
        }
        q.finish().unwrap().0
    }

    #[test]
    fn from_lines_are_quoted_mboxrd_style_at_any_chunking() {
        let input = b"From a\r\nx From b\r\n>From c\r\n>>From d\r\nFrom\r\n>Fro\r\nFrOm e\r\n";
        let want = b">From a\r\nx From b\r\n>>From c\r\n>>>From d\r\nFrom\r\n>Fro\r\nFrOm e\r\n";
        for chunk in [1, 2, 3, 5, 7, 100] {
            assert_eq!(quote(input, chunk), want, "chunk {chunk}");
        }
        assert_eq!(quote(b"no newline", 3), b"no newline\n");
        assert_eq!(quote(b">Fr", 1), b">Fr\n");
        assert_eq!(quote(b"", 1), b"");
    }

    #[test]
    fn separator_lines_name_the_sender_and_time() {
        let meta = serde_json::json!({
            "from": {"emailAddress": {"address": "ann smith@contoso.com"}},
            "receivedDateTime": "2026-11-05T09:03:04Z"
        });
        assert_eq!(
            separator(&meta, None),
            "From ann_smith@contoso.com Thu Nov  5 09:03:04 2026\n"
        );
        assert_eq!(
            separator(&Value::Null, None),
            "From MAILER-DAEMON Thu Jan  1 00:00:00 1970\n"
        );
    }
}
