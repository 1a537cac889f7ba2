//! Logging of `serve` and `demo`: `tracing` events go to a size-rotating file in the log dir
//! (`config.log_dir`, default `<data dir>/log`), to the local syslog (`/dev/log`, which DSM's Log
//! Center shows) when `config.syslog` is on, and to a small SQLite store (`logs.db`) that the
//! logs route queries by task, run, level, account and text. The command line keeps logging to
//! stderr. Secrets are never logged: nothing logs credentials, tokens or request bodies.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, params};
use serde::Serialize;
use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::Config;

/// The log file's name; rotated copies are `backhome.log.1` … `.N`.
pub const LOG_FILE: &str = "backhome.log";
/// The queryable store's name in the log dir.
pub const STORE_FILE: &str = "logs.db";
/// A log file is rotated once it reaches this size.
pub const ROTATE_BYTES: u64 = 10 << 20;
/// Rotated log files kept.
pub const ROTATE_KEEP: usize = 5;
/// Records the store keeps (older ones are pruned).
pub const STORE_KEEP: i64 = 200_000;

/// Why logging could not be set up or queried.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The log dir or file failed.
    #[error("log dir {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The log store failed.
    #[error("log store: {0}")]
    Db(#[from] rusqlite::Error),
    /// The filter is invalid or a logger is installed already.
    #[error("logging: {0}")]
    Setup(String),
}

/// Where the logs of a service with `config` on `data_dir` go.
#[must_use]
pub fn log_dir(config: &Config, data_dir: &Path) -> PathBuf {
    config
        .log_dir
        .clone()
        .unwrap_or_else(|| data_dir.join("log"))
}

/// A file that starts over (keeping [`ROTATE_KEEP`] older copies) once it reaches a size.
#[derive(Clone)]
pub struct RotatingFile {
    inner: Arc<Mutex<RotatingInner>>,
}

struct RotatingInner {
    path: PathBuf,
    file: std::fs::File,
    size: u64,
    max: u64,
    keep: usize,
}

fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl RotatingFile {
    /// Opens (appending) `path`, rotated at `max` bytes with `keep` older copies.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: PathBuf, max: u64, keep: usize) -> std::io::Result<Self> {
        let file = open_append(&path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            inner: Arc::new(Mutex::new(RotatingInner {
                path,
                file,
                size,
                max,
                keep,
            })),
        })
    }
}

impl RotatingInner {
    fn rotate(&mut self) -> std::io::Result<()> {
        let name = |i: usize| PathBuf::from(format!("{}.{i}", self.path.display()));
        let _ = std::fs::remove_file(name(self.keep));
        for i in (1..self.keep).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        if self.keep > 0 {
            std::fs::rename(&self.path, name(1))?;
        } else {
            std::fs::remove_file(&self.path)?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl std::io::Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut g = self
            .inner
            .lock()
            .map_err(|_| std::io::Error::other("log file poisoned"))?;
        if g.size > 0 && g.size + buf.len() as u64 > g.max {
            g.rotate()?;
        }
        g.file.write_all(buf)?;
        g.size += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self.inner.lock() {
            Ok(mut g) => g.file.flush(),
            Err(_) => Ok(()),
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = RotatingFile;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// One log record as the store keeps it and the API returns it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LogRecord {
    /// Its id (for paging with `before`).
    pub id: i64,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String)]
    pub time: OffsetDateTime,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: String,
    /// The task, when the event belongs to one.
    pub task: Option<String>,
    /// The run, when the event belongs to one.
    pub run: Option<i64>,
    /// The account (UPN, group, site), when the event names one.
    pub object: Option<String>,
    /// The message with its other fields.
    pub message: String,
}

/// A query of the log store.
#[derive(Clone, Debug, Default)]
pub struct LogQuery {
    /// Only this task.
    pub task: Option<String>,
    /// Only this run.
    pub run: Option<i64>,
    /// This level and more serious ones.
    pub level: Option<Level>,
    /// Only this account.
    pub object: Option<String>,
    /// Text the message contains (case-insensitive).
    pub text: Option<String>,
    /// At most this many (newest first).
    pub limit: usize,
    /// Only records older than this id.
    pub before: Option<i64>,
    /// Only records before this time.
    pub before_time: Option<OffsetDateTime>,
}

fn rank(level: &Level) -> i64 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn level_name(rank: i64) -> &'static str {
    match rank {
        1 => "error",
        2 => "warn",
        3 => "info",
        4 => "debug",
        _ => "trace",
    }
}

/// The queryable log store (`logs.db`).
pub struct LogStore {
    conn: Connection,
}

impl LogStore {
    /// Opens (creating when needed) the store at `path`.
    ///
    /// # Errors
    /// The database cannot be opened.
    pub fn open(path: &Path) -> Result<Self, LoggingError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS logs (
                id INTEGER PRIMARY KEY,
                time INTEGER NOT NULL,
                level INTEGER NOT NULL,
                task TEXT,
                run INTEGER,
                object TEXT,
                message TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS logs_task ON logs(task, run);
            CREATE INDEX IF NOT EXISTS logs_time ON logs(time);",
        )?;
        Ok(Self { conn })
    }

    fn insert(&mut self, records: &[Pending]) -> Result<(), LoggingError> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "INSERT INTO logs (time, level, task, run, object, message) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for r in records {
                st.execute(params![r.time, r.level, r.task, r.run, r.object, r.message])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Deletes all but the newest `keep` records.
    ///
    /// # Errors
    /// The database failed.
    pub fn prune(&self, keep: i64) -> Result<usize, LoggingError> {
        Ok(self.conn.execute(
            "DELETE FROM logs WHERE id <= (SELECT max(id) FROM logs) - ?1",
            [keep],
        )?)
    }

    /// Records matching `q`, newest first.
    ///
    /// # Errors
    /// The database failed.
    pub fn query(&self, q: &LogQuery) -> Result<Vec<LogRecord>, LoggingError> {
        let mut sql = String::from(
            "SELECT id, time, level, task, run, object, message FROM logs WHERE 1 = 1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            let _ = write!(sql, " AND {clause} ?{}", args.len());
        };
        if let Some(t) = &q.task {
            push(&mut sql, "task =", t.clone().into());
        }
        if let Some(r) = q.run {
            push(&mut sql, "run =", r.into());
        }
        if let Some(l) = &q.level {
            push(&mut sql, "level <=", rank(l).into());
        }
        if let Some(o) = &q.object {
            push(&mut sql, "object =", o.clone().into());
        }
        if let Some(text) = &q.text {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            args.push(format!("%{escaped}%").into());
            let _ = write!(sql, " AND message LIKE ?{} ESCAPE '\\'", args.len());
        }
        if let Some(b) = q.before {
            args.push(b.into());
            let _ = write!(sql, " AND id < ?{}", args.len());
        }
        if let Some(t) = q.before_time {
            args.push(micros(t).into());
            let _ = write!(sql, " AND time < ?{}", args.len());
        }
        let _ = write!(sql, " ORDER BY id DESC LIMIT {}", q.limit.clamp(1, 1000));
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args), |r| {
            let t: i64 = r.get(1)?;
            Ok(LogRecord {
                id: r.get(0)?,
                time: OffsetDateTime::from_unix_timestamp_nanos(i128::from(t) * 1000)
                    .unwrap_or(OffsetDateTime::UNIX_EPOCH),
                level: level_name(r.get(2)?).to_owned(),
                task: r.get(3)?,
                run: r.get(4)?,
                object: r.get(5)?,
                message: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

fn micros(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1000).unwrap_or(i64::MAX)
}

/// A record on its way to the store.
struct Pending {
    time: i64,
    level: i64,
    task: Option<String>,
    run: Option<i64>,
    object: Option<String>,
    message: String,
}

/// The fields the store indexes, gathered from an event and its spans.
#[derive(Clone, Debug, Default)]
struct Context3 {
    task: Option<String>,
    run: Option<i64>,
    object: Option<String>,
}

/// Collects an event's message and fields.
#[derive(Default)]
struct Collect {
    message: String,
    rest: String,
    ctx: Context3,
    path: Option<String>,
}

impl Collect {
    fn put(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            "task" => self.ctx.task = Some(value),
            "run" => self.ctx.run = value.parse().ok(),
            "object" | "user" | "account" => {
                self.ctx.object = Some(value.clone());
                let _ = write!(self.rest, " {}={value}", field.name());
            }
            name => {
                if name == "path" {
                    self.path = Some(value.clone());
                }
                let _ = write!(self.rest, " {name}={value}");
            }
        }
    }

    fn text(&self) -> String {
        format!("{}{}", self.message, self.rest)
    }
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.to_owned());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.to_string());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.to_string());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.put(field, format!("{value:?}"));
    }
}

/// Feeds the store from `tracing` events (a bounded queue to a writer thread; events are
/// dropped rather than slowing the service when the disk cannot keep up).
pub struct StoreLayer {
    tx: SyncSender<Pending>,
}

impl StoreLayer {
    /// Starts the writer thread of the store at `path`.
    ///
    /// # Errors
    /// The store cannot be opened.
    pub fn start(path: &Path) -> Result<Self, LoggingError> {
        let store = LogStore::open(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(8192);
        std::thread::Builder::new()
            .name("log-store".into())
            .spawn(move || store_writer(store, &rx))
            .map_err(|e| LoggingError::Setup(e.to_string()))?;
        Ok(Self { tx })
    }
}

fn store_writer(mut store: LogStore, rx: &Receiver<Pending>) {
    let mut since_prune = 0usize;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 500 {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        since_prune += batch.len();
        if let Err(e) = store.insert(&batch) {
            eprintln!("log store: {e}");
        }
        if since_prune >= 5000 {
            since_prune = 0;
            if let Err(e) = store.prune(STORE_KEEP) {
                eprintln!("log store: {e}");
            }
        }
    }
}

impl<S> Layer<S> for StoreLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        let mut c = Collect::default();
        attrs.record(&mut c);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(c.ctx);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Context3::default();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(c) = span.extensions().get::<Context3>() {
                    fields.task = c.task.clone().or(fields.task);
                    fields.run = c.run.or(fields.run);
                    fields.object = c.object.clone().or(fields.object);
                }
            }
        }
        let mut c = Collect::default();
        event.record(&mut c);
        let object = c
            .ctx
            .object
            .clone()
            .or_else(|| {
                c.path
                    .as_deref()
                    .filter(|p| p.starts_with('/'))
                    .map(crate::service::history::object_of)
            })
            .or(fields.object);
        let pending = Pending {
            time: micros(OffsetDateTime::now_utc()),
            level: rank(event.metadata().level()),
            task: c.ctx.task.clone().or(fields.task),
            run: c.ctx.run.or(fields.run),
            object,
            message: c.text(),
        };
        // A full queue drops the record; a gone writer (shutdown) too.
        let _ = self.tx.try_send(pending);
    }
}

/// Sends events to the local syslog socket in RFC 3164 form (facility daemon).
pub struct SyslogLayer {
    socket: std::os::unix::net::UnixDatagram,
    offset: time::UtcOffset,
}

impl SyslogLayer {
    /// Connects to `socket` (normally `/dev/log`).
    ///
    /// # Errors
    /// The socket cannot be reached.
    pub fn connect(socket: &Path) -> std::io::Result<Self> {
        let s = std::os::unix::net::UnixDatagram::unbound()?;
        s.connect(socket)?;
        Ok(Self {
            socket: s,
            offset: crate::service::clock::system_offset(),
        })
    }
}

/// One RFC 3164 line: `<PRI>Mmm dd hh:mm:ss backhome[pid]: text`.
#[must_use]
pub fn syslog_line(level: &Level, at: OffsetDateTime, pid: u32, text: &str) -> String {
    const DAEMON: u8 = 3;
    let severity = match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    };
    let fmt = time::macros::format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second]"
    );
    let stamp = at.format(&fmt).unwrap_or_default();
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("<{}>{stamp} backhome[{pid}]: {text}", DAEMON * 8 + severity)
}

impl<S> Layer<S> for SyslogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut c = Collect::default();
        event.record(&mut c);
        let mut prefix = String::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(f) = span.extensions().get::<Context3>() {
                    if let Some(t) = &f.task {
                        let _ = write!(prefix, "task={t} ");
                    }
                    if let Some(r) = f.run {
                        let _ = write!(prefix, "run={r} ");
                    }
                }
            }
        }
        let line = syslog_line(
            event.metadata().level(),
            OffsetDateTime::now_utc().to_offset(self.offset),
            std::process::id(),
            &format!("{prefix}{}", c.text()),
        );
        let _ = self.socket.send(line.as_bytes());
    }
}

/// Installs the service's logging (file, syslog, store) as the process's `tracing` subscriber.
/// Warnings and errors also go to stderr.
///
/// # Errors
/// The log dir cannot be created, the store cannot be opened, or a subscriber is installed.
pub fn install(config: &Config, data_dir: &Path) -> Result<PathBuf, LoggingError> {
    let dir = log_dir(config, data_dir);
    std::fs::create_dir_all(&dir).map_err(|source| LoggingError::Io {
        path: dir.clone(),
        source,
    })?;
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log_level)
        .map_err(|e| LoggingError::Setup(e.to_string()))?;
    let file_path = dir.join(LOG_FILE);
    let file =
        RotatingFile::open(file_path.clone(), ROTATE_BYTES, ROTATE_KEEP).map_err(|source| {
            LoggingError::Io {
                path: file_path,
                source,
            }
        })?;
    let syslog = if config.syslog && Path::new("/dev/log").exists() {
        match SyslogLayer::connect(Path::new("/dev/log")) {
            Ok(l) => Some(l),
            Err(e) => {
                eprintln!("syslog not available: {e}");
                None
            }
        }
    } else {
        None
    };
    let store = StoreLayer::start(&dir.join(STORE_FILE))?;
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(file)
                .with_ansi(false),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::filter::LevelFilter::WARN),
        )
        .with(syslog)
        .with(store)
        .try_init()
        .map_err(|e| LoggingError::Setup(e.to_string()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn files_rotate_and_keep_a_few() {
        let d = tempfile::tempdir().unwrap();
        let mut f = RotatingFile::open(d.path().join("x.log"), 100, 2).unwrap();
        for i in 0..10 {
            writeln!(f, "{i:060}").unwrap();
        }
        assert!(d.path().join("x.log.1").exists());
        assert!(d.path().join("x.log.2").exists());
        assert!(!d.path().join("x.log.3").exists());
        assert!(std::fs::metadata(d.path().join("x.log")).unwrap().len() <= 100);
    }

    #[test]
    fn syslog_lines_are_rfc3164() {
        let at = time::macros::datetime!(2026-03-05 07:08:09 UTC);
        assert_eq!(
            syslog_line(&Level::WARN, at, 42, "task=t item\nfailed"),
            "<28>Mar  5 07:08:09 backhome[42]: task=t item failed"
        );
    }

    #[test]
    fn the_store_filters_and_pages() {
        let d = tempfile::tempdir().unwrap();
        let mut s = LogStore::open(&d.path().join("l.db")).unwrap();
        let p = |level: Level, task: Option<&str>, run, object: Option<&str>, m: &str| Pending {
            time: micros(OffsetDateTime::now_utc()),
            level: rank(&level),
            task: task.map(str::to_owned),
            run,
            object: object.map(str::to_owned),
            message: m.into(),
        };
        s.insert(&[
            p(Level::INFO, None, None, None, "service started"),
            p(Level::INFO, Some("a"), Some(1), None, "backup started"),
            p(
                Level::WARN,
                Some("a"),
                Some(1),
                Some("ann@x"),
                "item not backed up 50%",
            ),
            p(Level::ERROR, Some("b"), Some(7), None, "backup failed"),
        ])
        .unwrap();
        let q = |f: &dyn Fn(&mut LogQuery)| {
            let mut q = LogQuery {
                limit: 100,
                ..LogQuery::default()
            };
            f(&mut q);
            s.query(&q)
                .unwrap()
                .into_iter()
                .map(|r| r.message)
                .collect::<Vec<_>>()
        };
        assert_eq!(q(&|_| {}).len(), 4);
        assert_eq!(
            q(&|q| q.task = Some("a".into())),
            ["item not backed up 50%", "backup started"]
        );
        assert_eq!(q(&|q| q.level = Some(Level::WARN)).len(), 2);
        assert_eq!(q(&|q| q.object = Some("ann@x".into())).len(), 1);
        assert_eq!(q(&|q| q.text = Some("50%".into())).len(), 1);
        assert_eq!(q(&|q| q.text = Some("%".into())).len(), 1);
        assert_eq!(q(&|q| q.run = Some(7)), ["backup failed"]);
        let newest = s
            .query(&LogQuery {
                limit: 1,
                ..LogQuery::default()
            })
            .unwrap();
        assert_eq!(q(&|q| q.before = Some(newest[0].id)).len(), 3);
        assert_eq!(s.prune(2).unwrap(), 2);
        assert_eq!(q(&|_| {}).len(), 2);
    }
}
