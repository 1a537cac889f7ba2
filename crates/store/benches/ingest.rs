//! Ingest benchmark: the same mixed corpus into a Backhome repository (plain and encrypted) and
//! into restic, then a second run with 5 % changes; prints ingest MB/s, second-run time,
//! repository size and peak RSS side by side.
//!
//! `BACKHOME_BENCH_MB` sets the corpus size (default 300; 2048 for the full figure),
//! `BACKHOME_BENCH_DIR` where corpus and repositories go (default the system temp dir),
//! `BACKHOME_BENCH_SIDES` which sides to run (default `backhome,backhome+enc,restic`),
//! `BACKHOME_BENCH_LEVEL` the zstd level of Backhome's repositories (default 3),
//! `BACKHOME_BENCH_KEEP` keeps the corpus and repositories for inspection,
//! `BACKHOME_BENCH_STREAM_GB=3` instead streams one item of that many GiB and reports peak RSS.
//! Each side runs in its own child process under `/usr/bin/time` so peak RSS is per side.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use backhome_store::{
    CreateOptions, NewVersion, NodeId, NodeKind, ObjectInfo, ObjectKind, Repository,
};

const CHILD: &str = "BACKHOME_BENCH_CHILD";

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn fill(&mut self, out: &mut [u8]) {
        for c in out.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "the",
    "meeting",
    "quarterly",
    "report",
    "please",
    "find",
    "attached",
    "budget",
    "review",
    "thanks",
    "regards",
    "project",
    "deadline",
    "customer",
    "invoice",
    "schedule",
    "update",
    "Hi",
    "team",
    "next",
    "week",
    "call",
    "notes",
    "draft",
    "approval",
    "contract",
    "sales",
];

fn text(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        out.push(if rng.below(12) == 0 { b'\n' } else { b' ' });
    }
    out.truncate(n);
    out
}

/// Semi-compressible binary (like office documents): runs of text and noise.
fn binary(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    let mut pos = 0;
    while pos < n {
        let len = (4096 + rng.below(60_000) as usize).min(n - pos);
        if rng.below(3) == 0 {
            let t = text(rng, len);
            out[pos..pos + len].copy_from_slice(&t);
        } else {
            rng.fill(&mut out[pos..pos + len]);
        }
        pos += len;
    }
    out
}

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

/// Generates the corpus: ~55 % small mails, ~25 % attachments copied to several mailboxes,
/// ~20 % large binaries.
fn generate(dir: &Path, mb: u64) {
    let total = mb << 20;
    let mut rng = Rng(0x00C0_FFEE);
    let users = 20;
    let mut written = 0u64;
    let mut i = 0u64;
    while written < total * 55 / 100 {
        let u = rng.below(users);
        let size = 1500 + rng.below(40_000) as usize;
        let mut m = format!(
            "From: user{}@example.com\r\nTo: user{u}@example.com\r\nSubject: {} {i}\r\nMessage-ID: <{i}@example.com>\r\n\r\n",
            rng.below(users),
            WORDS[rng.below(WORDS.len() as u64) as usize]
        )
        .into_bytes();
        m.extend(text(&mut rng, size));
        write(&dir.join(format!("user{u}/mail/f{}/m{i}.eml", i % 7)), &m);
        written += m.len() as u64;
        i += 1;
    }
    let mut pool = Vec::new();
    for _ in 0..40 {
        let n = 100_000 + rng.below(2_500_000) as usize;
        pool.push(binary(&mut rng, n));
    }
    let mut k = 0;
    while written < total * 80 / 100 {
        let a = &pool[rng.below(pool.len() as u64) as usize];
        let u = rng.below(users);
        write(&dir.join(format!("user{u}/attachments/a{k}.bin")), a);
        written += a.len() as u64;
        k += 1;
    }
    let mut b = 0;
    while written < total {
        let n = ((total / 20) as usize)
            .min((total - written) as usize)
            .max(1 << 20);
        let data = binary(&mut rng, n);
        write(
            &dir.join(format!("user{}/drive/big{b}.dat", b % users)),
            &data,
        );
        written += n as u64;
        b += 1;
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Changes about 5 % of the corpus by bytes: edits mails, adds mails, rewrites part of a binary.
fn mutate(dir: &Path) {
    let mut rng = Rng(0x0BAD_C0DE);
    let all = files(dir);
    let total: u64 = all.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    let mut changed = 0u64;
    while changed < total / 20 {
        let p = &all[rng.below(all.len() as u64) as usize];
        let mut data = fs::read(p).unwrap();
        let at = rng.below(data.len() as u64) as usize;
        let patch = text(&mut rng, 2000.min(data.len() - at));
        data[at..at + patch.len()].copy_from_slice(&patch);
        let extra = text(&mut rng, 5000);
        data.extend_from_slice(&extra);
        fs::write(p, &data).unwrap();
        changed += (patch.len() + extra.len()) as u64
            + if data.len() < 100_000 {
                data.len() as u64
            } else {
                0
            };
        let n = dir.join(format!("user0/mail/new/n{changed}.eml"));
        write(&n, &text(&mut rng, 8000));
        changed += 8000;
    }
}

/// Child: ingest `corpus` into the repository at `repo`; prints elapsed seconds.
fn child_ingest(repo_path: &Path, corpus: &Path, pass: Option<&str>) {
    let started = Instant::now();
    let repo = if repo_path.join("config.json").exists() {
        Repository::open(repo_path, pass).unwrap()
    } else {
        Repository::create(
            repo_path,
            &CreateOptions {
                passphrase: pass.map(str::to_string),
                ..CreateOptions::default()
            },
        )
        .unwrap()
    };
    let mut run = repo.begin_run().unwrap();
    let obj = run
        .upsert_object(&ObjectInfo {
            kind: ObjectKind::User,
            graph_id: "corpus".into(),
            name: "corpus".into(),
            address: None,
            extra: serde_json::Value::Null,
        })
        .unwrap();
    let mut dirs: std::collections::HashMap<PathBuf, NodeId> = std::collections::HashMap::new();
    let root = run.node(obj, "", NodeKind::Root).unwrap();
    run.put_version(
        root,
        &NewVersion {
            name: "corpus".into(),
            ..NewVersion::default()
        },
    )
    .unwrap();
    dirs.insert(corpus.to_path_buf(), root);
    let (mut skipped, mut stored) = (0u64, 0u64);
    for f in files(corpus) {
        let mut chain = Vec::new();
        let mut d = f.parent().unwrap().to_path_buf();
        while !dirs.contains_key(&d) {
            chain.push(d.clone());
            d = d.parent().unwrap().to_path_buf();
        }
        for d in chain.into_iter().rev() {
            let rel = d
                .strip_prefix(corpus)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let parent = dirs[d.parent().unwrap()];
            let n = run.node(obj, &rel, NodeKind::DriveFolder).unwrap();
            run.put_version(
                n,
                &NewVersion {
                    parent: Some(parent),
                    name: d.file_name().unwrap().to_string_lossy().into_owned(),
                    ..NewVersion::default()
                },
            )
            .unwrap();
            dirs.insert(d, n);
        }
        let meta = fs::metadata(&f).unwrap();
        let mtime = meta
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let tag = format!("{}-{}", meta.len(), mtime.as_nanos());
        let rel = f
            .strip_prefix(corpus)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if run
            .current_version(obj, &rel)
            .unwrap()
            .and_then(|c| c.version_tag)
            == Some(tag.clone())
        {
            skipped += 1;
            continue;
        }
        let n = run.node(obj, &rel, NodeKind::File).unwrap();
        let c = run.put_content(fs::File::open(&f).unwrap()).unwrap();
        run.put_version(
            n,
            &NewVersion {
                parent: Some(dirs[f.parent().unwrap()]),
                name: f.file_name().unwrap().to_string_lossy().into_owned(),
                content: Some(c.content),
                version_tag: Some(tag),
                ..NewVersion::default()
            },
        )
        .unwrap();
        stored += 1;
    }
    run.commit(&serde_json::json!({ "stored": stored, "skipped": skipped }))
        .unwrap();
    println!("ELAPSED {}", started.elapsed().as_secs_f64());
}

const MB: f64 = 1e6;

/// Where a Backhome repository's bytes are, in a few lines.
fn backhome_breakdown(repo: &Path, pass: Option<&str>) -> String {
    let r = Repository::open(repo, pass)
        .unwrap()
        .space_report()
        .unwrap();
    let tables: Vec<String> = r
        .catalog_tables
        .iter()
        .map(|(t, b)| format!("{t} {:.2}", *b as f64 / MB))
        .collect();
    format!(
        "  packs {:.1} MB: blob data {:.1} + blob headers {:.2} + pack framing {:.3} + nonces/tags {:.2} \
         ({} packs, {} blobs, {} with the dictionary); folders {:.2} MB\n  \
         catalog {:.2} MB + WAL {:.2} MB: {}\n  dictionaries {:.3} MB, other files {:.3} MB",
        r.pack_bytes as f64 / MB,
        r.blob_data as f64 / MB,
        r.blob_headers as f64 / MB,
        r.pack_framing as f64 / MB,
        r.seal_overhead as f64 / MB,
        r.packs,
        r.blobs,
        r.dict_blobs,
        du(repo).saturating_sub(r.total()) as f64 / MB,
        r.catalog_bytes as f64 / MB,
        r.wal_bytes as f64 / MB,
        tables.join(", "),
        r.dict_bytes as f64 / MB,
        r.other_bytes as f64 / MB,
    )
}

/// Where a restic repository's bytes are: its folders, and its blobs as `restic stats` counts them.
fn restic_breakdown(repo: &Path) -> String {
    let dirs: Vec<String> = ["data", "index", "snapshots", "keys"]
        .iter()
        .map(|d| format!("{d} {:.3}", du(&repo.join(d)) as f64 / MB))
        .collect();
    let stats = Command::new("restic")
        .arg("--repo")
        .arg(repo)
        .args(["stats", "--mode", "raw-data", "--json", "-q"])
        .env("RESTIC_PASSWORD", "bench-pass")
        .output()
        .ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .map_or_else(
            || "restic stats failed".to_string(),
            |v| {
                format!(
                    "raw-data: {} blobs, {:.1} MB",
                    v["total_blob_count"],
                    v["total_size"].as_f64().unwrap_or(0.0) / MB
                )
            },
        );
    format!("  MB (du, folders included): {}; {stats}", dirs.join(", "))
}

fn du(p: &Path) -> u64 {
    let out = Command::new("du").args(["-sb"]).arg(p).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Runs `cmd` under `/usr/bin/time`; returns (seconds, peak RSS in MB).
fn timed(cmd: &mut Command, scratch: &Path) -> (f64, f64) {
    let rss_file = scratch.join("rss.txt");
    let mut full = Command::new("/usr/bin/time");
    full.arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss_file)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            full.env(k, v);
        }
    }
    // Drop the page cache effect as far as an unprivileged bench can: sync first.
    let _ = Command::new("sync").status();
    let t = Instant::now();
    let out = full.output().unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let kb: f64 = fs::read_to_string(&rss_file)
        .unwrap()
        .trim()
        .lines()
        .last()
        .unwrap()
        .parse()
        .unwrap();
    (secs, kb / 1024.0)
}

/// Child: streams `gb` GiB of generated, partly compressible data into a new repository as one
/// content; prints elapsed seconds.
fn child_stream(repo_path: &Path, gb: u64) {
    struct Gen(u64, Rng);
    impl std::io::Read for Gen {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(self.0 as usize).min(1 << 16);
            if self.1.below(2) == 0 {
                self.1.fill(&mut out[..n]);
            } else {
                out[..n].fill(b'x');
            }
            self.0 -= n as u64;
            Ok(n)
        }
    }
    let t = Instant::now();
    let repo = Repository::create(repo_path, &CreateOptions::default()).unwrap();
    let mut run = repo.begin_run().unwrap();
    let c = run.put_content(Gen(gb << 30, Rng(77))).unwrap();
    assert_eq!(c.content.size, gb << 30);
    run.commit(&serde_json::json!({})).unwrap();
    println!("ELAPSED {}", t.elapsed().as_secs_f64());
}

fn main() {
    if let Ok(gb) = std::env::var("BACKHOME_BENCH_STREAM_CHILD") {
        let a: Vec<String> = std::env::args().collect();
        child_stream(Path::new(&a[1]), gb.parse().unwrap());
        return;
    }
    if std::env::var(CHILD).is_ok() {
        let a: Vec<String> = std::env::args().collect();
        let pass = std::env::var("BACKHOME_BENCH_PASS").ok();
        child_ingest(Path::new(&a[1]), Path::new(&a[2]), pass.as_deref());
        return;
    }
    if let Ok(gb) = std::env::var("BACKHOME_BENCH_STREAM_GB") {
        // One huge item: memory must stay bounded however large the stream.
        let base = std::env::var("BACKHOME_BENCH_DIR")
            .map_or_else(|_| std::env::temp_dir(), PathBuf::from);
        let work = tempfile::Builder::new()
            .prefix("backhome-stream")
            .tempdir_in(&base)
            .unwrap();
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.arg(work.path().join("repo"))
            .env("BACKHOME_BENCH_STREAM_CHILD", &gb);
        let (secs, rss) = timed(&mut c, work.path());
        let gib: f64 = gb.parse().unwrap();
        println!(
            "one {gib} GiB stream: {:.1} s, {:.0} MB/s, peak RSS {rss:.1} MB",
            secs,
            gib * 1073.7 / secs
        );
        return;
    }
    let mb: u64 = std::env::var("BACKHOME_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let base =
        std::env::var("BACKHOME_BENCH_DIR").map_or_else(|_| std::env::temp_dir(), PathBuf::from);
    let work = tempfile::Builder::new()
        .prefix("backhome-bench")
        .tempdir_in(&base)
        .unwrap();
    let corpus = work.path().join("corpus");
    let t = Instant::now();
    generate(&corpus, mb);
    let corpus_bytes = du(&corpus);
    let nfiles = files(&corpus).len();
    println!(
        "corpus: {:.0} MB in {nfiles} files (generated in {:.1}s) under {}",
        corpus_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64(),
        work.path().display()
    );
    let exe = std::env::current_exe().unwrap();
    let restic_ok = Command::new("restic")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    let sides: Vec<(&str, Option<&str>)> = vec![
        ("backhome", None),
        ("backhome+enc", Some("bench-pass")),
        ("restic", Some("bench-pass")),
    ];
    let mut rows = Vec::new();
    let mut breakdowns = Vec::new();
    let corpus2 = work.path().join("corpus2");
    let wanted = std::env::var("BACKHOME_BENCH_SIDES")
        .unwrap_or_else(|_| "backhome,backhome+enc,restic".into());
    for (name, pass) in &sides {
        if !wanted.split(',').any(|w| w.trim() == *name) {
            continue;
        }
        if *name == "restic" && !restic_ok {
            println!("restic not installed: skipped (apt-get install restic)");
            continue;
        }
        // Each side starts from the same first corpus.
        let _ = fs::remove_dir_all(&corpus2);
        Command::new("cp")
            .arg("-a")
            .arg(&corpus)
            .arg(&corpus2)
            .status()
            .unwrap();
        let repo = work.path().join(format!("repo-{name}"));
        let measure = |first: bool| {
            let mut c = if *name == "restic" {
                let mut c = Command::new("restic");
                c.arg("--repo").arg(&repo).arg("-q");
                if first && !repo.exists() {
                    let mut init = Command::new("restic");
                    init.arg("--repo")
                        .arg(&repo)
                        .arg("init")
                        .env("RESTIC_PASSWORD", "bench-pass");
                    assert!(init.output().unwrap().status.success());
                }
                c.arg("backup")
                    .arg(&corpus2)
                    .env("RESTIC_PASSWORD", "bench-pass");
                c
            } else {
                let mut c = Command::new(&exe);
                c.arg(&repo).arg(&corpus2).env(CHILD, "1");
                if let Some(p) = pass {
                    c.env("BACKHOME_BENCH_PASS", p);
                }
                c
            };
            timed(&mut c, work.path())
        };
        let breakdown = |run: u32| {
            let text = if *name == "restic" {
                restic_breakdown(&repo)
            } else {
                backhome_breakdown(&repo, *pass)
            };
            format!("{name} after run {run}:\n{text}")
        };
        let (t1, rss1) = measure(true);
        let size1 = du(&repo);
        breakdowns.push(breakdown(1));
        mutate(&corpus2);
        let (t2, rss2) = measure(false);
        let size2 = du(&repo);
        breakdowns.push(breakdown(2));
        rows.push((name.to_string(), t1, rss1, size1, t2, rss2, size2));
    }
    println!();
    println!(
        "{:<14} {:>10} {:>10} {:>12} {:>12} {:>12} {:>10}",
        "side", "ingest MB/s", "1st run s", "repo MB", "2nd run s", "repo MB (2)", "peak RSS MB"
    );
    for (name, t1, rss1, s1, t2, rss2, s2) in &rows {
        println!(
            "{:<14} {:>10.1} {:>10.1} {:>12.1} {:>12.2} {:>12.1} {:>10.1}",
            name,
            corpus_bytes as f64 / 1e6 / t1,
            t1,
            *s1 as f64 / 1e6,
            t2,
            *s2 as f64 / 1e6,
            rss1.max(*rss2)
        );
    }
    println!();
    println!("where the bytes are:");
    for b in &breakdowns {
        println!("{b}");
    }
    std::io::stdout().flush().unwrap();
    if std::env::var("BACKHOME_BENCH_KEEP").is_ok() {
        println!("kept {}", work.keep().display());
    }
}
