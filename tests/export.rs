//! Exports read back by independent tools: `unzip -t`, Python's `zipfile`, `mailbox` and `email`,
//! and the `icalendar` and `vobject` parsers from PyPI; hostile names that must stay inside the
//! archive root; and the memory an export of a large file needs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use backhome::backup::{self, Progress};
use backhome::export::{self, names::sanitize_component};
use backhome::task::{Credentials, Service, TaskSpec};
use backhome_store::{
    CreateOptions, NewVersion, NodeKind, ObjectInfo, ObjectKind, Repository, RunId, VersionRecord,
};
use graph_sim::{Profile, SimOptions, Simulator};
use serde_json::{Value, json};

mod common;
use common::python::{python, python_with, venv};

const CHECK_ZIP: &str = r#"
import hashlib, os, sys, zipfile, email, email.policy
path, prefix, suffix, expected = sys.argv[1:5]
z = zipfile.ZipFile(path)
bad = z.testzip()
assert bad is None, f"bad entry {bad}"
got = []
for info in z.infolist():
    n = info.filename
    if n.startswith(prefix) and not n.endswith('/') and n.endswith(suffix):
        data = z.read(info)
        if suffix == '.eml':
            m = email.message_from_bytes(data, policy=email.policy.default)
            assert m['message-id'] or m['subject'] is not None, n
        got.append(hashlib.sha256(data).hexdigest())
want = [hashlib.sha256(open(os.path.join(expected, f), 'rb').read()).hexdigest() for f in os.listdir(expected)]
assert sorted(got) == sorted(want), f"{prefix}*{suffix}: {len(got)} entries, {len(want)} expected"
print(len(got))
"#;

const CHECK_MBOX: &str = r#"
import hashlib, os, re, sys, mailbox, email, email.policy
path, expected = sys.argv[1:3]
box = mailbox.mbox(path, create=False)
got = []
for key in box.keys():
    raw = box.get_bytes(key)
    raw = re.sub(rb'(?m)^>(>*From )', rb'\1', raw)
    email.message_from_bytes(raw, policy=email.policy.default)
    got.append(hashlib.sha256(raw).hexdigest())
    assert box.get_message(key).get_from(), key
want = [hashlib.sha256(open(os.path.join(expected, f), 'rb').read()).hexdigest() for f in os.listdir(expected)]
assert sorted(got) == sorted(want), f"{len(got)} messages, {len(want)} expected"
print(len(got))
"#;

const CHECK_MBOX_ZIP: &str = r#"
import hashlib, os, re, sys, zipfile, mailbox
path, unpacked, expected = sys.argv[1:4]
z = zipfile.ZipFile(path)
names = [n for n in z.namelist() if not n.endswith('/')]
assert all(n.endswith('.mbox') for n in names), names
z.extractall(unpacked)
got = []
for n in names:
    box = mailbox.mbox(os.path.join(unpacked, n), create=False)
    keys = box.keys()
    assert keys, n
    for key in keys:
        raw = re.sub(rb'(?m)^>(>*From )', rb'\1', box.get_bytes(key))
        got.append(hashlib.sha256(raw).hexdigest())
want = [hashlib.sha256(open(os.path.join(expected, f), 'rb').read()).hexdigest() for f in os.listdir(expected)]
assert sorted(got) == sorted(want), f"{len(got)} messages, {len(want)} expected"
print(len(names), len(got))
"#;

const CHECK_ICS_VCF: &str = r#"
import sys, zipfile, icalendar, vobject
path, uids_file, names_file = sys.argv[1:4]
z = zipfile.ZipFile(path)
uids, names, html = set(), set(), 0
for n in z.namelist():
    data = z.read(n)
    if n.endswith('.ics'):
        cal = icalendar.Calendar.from_ical(data)
        evs = [c for c in cal.walk('VEVENT')]
        assert len(evs) == 1, n
        ev = evs[0]
        assert ev.decoded('DTSTART') is not None, n
        if 'RRULE' in ev:
            ev['RRULE'].to_ical()
        uids.add(str(ev['UID']))
    elif n.endswith('.vcf'):
        card = vobject.readOne(data.decode('utf-8'))
        names.add(card.fn.value)
    elif n.endswith('.html'):
        text = data.decode('utf-8')
        assert '<script' not in text.lower(), n
        html += 1
want_uids = set(l for l in open(uids_file).read().splitlines() if l)
want_names = set(l for l in open(names_file).read().splitlines() if l)
assert uids == want_uids, (sorted(uids)[:3], sorted(want_uids)[:3])
assert names == want_names, (sorted(names)[:3], sorted(want_names)[:3])
print(len(uids), len(names), html)
"#;

const CHECK_SLIP: &str = r#"
import os, sys, zipfile
path, root, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
z = zipfile.ZipFile(path)
assert z.testzip() is None
for n in z.namelist():
    assert not n.startswith('/') and '\\' not in n and ':' not in n, n
    for part in n.rstrip('/').split('/'):
        assert part not in ('', '.', '..'), n
        assert len(part.encode()) <= 255, n
        assert not part.endswith(('.', ' ')), n
        assert part.split('.')[0].upper() not in ('CON', 'PRN', 'AUX', 'NUL'), n
z.extractall(root)
real_root = os.path.realpath(root)
files = 0
for d, dirs, fs in os.walk(root):
    for f in fs:
        p = os.path.realpath(os.path.join(d, f))
        assert p.startswith(real_root + os.sep), p
        files += 1
assert files == want, (files, want)
print(files)
"#;

fn unzip_test(path: &Path) {
    let out = Command::new("unzip").arg("-tq").arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "unzip -t failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn subtree(repo: &Repository, run: RunId, root: &VersionRecord, out: &mut Vec<VersionRecord>) {
    for c in repo.list_children(root.node, run).unwrap() {
        subtree(repo, run, &c, out);
        out.push(c);
    }
}

fn content(repo: &Repository, v: &VersionRecord) -> Vec<u8> {
    let mut buf = Vec::new();
    repo.read_content(v.content.unwrap().id)
        .unwrap()
        .read_to_end(&mut buf)
        .unwrap();
    buf
}

/// Writes the contents of `items` into a fresh directory, one file each.
fn expected_dir(base: &Path, name: &str, repo: &Repository, items: &[&VersionRecord]) -> PathBuf {
    let dir = base.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, v) in items.iter().enumerate() {
        std::fs::write(dir.join(i.to_string()), content(repo, v)).unwrap();
    }
    dir
}

#[actix_web::test]
async fn exports_of_a_backed_up_tenant_read_back_with_independent_tools() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = SimOptions::new(Profile::Tiny);
    opts.state_dir = Some(dir.path().join("sim"));
    let sim = Simulator::start(opts).await.unwrap();
    let r = sim.ready().clone();
    let spec = TaskSpec::new(
        "t",
        r.tenant_id.clone(),
        r.app_id.clone(),
        dir.path().join("repo"),
    )
    .with_endpoints(r.login_endpoint.clone(), r.graph_endpoint.clone())
    .with_services(&[
        Service::Mail,
        Service::Calendar,
        Service::Contacts,
        Service::Onedrive,
        Service::Teams,
    ]);
    let creds = Credentials {
        pfx: std::fs::read(&r.cert_pfx).unwrap(),
        password: r.cert_password.clone(),
    };
    let repo = Repository::create(&spec.repo, &CreateOptions::default()).unwrap();
    let client = backhome::connect::client(&spec, &creds).unwrap();
    let summary = backup::run(
        client,
        repo.clone(),
        &spec,
        Arc::new(Progress::default()),
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    sim.stop().await;
    let run = RunId(summary.run_id);

    // The user with the most mail, and what the repository holds for them.
    let mut best: Option<(usize, String, Vec<VersionRecord>)> = None;
    for o in repo.objects().unwrap() {
        if o.info.kind != ObjectKind::User {
            continue;
        }
        let mut all = Vec::new();
        for root in repo.roots(o.id, run).unwrap() {
            subtree(&repo, run, &root, &mut all);
        }
        let n = all.iter().filter(|v| v.kind == NodeKind::Message).count();
        if best.as_ref().is_none_or(|b| n > b.0) {
            best = Some((n, o.info.address.clone().unwrap(), all));
        }
    }
    let (n_messages, upn, items) = best.unwrap();
    assert!(n_messages > 0);
    let of =
        |k: NodeKind| -> Vec<&VersionRecord> { items.iter().filter(|v| v.kind == k).collect() };
    let (messages, files, events, contacts) = (
        of(NodeKind::Message),
        of(NodeKind::File),
        of(NodeKind::Event),
        of(NodeKind::Contact),
    );
    assert!(!files.is_empty() && !events.is_empty() && !contacts.is_empty());
    let base = dir.path().join("expected");
    let mail_dir = expected_dir(&base, "mail", &repo, &messages);
    let drive_dir = expected_dir(&base, "drive", &repo, &files);

    // ZIP of the mailbox, the drive, the calendar and the contacts, and every team.
    let selection: Vec<String> = ["mail", "onedrive", "calendar", "contacts"]
        .iter()
        .map(|w| format!("/users/{upn}/{w}"))
        .chain(["/teams".to_owned()])
        .collect();
    let zip_path = dir.path().join("export.zip");
    let report = export::export_zip(
        &repo,
        run,
        &selection,
        std::io::BufWriter::new(std::fs::File::create(&zip_path).unwrap()),
    )
    .unwrap();
    assert_eq!(
        report.written,
        std::fs::metadata(&zip_path).unwrap().len(),
        "{report:?}"
    );
    unzip_test(&zip_path);
    let user_dir = format!("users/{}/", sanitize_component(&upn));
    let zp = zip_path.to_str().unwrap();
    let n = python(
        CHECK_ZIP,
        &[
            zp,
            &format!("{user_dir}mail/"),
            ".eml",
            mail_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(n, messages.len().to_string());
    let n = python(
        CHECK_ZIP,
        &[
            zp,
            &format!("{user_dir}onedrive/"),
            "",
            drive_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(n, files.len().to_string());

    // Events and contacts parse with independent iCalendar and vCard parsers.
    let uids: BTreeSet<String> = events
        .iter()
        .map(|v| {
            let j: Value = serde_json::from_slice(&content(&repo, v)).unwrap();
            j["iCalUId"].as_str().unwrap().to_owned()
        })
        .collect();
    let fns: BTreeSet<String> = contacts
        .iter()
        .map(|v| {
            let j: Value = serde_json::from_slice(&content(&repo, v)).unwrap();
            j["displayName"].as_str().unwrap().trim().to_owned()
        })
        .collect();
    let uids_file = dir.path().join("uids.txt");
    let fns_file = dir.path().join("fns.txt");
    std::fs::write(
        &uids_file,
        uids.iter().cloned().collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    std::fs::write(
        &fns_file,
        fns.iter().cloned().collect::<Vec<_>>().join("\n"),
    )
    .unwrap();
    let channel_posts = repo
        .objects()
        .unwrap()
        .iter()
        .flat_map(|o| repo.roots(o.id, run).unwrap())
        .filter(|r| r.name == "channels")
        .map(|r| {
            let mut all = Vec::new();
            subtree(&repo, run, &r, &mut all);
            all.iter()
                .filter(|v| v.kind == NodeKind::ChannelMessage)
                .count()
        })
        .sum::<usize>();
    if let Some(py) = venv() {
        let out = python_with(
            py.to_str().unwrap(),
            CHECK_ICS_VCF,
            &[zp, uids_file.to_str().unwrap(), fns_file.to_str().unwrap()],
        );
        assert_eq!(
            out,
            format!("{} {} {channel_posts}", uids.len(), fns.len()),
            "uids, contact names, transcripts"
        );
    }

    // MBOX of the mailbox.
    let mbox_path = dir.path().join("mail.mbox");
    let report = export::export_mbox(
        &repo,
        run,
        &[format!("/users/{upn}/mail")],
        std::fs::File::create(&mbox_path).unwrap(),
    )
    .unwrap();
    assert_eq!(report.items, messages.len() as u64);
    assert_eq!(report.written, std::fs::metadata(&mbox_path).unwrap().len());
    let n = python(
        CHECK_MBOX,
        &[mbox_path.to_str().unwrap(), mail_dir.to_str().unwrap()],
    );
    assert_eq!(n, messages.len().to_string());

    // The command line writes the same bytes, to a file or to standard output.
    let data = dir.path().join("data");
    backhome::task::TaskStore::open(&data)
        .unwrap()
        .create(&spec, &creds)
        .unwrap();
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_backhome"))
            .arg("--data-dir")
            .arg(&data)
            .arg("export")
            .args(["--task", "t", "--at", &run.0.to_string()])
            .args(args)
            .output()
            .unwrap()
    };
    let cli_zip = dir.path().join("cli.zip");
    let mut args = vec!["--format", "zip", "--out", cli_zip.to_str().unwrap()];
    args.extend(selection.iter().map(String::as_str));
    let out = cli(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(&cli_zip).unwrap(),
        std::fs::read(&zip_path).unwrap()
    );
    // MBOX of one folder: one stream, as the library writes it.
    let folder_path = backhome::cli::browse::list(&repo, run, &format!("/users/{upn}/mail"), true)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "mail_folder")
        .map(|e| {
            let children = backhome::cli::browse::list(&repo, run, &e.path, false).unwrap();
            (children, e)
        })
        .filter(|(children, _)| children.iter().all(|c| c.kind != "mail_folder"))
        .max_by_key(|(children, _)| children.iter().filter(|c| c.kind == "message").count())
        .map(|(_, e)| e)
        .unwrap()
        .path;
    let out = cli(&["--format", "mbox", "--out", "-", &folder_path]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut one = Vec::new();
    let report =
        export::export_mbox(&repo, run, std::slice::from_ref(&folder_path), &mut one).unwrap();
    assert!(report.items > 0);
    assert!(out.stdout == one, "the command line's MBOX differs");
    // MBOX of the whole mailbox: one .mbox per folder holding mail, in a ZIP.
    let folders: BTreeSet<_> = messages.iter().map(|v| v.parent.unwrap()).collect();
    let mail_path = format!("/users/{upn}/mail");
    let per_folder = dir.path().join("per-folder.zip");
    let out = cli(&[
        "--format",
        "mbox",
        "--out",
        per_folder.to_str().unwrap(),
        &mail_path,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        folders.len() > 1,
        "the tiny tenant has mail in several folders"
    );
    unzip_test(&per_folder);
    let unpacked = dir.path().join("per-folder");
    let n = python(
        CHECK_MBOX_ZIP,
        &[
            per_folder.to_str().unwrap(),
            unpacked.to_str().unwrap(),
            mail_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(n, format!("{} {}", folders.len(), messages.len()));
    // A mistyped path is refused before the output is opened: the old file is kept.
    let out = cli(&[
        "--format",
        "zip",
        "--out",
        cli_zip.to_str().unwrap(),
        "/users/nobody/mail",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such path"));
    assert_eq!(
        std::fs::read(&cli_zip).unwrap(),
        std::fs::read(&zip_path).unwrap()
    );
    // A failed export removes its partial file.
    let partial = dir.path().join("partial.mbox");
    let out = cli(&[
        "--format",
        "mbox",
        "--out",
        partial.to_str().unwrap(),
        &format!("/users/{upn}/onedrive"),
    ]);
    assert!(!out.status.success());
    assert!(!partial.exists());

    // A drive has no mail: MBOX refuses it; a path that does not exist is an error.
    assert!(matches!(
        export::export_mbox(
            &repo,
            run,
            &[format!("/users/{upn}/onedrive")],
            std::io::sink()
        ),
        Err(export::ExportError::NoMail)
    ));
    assert!(export::export_zip(&repo, run, &["/users/nobody".into()], std::io::sink()).is_err());
}

/// A repository with one user and a drive holding `files` (name → bytes) at the root and inside
/// a folder named `..`.
fn hostile_repo(path: &Path, names: &[String]) -> (Repository, RunId) {
    let repo = Repository::create(path, &CreateOptions::default()).unwrap();
    let mut w = repo.begin_run().unwrap();
    let obj = w
        .upsert_object(&ObjectInfo {
            kind: ObjectKind::User,
            graph_id: "u1".into(),
            name: "Ann".into(),
            address: Some("ann@contoso.com".into()),
            extra: json!({}),
        })
        .unwrap();
    let root = w.node(obj, "root:onedrive", NodeKind::Root).unwrap();
    w.put_version(
        root,
        &NewVersion {
            name: "onedrive".into(),
            ..NewVersion::default()
        },
    )
    .unwrap();
    let sub = w.node(obj, "folder-dotdot", NodeKind::DriveFolder).unwrap();
    w.put_version(
        sub,
        &NewVersion {
            parent: Some(root),
            name: "..".into(),
            ..NewVersion::default()
        },
    )
    .unwrap();
    for (i, name) in names.iter().enumerate() {
        for (parent, tag) in [(root, "r"), (sub, "s")] {
            let data = format!("{tag}{i}:{name}");
            let stored = w.put_bytes(data.as_bytes()).unwrap();
            let node = w.node(obj, &format!("{tag}{i}"), NodeKind::File).unwrap();
            w.put_version(
                node,
                &NewVersion {
                    parent: Some(parent),
                    name: name.clone(),
                    content: Some(stored.content),
                    size: stored.content.size,
                    ..NewVersion::default()
                },
            )
            .unwrap();
        }
    }
    // An event whose JSON has no start cannot become iCalendar: it is exported as JSON.
    let stored = w
        .put_bytes(br#"{"id": "e1", "subject": "no start"}"#)
        .unwrap();
    let node = w.node(obj, "e1", NodeKind::Event).unwrap();
    w.put_version(
        node,
        &NewVersion {
            parent: Some(root),
            name: "broken event".into(),
            content: Some(stored.content),
            size: stored.content.size,
            ..NewVersion::default()
        },
    )
    .unwrap();
    w.commit(&json!({})).unwrap();
    let run = repo.latest_run().unwrap().unwrap();
    (repo, run)
}

#[test]
fn hostile_names_never_leave_the_archive_root() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = [
        "../../etc/passwd",
        "..",
        ".",
        "",
        "/etc/shadow",
        "C:\\x",
        "C:",
        "CON.txt",
        "con",
        "a/../../b",
        "..\\..\\windows\\system32",
        "trailing dots...",
        "trailing space ",
        "🎉 emoji 👩‍👩‍👧.txt",
        "Cafe\u{301}.txt",
        "café.txt",
        "x\u{1b}y\u{7}z",
        "Report.docx",
        "REPORT.DOCX",
        "report.docx",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain([format!("{}.pdf", "n".repeat(1000)), "é".repeat(1000)])
    .collect();
    let (repo, run) = hostile_repo(&dir.path().join("repo"), &names);
    let zip_path = dir.path().join("hostile.zip");
    let report = export::export_zip(
        &repo,
        run,
        &["/users/ann@contoso.com/onedrive".into()],
        std::fs::File::create(&zip_path).unwrap(),
    )
    .unwrap();
    let files = 2 * names.len() + 1;
    assert_eq!(report.items, files as u64);
    assert_eq!(report.warnings.len(), 1, "{:?}", report.warnings);
    assert!(
        report.warnings[0].contains("DTSTART has no dateTime"),
        "{:?}",
        report.warnings
    );
    unzip_test(&zip_path);
    let root = dir.path().join("extract");
    std::fs::create_dir(&root).unwrap();
    let n = python(
        CHECK_SLIP,
        &[
            zip_path.to_str().unwrap(),
            root.to_str().unwrap(),
            &files.to_string(),
        ],
    );
    assert_eq!(n, files.to_string());
    // Nothing was written next to the extraction root.
    let outside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut outside = outside;
    outside.sort();
    assert_eq!(outside, ["extract", "hostile.zip", "repo"]);
    // Also extracted by `unzip`, which keeps names as given (no sanitising of its own).
    let root2 = dir.path().join("extract-unzip");
    let out = Command::new("unzip")
        .args(["-q", "-o"])
        .arg(&zip_path)
        .arg("-d")
        .arg(&root2)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut count = 0;
    let mut stack = vec![root2.clone()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            assert!(p.canonicalize().unwrap().starts_with(&root2));
            if p.is_dir() {
                stack.push(p);
            } else {
                count += 1;
            }
        }
    }
    assert_eq!(count, files);
    assert!(
        root2
            .join("users/ann@contoso.com/onedrive/broken event.json")
            .is_file()
    );
}

const CHILD_ENV: &str = "BACKHOME_EXPORT_MEMORY_CHILD";
const LARGE: u64 = 300 << 20;

/// A deterministic, incompressible byte stream.
struct Noise {
    left: u64,
    state: u64,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.left) as usize;
        for chunk in buf[..n].chunks_mut(8) {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 7;
            self.state ^= self.state << 17;
            let b = self.state.to_le_bytes();
            chunk.copy_from_slice(&b[..chunk.len()]);
        }
        self.left -= n as u64;
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Counts what it is given and keeps nothing.
struct CountingSink(u64);

impl Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Run by [`exporting_a_large_file_keeps_memory_bounded`] in a child process.
#[test]
#[ignore = "run as a child process by exporting_a_large_file_keeps_memory_bounded"]
fn memory_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let repo = Repository::open(&path, None).unwrap();
    let run = repo.latest_run().unwrap().unwrap();
    let before = peak_rss_kib();
    let started = std::time::Instant::now();
    let mut sink = CountingSink(0);
    let report = export::export_zip(
        &repo,
        run,
        &["/users/ann@contoso.com/onedrive".into()],
        &mut sink,
    )
    .unwrap();
    assert_eq!(report.written, sink.0);
    println!(
        "RESULT before_kib={before} peak_kib={} ms={} bytes={} written={}",
        peak_rss_kib(),
        started.elapsed().as_millis(),
        report.bytes,
        report.written
    );
}

#[test]
fn exporting_a_large_file_keeps_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    {
        let repo = Repository::create(&path, &CreateOptions::default()).unwrap();
        let mut w = repo.begin_run().unwrap();
        let obj = w
            .upsert_object(&ObjectInfo {
                kind: ObjectKind::User,
                graph_id: "u1".into(),
                name: "Ann".into(),
                address: Some("ann@contoso.com".into()),
                extra: json!({}),
            })
            .unwrap();
        let root = w.node(obj, "root:onedrive", NodeKind::Root).unwrap();
        w.put_version(
            root,
            &NewVersion {
                name: "onedrive".into(),
                ..NewVersion::default()
            },
        )
        .unwrap();
        let stored = w
            .put_content(Noise {
                left: LARGE,
                state: 0x9E37_79B9_7F4A_7C15,
            })
            .unwrap();
        let node = w.node(obj, "big", NodeKind::File).unwrap();
        w.put_version(
            node,
            &NewVersion {
                parent: Some(root),
                name: "big.bin".into(),
                content: Some(stored.content),
                size: stored.content.size,
                ..NewVersion::default()
            },
        )
        .unwrap();
        w.commit(&json!({})).unwrap();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "memory_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result from the child: {stdout}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{k}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    println!("{line}");
    assert_eq!(field("bytes"), LARGE);
    assert!(field("written") > LARGE);
    let peak_mib = field("peak_kib") / 1024;
    assert!(
        peak_mib < 100,
        "peak RSS {peak_mib} MiB exporting {} MiB",
        LARGE >> 20
    );
}

/// Zeros, without holding them.
struct Zeros(u64);

impl Read for Zeros {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.0) as usize;
        buf[..n].fill(0);
        self.0 -= n as u64;
        Ok(n)
    }
}

const CHECK_ZIP64: &str = r#"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
infos = {i.filename: i for i in z.infolist()}
big = infos['big/zeros.bin']
assert big.file_size == int(sys.argv[2]), big.file_size
assert big.CRC == int(sys.argv[3]), big.CRC
assert infos['after.txt'].header_offset > 0xFFFFFFFF
assert z.read('after.txt') == b'after the big one'
print('ok')
"#;

#[test]
fn entries_and_offsets_past_4_gib_use_zip64() {
    use backhome::export::zip::{Method, ZipStream};
    const BIG: u64 = (4 << 30) + 12_345;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.zip");
    let t = time::OffsetDateTime::UNIX_EPOCH;
    let mut z = ZipStream::new(std::io::BufWriter::new(
        std::fs::File::create(&path).unwrap(),
    ));
    z.add_dir("big", t).unwrap();
    assert_eq!(
        z.add_file("big/zeros.bin", t, Method::Stored, BIG, &mut Zeros(BIG))
            .unwrap(),
        BIG
    );
    z.add_file(
        "after.txt",
        t,
        Method::Deflated,
        17,
        &mut &b"after the big one"[..],
    )
    .unwrap();
    let (w, written) = z.finish().unwrap();
    drop(w);
    assert_eq!(written, std::fs::metadata(&path).unwrap().len());
    unzip_test(&path);
    // `unzip -t` has checked the data against its CRC; Python checks sizes, CRC and offsets as
    // the central directory gives them.
    let mut crc = crc32fast::Hasher::new();
    let zeros = vec![0u8; 1 << 20];
    let mut left = BIG;
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        crc.update(&zeros[..n]);
        left -= n as u64;
    }
    let crc = crc.finalize().to_string();
    assert_eq!(
        python(
            CHECK_ZIP64,
            &[path.to_str().unwrap(), &BIG.to_string(), &crc]
        ),
        "ok"
    );
}

#[test]
fn an_entry_larger_than_announced_is_an_error_not_a_corrupt_archive() {
    use backhome::export::zip::{Method, ZipStream};
    let t = time::OffsetDateTime::UNIX_EPOCH;
    let mut z = ZipStream::new(std::io::sink());
    let err = z
        .add_file(
            "x",
            t,
            Method::Stored,
            10,
            &mut Zeros(u64::from(u32::MAX) + 1),
        )
        .unwrap_err();
    assert!(err.to_string().contains("announced"), "{err}");
}

const CHECK_MANY: &str = r#"
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
names = z.namelist()
assert len(names) == int(sys.argv[2]), len(names)
assert z.read(names[-1]) == names[-1].encode()
print(len(names))
"#;

#[test]
fn more_than_65535_entries_use_a_zip64_end_record() {
    use backhome::export::zip::{Method, ZipStream};
    const N: usize = 70_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.zip");
    let t = time::OffsetDateTime::UNIX_EPOCH;
    let mut z = ZipStream::new(std::io::BufWriter::new(
        std::fs::File::create(&path).unwrap(),
    ));
    for i in 0..N {
        let name = format!("d{}/f{i}.txt", i % 7);
        z.add_file(
            &name,
            t,
            Method::Stored,
            name.len() as u64,
            &mut name.as_bytes(),
        )
        .unwrap();
    }
    z.finish().unwrap();
    unzip_test(&path);
    assert_eq!(
        python(CHECK_MANY, &[path.to_str().unwrap(), &N.to_string()]),
        N.to_string()
    );
}

/// Checks exported events with `icalendar`, one file per zone name and date listed in a
/// manifest (`file`, `zone` as Graph gave it, the IANA id it must mean, the offset of a Windows
/// display name): each DTSTART is the instant the wall time means in that IANA zone (per Python's
/// `zoneinfo`, from the `tzdata` release the program bundles), whether read through the TZID or
/// through the file's own VTIMEZONE; each VTIMEZONE gives the zone's offsets every three days of
/// 2005–2030; a Windows display name's offset is the zone's standard offset in 2026; and a
/// series' EXDATE and changed occurrence are read as such.
const CHECK_ZONES: &str = r#"
import sys, os, json, datetime, zoneinfo, tzdata
# The `tzdata` package, not the system's database: the release the program bundles.
zoneinfo.reset_tzpath(to=[])
assert tzdata.IANA_VERSION == sys.argv[2], (tzdata.IANA_VERSION, sys.argv[2])
import icalendar
from zoneinfo import ZoneInfo
utc = datetime.timezone.utc
bad, checked, zone_checked = [], 0, set()
manifest = json.load(open(os.path.join(sys.argv[1], 'manifest.json')))
for entry in manifest:
    n, want_zone = entry['file'], entry['iana']
    cal = icalendar.Calendar.from_ical(open(os.path.join(sys.argv[1], n), 'rb').read())
    # Built from the component itself, not looked up by its IANA id.
    zones = {str(c['TZID']): c.to_tz(lookup_tzid=False) for c in cal.walk('VTIMEZONE')}
    want_tz = ZoneInfo(want_zone)
    for ev in cal.walk('VEVENT'):
        start = ev.decoded('DTSTART')
        tzid = ev['DTSTART'].params.get('TZID')
        wall = start.replace(tzinfo=None)
        want = wall.replace(tzinfo=want_tz).astimezone(utc)
        if tzid is None:
            # Written in UTC: only right for UTC itself.
            if start.utcoffset() != datetime.timedelta(0) or want_tz.utcoffset(wall) != datetime.timedelta(0):
                bad.append((n, entry['zone'], 'written in UTC'))
            checked += 1
            continue
        if tzid not in zones:
            bad.append((n, entry['zone'], 'no VTIMEZONE for', tzid))
            continue
        if ZoneInfo(tzid).utcoffset(wall) != want_tz.utcoffset(wall):
            bad.append((n, entry['zone'], 'TZID', tzid, 'is not', want_zone))
        if start.astimezone(utc) != want:
            bad.append((n, entry['zone'], 'instant', start.astimezone(utc), want))
        if wall.replace(tzinfo=zones[tzid]).astimezone(utc) != want:
            bad.append((n, entry['zone'], 'VTIMEZONE instant', wall.isoformat(), tzid))
        checked += 1
    for tzid, tz in zones.items():
        if tzid in zone_checked:
            continue
        zone_checked.add(tzid)
        day = datetime.datetime(2005, 1, 1, 12, 0)
        while day.year < 2031:
            if tz.utcoffset(day) != ZoneInfo(tzid).utcoffset(day):
                bad.append((n, tzid, day.isoformat(), tz.utcoffset(day), ZoneInfo(tzid).utcoffset(day)))
                break
            day += datetime.timedelta(days=3)
    if entry.get('display_offset') is not None:
        std = [ZoneInfo(want_zone).utcoffset(datetime.datetime(2026, m, 15, 12)) for m in (1, 7)
               if ZoneInfo(want_zone).dst(datetime.datetime(2026, m, 15, 12)) == datetime.timedelta(0)]
        if datetime.timedelta(minutes=entry['display_offset']) not in std:
            bad.append((n, entry['zone'], 'display offset', entry['display_offset'], std))
    if n.startswith('series'):
        evs = list(cal.walk('VEVENT'))
        assert len(evs) == 2, n
        master = [e for e in evs if 'RRULE' in e][0]
        ex = master.get('EXDATE')
        ex = ex if isinstance(ex, list) else [ex]
        dates = [d.dt for e in ex for d in e.dts]
        assert [d.astimezone(utc) for d in dates] == [datetime.datetime(2026, 3, 16, 8, 30, tzinfo=utc)], dates
        moved = [e for e in evs if 'RECURRENCE-ID' in e][0]
        assert moved.decoded('RECURRENCE-ID') == datetime.datetime(2026, 3, 23, 8, 30, tzinfo=utc)
        assert str(moved['UID']) == str(master['UID'])
assert not bad, (len(bad), bad[:20])
print(checked, len(zone_checked))
"#;

/// The offset of a Windows display name, in minutes: `(UTC+05:45) …` → 345, `(UTC) …` → 0.
fn display_offset(display: &str) -> i64 {
    let Some(rest) = display.strip_prefix("(UTC") else {
        panic!("{display}");
    };
    if rest.starts_with(')') {
        return 0;
    }
    let sign = if rest.starts_with('-') { -1 } else { 1 };
    let h: i64 = rest[1..3].parse().unwrap();
    let m: i64 = rest[4..6].parse().unwrap();
    sign * (h * 60 + m)
}

#[test]
fn events_in_windows_and_iana_zones_give_the_right_instant() {
    let Some(py) = venv() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // (name Graph gives, IANA id it means, offset of a Windows display name)
    let mut zones: Vec<(String, String, Option<i64>)> = Vec::new();
    for (windows, display, iana) in export::tz::WINDOWS_ZONES {
        zones.push((windows.to_owned(), iana.to_owned(), None));
        zones.push((
            display.to_owned(),
            iana.to_owned(),
            Some(display_offset(display)),
        ));
    }
    for (windows, iana) in export::tz::LEGACY_WINDOWS_ZONES {
        zones.push((windows.to_owned(), iana.to_owned(), None));
    }
    // IANA ids as `Prefer: outlook.timezone` gives them, old spellings, and zones whose rules
    // are unusual (past midnight, negative, half-hour or 45-minute offsets, Ramadan breaks).
    for iana in [
        "Europe/Berlin",
        "America/New_York",
        "Europe/Kiev",
        "Asia/Calcutta",
        "America/Santa_Isabel",
        "America/Godthab",
        "Etc/GMT+12",
        "Africa/Casablanca",
        "Asia/Jerusalem",
        "Africa/Cairo",
        "America/Nuuk",
        "America/Scoresbysund",
        "Australia/Lord_Howe",
        "Pacific/Chatham",
        "America/Santiago",
        "Pacific/Easter",
        "Antarctica/Troll",
        "Europe/Dublin",
        "Asia/Tehran",
        "America/Havana",
        "Asia/Hebron",
        "Asia/Gaza",
        "Europe/Lisbon",
        "Asia/Kathmandu",
    ] {
        zones.push((iana.to_owned(), iana.to_owned(), None));
    }
    let mut manifest = Vec::new();
    for (i, (zone, iana, display)) in zones.iter().enumerate() {
        // A winter and a summer time (of either hemisphere), now and before today's rules.
        for (j, day) in [
            "2026-01-15T09:30:00.0000000",
            "2026-07-15T18:45:00.0000000",
            "2010-01-15T09:30:00.0000000",
            "2010-07-15T18:45:00.0000000",
        ]
        .iter()
        .enumerate()
        {
            let ev = json!({"id": format!("e{i}-{j}"), "subject": zone,
                "start": {"dateTime": day, "timeZone": zone},
                "end": {"dateTime": day, "timeZone": zone}});
            let ics = export::ics::event_to_ics(&ev).unwrap();
            let file = format!("zone-{i}-{j}.ics");
            std::fs::write(dir.path().join(&file), ics).unwrap();
            manifest.push(json!({"file": file, "zone": zone, "iana": iana,
                "display_offset": if j == 0 { *display } else { None }}));
        }
    }
    let series = json!({
        "iCalUId": "series-1", "subject": "Weekly",
        "start": {"dateTime": "2026-03-02T09:30:00.0000000", "timeZone": "W. Europe Standard Time"},
        "end": {"dateTime": "2026-03-02T10:00:00.0000000", "timeZone": "W. Europe Standard Time"},
        "recurrence": {"pattern": {"type": "weekly", "interval": 1, "daysOfWeek": ["monday"]},
            "range": {"type": "numbered", "numberOfOccurrences": 6}},
        "cancelledOccurrences": ["OID.AAMkAD=.2026-03-16"],
        "exceptionOccurrences": [{"id": "ex", "subject": "Weekly (moved)", "originalStart": "2026-03-23T08:30:00Z",
            "start": {"dateTime": "2026-03-24T11:00:00.0000000", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-03-24T11:30:00.0000000", "timeZone": "W. Europe Standard Time"}}]
    });
    std::fs::write(
        dir.path().join("series.ics"),
        backhome::export::ics::event_to_ics(&series).unwrap(),
    )
    .unwrap();
    manifest.push(
        json!({"file": "series.ics", "zone": "W. Europe Standard Time", "iana": "Europe/Berlin"}),
    );
    std::fs::write(
        dir.path().join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let out = python_with(
        py.to_str().unwrap(),
        CHECK_ZONES,
        &[dir.path().to_str().unwrap(), export::tz::database_version()],
    );
    let (events, distinct) = out.trim().split_once(' ').unwrap();
    assert_eq!(events, (zones.len() * 4 + 2).to_string());
    // Every Windows zone's IANA id got a VTIMEZONE of its own (UTC is written as UTC).
    assert!(distinct.parse::<usize>().unwrap() >= export::tz::WINDOWS_ZONES.len() - 1);
}
