//! `qerrorsctl tail`: follows the daemon's log like `tail -F`, with filters and a readable,
//! coloured rendering of each record.
//!
//! Plain polling with std I/O (no inotify): every [`POLL_INTERVAL`] the followed file is read to
//! its end and the path is checked.
//!
//! - **Rotation**: when the path names another file (renamed away, replaced, deleted and
//!   recreated), the old file is read to its end, then the new one from its start. Files the
//!   daemon's own rotation moved through `errors.log.1`, `.2`, … between two polls are found by
//!   their inode and read too, so a burst that rotates several times is still shown whole and
//!   once. The old file stays open (and is read) for [`DRAIN_GRACE`] after it last grew, for a
//!   writer that reopens late (logrotate's `create` before the SIGHUP arrives).
//! - **Truncation** (`copytruncate`): the file is read again from its start.
//! - **Missing file**: waited for.
//! - Only complete lines are printed; a partial last line waits for its newline.
//! - **Bounded memory**: fixed read buffers, a partial line is kept up to [`MAX_LINE`] bytes (a
//!   longer one is skipped), at most [`MAX_DRAINING`] old files are held open.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use memchr::{memchr, memrchr};
use serde_json::Value;

use crate::config;
use crate::event::level::Level;

/// How often the file and the path are checked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Longest line kept while waiting for its newline; longer lines are skipped.
pub const MAX_LINE: usize = 16 << 20;
/// How long a replaced file is still read after it last grew.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Replaced files held open at most (the oldest is closed first).
pub const MAX_DRAINING: usize = 8;
/// Rotated siblings (`PATH.1` … `PATH.N`) looked at when the path changed.
const MAX_SIBLINGS: usize = 64;
/// Read size.
const CHUNK: usize = 64 << 10;

/// `qerrorsctl tail` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// Log file [default: $QERRORS_LOG_FILE unless --config is given, else sink.path as the
    /// daemon resolves it].
    #[arg(long, value_name = "PATH")]
    pub log: Option<PathBuf>,
    /// Read sink.path from this configuration file (as the daemon would, with QERRORS_* env).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Start with the last N matching records of the file.
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
    pub lines: usize,
    /// Minimum level: trace < debug < info < warn < error < fatal.
    #[arg(long, value_name = "LEVEL", value_parser = parse_level)]
    pub level: Option<Level>,
    /// Only records of this service.
    #[arg(long, value_name = "NAME")]
    pub service: Option<String>,
    /// Only records whose fingerprint starts with this (the 8 characters shown are enough).
    #[arg(long, value_name = "HEX")]
    pub fingerprint: Option<String>,
    /// Only these record kinds (event, dropped, daemon, ...; comma-separated or repeated)
    /// [default: all kinds].
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    pub kind: Vec<String>,
    /// Print each record's line exactly as in the log.
    #[arg(long)]
    pub json: bool,
    /// Print the last records and exit instead of following.
    #[arg(long)]
    pub no_follow: bool,
}

fn parse_level(s: &str) -> Result<Level, String> {
    Level::parse(s).ok_or_else(|| "expected trace, debug, info, warn, error or fatal".into())
}

/// Runs `qerrorsctl tail`: exit 0 when the output is closed (`| head`), 2 on errors.
pub fn cli(args: TailArgs) -> ExitCode {
    let path = match resolve_path(&args, std::env::vars().collect()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("qerrorsctl: {e}");
            return ExitCode::from(2);
        }
    };
    let stdout = io::stdout();
    let color = stdout.is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let opts = Options {
        path,
        lines: args.lines,
        follow: !args.no_follow,
        printer: Printer {
            filter: Filter {
                min_level: args.level,
                service: args.service,
                fingerprint: args.fingerprint,
                kinds: args.kind,
            },
            json: args.json,
            color,
        },
        poll: POLL_INTERVAL,
    };
    match run(&opts, &mut stdout.lock(), &mut io::stderr()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("qerrorsctl: {}: {e}", opts.path.display());
            ExitCode::from(2)
        }
    }
}

/// `--log`, then `QERRORS_LOG_FILE`, then `sink.path` of `--config` (or of the embedded
/// defaults) with the `QERRORS_*` environment applied, as the daemon resolves it.
pub fn resolve_path(args: &TailArgs, env: Vec<(String, String)>) -> Result<PathBuf, String> {
    if let Some(p) = &args.log {
        return Ok(p.clone());
    }
    if args.config.is_none() {
        if let Some((_, p)) = env
            .iter()
            .find(|(k, v)| k == "QERRORS_LOG_FILE" && !v.is_empty())
        {
            return Ok(PathBuf::from(p));
        }
    }
    let cfg = config::RawConfig::load(args.config.as_deref(), env)
        .and_then(|raw| raw.validate(&Default::default()))
        .map_err(|e| e.to_string())?;
    Ok(cfg.sink.path)
}

/// Which records are shown.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub min_level: Option<Level>,
    pub service: Option<String>,
    /// A prefix of the fingerprint.
    pub fingerprint: Option<String>,
    /// Empty: every kind.
    pub kinds: Vec<String>,
}

impl Filter {
    /// No condition at all: every line is shown, even one that is not JSON.
    pub fn is_empty(&self) -> bool {
        self.min_level.is_none()
            && self.service.is_none()
            && self.fingerprint.is_none()
            && self.kinds.is_empty()
    }

    /// A record without the field a condition looks at does not match it (`--level warn`
    /// hides `daemon` records, which have no level).
    pub fn matches(&self, rec: &Value) -> bool {
        let s = |k: &str| rec.get(k).and_then(Value::as_str);
        if !self.kinds.is_empty() && !s("kind").is_some_and(|k| self.kinds.iter().any(|w| w == k)) {
            return false;
        }
        if let Some(min) = self.min_level {
            if s("level").and_then(Level::parse).is_none_or(|l| l < min) {
                return false;
            }
        }
        if let Some(want) = &self.service {
            if s("service") != Some(want.as_str()) {
                return false;
            }
        }
        if let Some(prefix) = &self.fingerprint {
            if !s("fingerprint").is_some_and(|f| f.starts_with(prefix.as_str())) {
                return false;
            }
        }
        true
    }
}

/// Filters and renders log lines.
#[derive(Debug, Clone, Default)]
pub struct Printer {
    pub filter: Filter,
    /// The line as in the log, unchanged.
    pub json: bool,
    /// ANSI colours (human output only).
    pub color: bool,
}

impl Printer {
    /// Whether `line` (without its newline) passes the filter.
    pub fn accepts(&self, line: &[u8]) -> bool {
        if line.is_empty() {
            return false;
        }
        if self.filter.is_empty() {
            return true;
        }
        serde_json::from_slice::<Value>(line).is_ok_and(|v| self.filter.matches(&v))
    }

    /// Appends the output for `line` (without its newline), with a newline, if it passes the
    /// filter. Returns whether it did.
    pub fn render(&self, line: &[u8], out: &mut Vec<u8>) -> bool {
        if line.is_empty() {
            return false;
        }
        if self.json && self.filter.is_empty() {
            out.extend_from_slice(line);
            out.push(b'\n');
            return true;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v) if v.is_object() => {
                if !self.filter.matches(&v) {
                    return false;
                }
                if self.json {
                    out.extend_from_slice(line);
                } else {
                    let mut s = String::new();
                    format_human(&v, self.color, &mut s);
                    out.extend_from_slice(s.as_bytes());
                }
            }
            _ => {
                if !self.filter.is_empty() {
                    return false;
                }
                if self.json {
                    out.extend_from_slice(line);
                } else {
                    let mut s = String::new();
                    push_clean(&mut s, &String::from_utf8_lossy(line));
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
        out.push(b'\n');
        true
    }
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const SERVICE: &str = "\x1b[35m";
const OTHER_KIND: &str = "\x1b[1;34m";
const OTHER_BODY: &str = "\x1b[3;34m";
/// Width of the time column (`2026-11-28 16:49:03.123Z`).
const TIME_WIDTH: usize = 24;

fn level_color(level: &str) -> &'static str {
    match level {
        "trace" => "\x1b[90m",
        "debug" => "\x1b[36m",
        "info" => "\x1b[32m",
        "warn" => "\x1b[33m",
        "error" => "\x1b[1;31m",
        "fatal" => "\x1b[1;97;41m",
        _ => "",
    }
}

/// One record as one human-readable line (no newline):
///
/// ```text
/// 2026-11-28 16:49:03.123Z ERROR checkout TypeError: Cannot read … [f8d10e90 #17]
/// 2026-11-28 16:49:03.000Z ·daemon· start version=0.1.0
/// ```
///
/// Control characters in the record (newlines in messages, escape sequences) are shown
/// escaped, so a record can neither span lines nor drive the terminal.
pub fn format_human(rec: &Value, color: bool, out: &mut String) {
    let s = |k: &str| rec.get(k).and_then(Value::as_str);
    let paint = |out: &mut String, code: &str, text: &str| {
        if color && !code.is_empty() {
            out.push_str(code);
            push_clean(out, text);
            out.push_str(RESET);
        } else {
            push_clean(out, text);
        }
    };
    let time = s("received")
        .or_else(|| s("time"))
        .or_else(|| s("ts"))
        .map(short_time)
        .unwrap_or_default();
    paint(out, DIM, &format!("{time:<TIME_WIDTH$}"));
    out.push(' ');
    let kind = s("kind").unwrap_or("?");
    if kind == "event" {
        let level = s("level").unwrap_or("?");
        paint(
            out,
            level_color(level),
            &format!("{:<5}", level.to_ascii_uppercase()),
        );
        out.push(' ');
        paint(out, SERVICE, s("service").unwrap_or("-"));
        out.push(' ');
        if let Some(name) = s("name") {
            paint(out, BOLD, name);
            out.push_str(": ");
        }
        push_clean(out, s("message").unwrap_or(""));
        let fp: String = s("fingerprint").unwrap_or("").chars().take(8).collect();
        let occ = rec.get("occurrence").and_then(Value::as_u64);
        if !fp.is_empty() || occ.is_some() {
            let mut tail = String::from(" [");
            tail.push_str(&fp);
            if let Some(n) = occ {
                if !fp.is_empty() {
                    tail.push(' ');
                }
                tail.push_str(&format!("#{n}"));
            }
            tail.push(']');
            paint(out, DIM, &tail);
        }
        return;
    }
    paint(out, OTHER_KIND, &format!("·{kind}·"));
    let mut body = String::new();
    let mut skip: Vec<&str> = vec!["kind", "received", "time", "ts"];
    match kind {
        "daemon" => {
            body.push_str(s("msg").unwrap_or(""));
            skip.push("msg");
        }
        "dropped" | "suppressed" => {
            if let Some(n) = rec.get("count") {
                body.push_str(&n.to_string());
                skip.push("count");
            }
            if let Some(r) = s("reason") {
                body.push(' ');
                body.push_str(r);
                skip.push("reason");
            }
        }
        _ => {}
    }
    if let Value::Object(m) = rec {
        for (k, v) in m.iter().filter(|(k, _)| !skip.contains(&k.as_str())) {
            if !body.is_empty() {
                body.push(' ');
            }
            body.push_str(k);
            body.push('=');
            match v {
                Value::String(t) if !t.is_empty() && !t.contains([' ', '"', '=']) => {
                    body.push_str(t)
                }
                _ => body.push_str(&v.to_string()),
            }
        }
    }
    out.push(' ');
    paint(out, OTHER_BODY, &body);
}

/// `2026-11-28T16:49:03.123456Z` → `2026-11-28 16:49:03.123Z` (other shapes unchanged).
fn short_time(t: &str) -> Cow<'_, str> {
    let b = t.as_bytes();
    if b.len() < 20 || b[10] != b'T' || !t.is_char_boundary(19) {
        return Cow::Borrowed(t);
    }
    let (date, rest) = (&t[..10], &t[11..]);
    let secs = &rest[..8];
    let mut frac = "";
    let mut zone = &rest[8..];
    if let Some(f) = zone.strip_prefix('.') {
        let digits = f.bytes().take_while(u8::is_ascii_digit).count();
        frac = &f[..digits.min(3)];
        zone = &f[digits..];
    }
    let dot = if frac.is_empty() { "" } else { "." };
    Cow::Owned(format!("{date} {secs}{dot}{frac}{zone}"))
}

/// Appends `s` with control characters escaped (`\n`, `\t`, `\x1b`, …).
fn push_clean(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
}

/// What [`run`] does.
#[derive(Debug, Clone)]
pub struct Options {
    pub path: PathBuf,
    /// Matching records shown from the end of the file at start.
    pub lines: usize,
    /// Keep following (`tail -F`) instead of exiting after the first `lines`.
    pub follow: bool,
    pub printer: Printer,
    pub poll: Duration,
}

/// Prints the last `lines` matching records, then (when following) every new one, forever.
/// Returns only on an error (`BrokenPipe` once the reader went away) or, without `follow`,
/// after the first records. Notes about rotation go to `notes`.
pub fn run(opts: &Options, out: &mut dyn Write, notes: &mut dyn Write) -> io::Result<()> {
    let mut out = BufWriter::with_capacity(CHUNK, out);
    let mut scratch = Vec::new();
    let mut follower = Follower::new(&opts.path);
    let printer = &opts.printer;
    match follower.start(opts.lines, &mut |l| printer.accepts(l))? {
        Some(lines) => {
            for l in &lines {
                scratch.clear();
                printer.render(l, &mut scratch);
                out.write_all(&scratch)?;
            }
            out.flush()?;
        }
        None if !opts.follow => {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such file"));
        }
        None => writeln!(
            notes,
            "qerrorsctl: waiting for {} to appear",
            opts.path.display()
        )?,
    }
    if !opts.follow {
        return Ok(());
    }
    loop {
        std::thread::sleep(opts.poll);
        follower.poll(&mut |l| {
            scratch.clear();
            if printer.render(l, &mut scratch) {
                out.write_all(&scratch)?;
            }
            Ok(())
        })?;
        out.flush()?;
        for n in follower.take_notes() {
            writeln!(notes, "qerrorsctl: {n}")?;
        }
    }
}

type Ident = (u64, u64);

fn ident(m: &std::fs::Metadata) -> Ident {
    (m.dev(), m.ino())
}

/// One open file being read forward.
#[derive(Debug)]
struct Tracked {
    file: File,
    ident: Ident,
    /// Next offset to read.
    pos: u64,
    /// The start of a line whose newline has not been read yet.
    partial: Vec<u8>,
    /// Inside a line longer than [`MAX_LINE`]: discard up to its newline.
    skipping: bool,
    last_growth: Instant,
}

impl Tracked {
    fn open(path: &Path) -> io::Result<Tracked> {
        let file = File::open(path)?;
        let ident = ident(&file.metadata()?);
        Ok(Tracked {
            file,
            ident,
            pos: 0,
            partial: Vec::new(),
            skipping: false,
            last_growth: Instant::now(),
        })
    }

    /// Reads to the current end, emitting complete lines. Returns whether anything was read
    /// and whether the file was truncated first.
    fn read_new(
        &mut self,
        buf: &mut [u8],
        emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<(bool, bool)> {
        let truncated = self.file.metadata()?.len() < self.pos;
        if truncated {
            self.pos = 0;
            self.partial.clear();
            self.skipping = false;
        }
        let mut grew = false;
        loop {
            let n = match self.file.read_at(buf, self.pos) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                break;
            }
            grew = true;
            self.pos += n as u64;
            self.feed(&buf[..n], emit)?;
        }
        if grew {
            self.last_growth = Instant::now();
        }
        Ok((grew, truncated))
    }

    fn feed(
        &mut self,
        mut data: &[u8],
        emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        while let Some(i) = memchr(b'\n', data) {
            let piece = &data[..i];
            if self.skipping {
                self.skipping = false;
            } else if self.partial.is_empty() {
                emit(piece)?;
            } else {
                self.partial.extend_from_slice(piece);
                emit(&self.partial)?;
                self.partial.clear();
                if self.partial.capacity() > CHUNK * 4 {
                    self.partial = Vec::new();
                }
            }
            data = &data[i + 1..];
        }
        if !data.is_empty() && !self.skipping {
            if self.partial.len() + data.len() > MAX_LINE {
                self.partial = Vec::new();
                self.skipping = true;
            } else {
                self.partial.extend_from_slice(data);
            }
        }
        Ok(())
    }
}

/// Follows one path across rotation, replacement and truncation (see the module docs).
#[derive(Debug)]
pub struct Follower {
    path: PathBuf,
    current: Option<Tracked>,
    /// Replaced files still read for a while, oldest first.
    draining: Vec<Tracked>,
    buf: Vec<u8>,
    notes: Vec<String>,
    missing_noted: bool,
}

impl Follower {
    pub fn new(path: &Path) -> Follower {
        Follower {
            path: path.to_path_buf(),
            current: None,
            draining: Vec::new(),
            buf: vec![0; CHUNK],
            notes: Vec::new(),
            missing_noted: false,
        }
    }

    /// Opens the file and returns its last `n` complete lines that `pred` accepts, oldest
    /// first; following continues after the last complete line. `None` if there is no file
    /// yet (following then reads it from its start once it appears).
    pub fn start(
        &mut self,
        n: usize,
        pred: &mut dyn FnMut(&[u8]) -> bool,
    ) -> io::Result<Option<Vec<Vec<u8>>>> {
        let mut t = match Tracked::open(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = t.file.metadata()?.len();
        let (end, lines) = scan_back(&t.file, len, n, pred, CHUNK)?;
        t.pos = end;
        self.current = Some(t);
        Ok(Some(lines))
    }

    /// Notes for the operator (rotation, truncation, disappearance) since the last call.
    pub fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    /// Reads whatever was written since the last poll, in order, following the path to a new
    /// file if it changed.
    pub fn poll(&mut self, emit: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let r = self.poll_with(&mut buf, emit);
        self.buf = buf;
        r
    }

    fn poll_with(
        &mut self,
        buf: &mut [u8],
        emit: &mut dyn FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        for t in &mut self.draining {
            t.read_new(buf, emit)?;
        }
        self.draining
            .retain(|t| t.last_growth.elapsed() < DRAIN_GRACE);
        if let Some(cur) = &mut self.current {
            if cur.read_new(buf, emit)?.1 {
                self.notes
                    .push(format!("{} was truncated", self.path.display()));
            }
        }
        let at_path = match std::fs::metadata(&self.path) {
            Ok(m) => ident(&m),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if self.current.is_some() && !self.missing_noted {
                    self.missing_noted = true;
                    self.notes.push(format!(
                        "{} disappeared; waiting for it",
                        self.path.display()
                    ));
                }
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if self.current.as_ref().is_some_and(|c| c.ident == at_path) {
            return Ok(());
        }
        let mut new = match Tracked::open(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if self.draining.iter().any(|t| t.ident == new.ident) {
            // An old file moved back to the path: keep reading it where we are.
            return Ok(());
        }
        self.missing_noted = false;
        if let Some(mut old) = self.current.take() {
            // The rest of the old file first, then files rotated past us since, then the new.
            old.read_new(buf, emit)?;
            let old_ident = old.ident;
            old.last_growth = Instant::now();
            self.draining.push(old);
            for mut missed in self.missed_siblings(old_ident, new.ident)? {
                missed.read_new(buf, emit)?;
                missed.last_growth = Instant::now();
                self.draining.push(missed);
            }
            self.notes.push(format!(
                "{} was replaced; following the new file",
                self.path.display()
            ));
        } else {
            self.notes.push(format!("{} appeared", self.path.display()));
        }
        new.read_new(buf, emit)?;
        self.current = Some(new);
        if self.draining.len() > MAX_DRAINING {
            let extra = self.draining.len() - MAX_DRAINING;
            self.draining.drain(..extra);
        }
        Ok(())
    }

    /// Files the daemon's rotation moved past the one we were reading: `PATH.1` … up to where
    /// the old file now is, oldest first. Nothing if the old file is not among them (deleted,
    /// or renamed some other way).
    fn missed_siblings(&self, old: Ident, new: Ident) -> io::Result<Vec<Tracked>> {
        let mut newer_first: Vec<Tracked> = Vec::new();
        for k in 1..=MAX_SIBLINGS {
            let mut p = self.path.as_os_str().to_owned();
            p.push(format!(".{k}"));
            let t = match Tracked::open(Path::new(&p)) {
                Ok(t) => t,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => return Err(e),
            };
            if t.ident == old {
                newer_first.reverse();
                return Ok(newer_first);
            }
            let known = t.ident == new
                || self.draining.iter().any(|d| d.ident == t.ident)
                || newer_first.iter().any(|d| d.ident == t.ident);
            if !known {
                newer_first.push(t);
            }
        }
        Ok(Vec::new())
    }
}

/// Scans `file[..len]` backwards. Returns the offset just after its last newline (where
/// following continues: a partial last line is not shown yet) and the last `n` complete lines
/// (without newlines, oldest first) that `pred` accepts. Memory: one chunk, the lines returned
/// and the line being assembled (lines over [`MAX_LINE`] are skipped).
fn scan_back(
    file: &File,
    len: u64,
    n: usize,
    pred: &mut dyn FnMut(&[u8]) -> bool,
    chunk: usize,
) -> io::Result<(u64, Vec<Vec<u8>>)> {
    let mut end: Option<u64> = None;
    let mut found: Vec<Vec<u8>> = Vec::new();
    // Later parts of the line being assembled, newest part first.
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut parts_len = 0usize;
    let mut too_long = false;
    let mut buf = vec![0u8; chunk];
    let mut pos = len;
    'outer: while pos > 0 {
        let start = pos.saturating_sub(chunk as u64);
        let data = &mut buf[..(pos - start) as usize];
        file.read_exact_at(data, start)?;
        let mut hi = data.len();
        while let Some(i) = memrchr(b'\n', &data[..hi]) {
            if end.is_none() {
                end = Some(start + i as u64 + 1);
            } else if found.len() < n {
                consider(&data[i + 1..hi], &parts, too_long, pred, &mut found);
            }
            parts.clear();
            parts_len = 0;
            too_long = false;
            hi = i;
            if found.len() >= n {
                break 'outer;
            }
        }
        if end.is_some() && !too_long {
            if parts_len + hi > MAX_LINE {
                too_long = true;
                parts.clear();
                parts_len = 0;
            } else if hi > 0 {
                parts.push(data[..hi].to_vec());
                parts_len += hi;
            }
        }
        pos = start;
    }
    if pos == 0 && end.is_some() && found.len() < n {
        // The first line of the file, started at offset 0.
        consider(&[], &parts, too_long, pred, &mut found);
    }
    found.reverse();
    Ok((end.unwrap_or(0), found))
}

/// A complete line found by [`scan_back`]: `piece` followed by `parts` (newest part first).
fn consider(
    piece: &[u8],
    parts: &[Vec<u8>],
    too_long: bool,
    pred: &mut dyn FnMut(&[u8]) -> bool,
    found: &mut Vec<Vec<u8>>,
) {
    if too_long {
        return;
    }
    let line: Cow<[u8]> = if parts.is_empty() {
        Cow::Borrowed(piece)
    } else {
        let mut l = piece.to_vec();
        for p in parts.iter().rev() {
            l.extend_from_slice(p);
        }
        Cow::Owned(l)
    };
    if !line.is_empty() && pred(&line) {
        found.push(line.into_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::fs::OpenOptions;

    fn ev(level: &str, service: &str, fp: &str) -> Value {
        json!({"kind":"event","received":"2026-11-28T16:49:03.123456Z","level":level,
               "service":service,"name":"TypeError","message":"boom","fingerprint":fp,
               "occurrence":3})
    }

    #[test]
    fn filter_by_level_service_fingerprint_kind() {
        let f = Filter {
            min_level: Some(Level::Warn),
            ..Filter::default()
        };
        assert!(f.matches(&ev("warn", "a", "ab")));
        assert!(f.matches(&ev("fatal", "a", "ab")));
        assert!(!f.matches(&ev("info", "a", "ab")));
        assert!(
            !f.matches(&json!({"kind":"daemon","msg":"start"})),
            "no level"
        );
        assert!(!f.matches(&ev("loud", "a", "ab")), "unknown level");

        let f = Filter {
            service: Some("billing".into()),
            ..Filter::default()
        };
        assert!(f.matches(&ev("info", "billing", "ab")));
        assert!(!f.matches(&ev("info", "billing-2", "ab")), "exact service");

        let f = Filter {
            fingerprint: Some("9f2c".into()),
            ..Filter::default()
        };
        assert!(f.matches(&ev("info", "a", "9f2c0011")));
        assert!(!f.matches(&ev("info", "a", "19f2c001")));
        assert!(f.matches(&json!({"kind":"suppressed","fingerprint":"9f2cffff","count":2})));

        let f = Filter {
            kinds: vec!["dropped".into(), "daemon".into()],
            ..Filter::default()
        };
        assert!(f.matches(&json!({"kind":"daemon","msg":"start"})));
        assert!(f.matches(&json!({"kind":"dropped","count":1})));
        assert!(!f.matches(&ev("info", "a", "ab")));
        assert!(Filter::default().matches(&json!({})));
    }

    #[test]
    fn printer_json_passes_lines_unchanged_and_filters() {
        let line = br#"{"kind":"event", "level":"warn","service":"x","message":"m"}"#;
        let mut out = Vec::new();
        let p = Printer {
            json: true,
            ..Printer::default()
        };
        assert!(p.render(line, &mut out));
        assert!(p.render(b"not json", &mut out), "no filter: everything");
        assert!(!p.render(b"", &mut out));
        assert_eq!(out, [&line[..], b"\n", b"not json\n"].concat());

        let p = Printer {
            json: true,
            filter: Filter {
                min_level: Some(Level::Error),
                ..Filter::default()
            },
            ..Printer::default()
        };
        out.clear();
        assert!(!p.render(line, &mut out));
        assert!(!p.render(b"not json", &mut out), "a filter hides non-JSON");
        assert!(!p.accepts(line));
        assert!(out.is_empty());
    }

    #[test]
    fn human_event_line_without_colour() {
        let mut s = String::new();
        format_human(&ev("error", "checkout", "f8d10e90b6354e89"), false, &mut s);
        assert_eq!(
            s,
            "2026-11-28 16:49:03.123Z ERROR checkout TypeError: boom [f8d10e90 #3]"
        );

        let mut s = String::new();
        format_human(
            &json!({"kind":"event","level":"info","message":"two\nlines \u{1b}[31m"}),
            false,
            &mut s,
        );
        assert_eq!(
            s,
            format!("{:24} INFO  - two\\nlines \\x1b[31m", ""),
            "control characters escaped, missing fields tolerated"
        );
    }

    #[test]
    fn human_other_kinds_without_colour() {
        let mut s = String::new();
        format_human(
            &json!({"kind":"daemon","time":"2026-11-28T16:49:03Z","msg":"start","version":"0.1.0","pid":7}),
            false,
            &mut s,
        );
        assert_eq!(
            s,
            "2026-11-28 16:49:03Z     ·daemon· start version=0.1.0 pid=7"
        );
        let mut s = String::new();
        format_human(
            &json!({"kind":"dropped","count":2,"reason":"invalid","codes":{"invalid_json":2},"window_s":1.0}),
            false,
            &mut s,
        );
        assert_eq!(
            s,
            format!(
                "{:24} ·dropped· 2 invalid codes={{\"invalid_json\":2}} window_s=1.0",
                ""
            )
        );
    }

    #[test]
    fn human_colour_marks_level_and_time() {
        let mut s = String::new();
        format_human(&ev("fatal", "checkout", "ab"), true, &mut s);
        assert!(s.starts_with("\x1b[2m2026-11-28"), "{s:?}");
        assert!(s.contains("\x1b[1;97;41mFATAL\x1b[0m"), "{s:?}");
        let mut plain = String::new();
        format_human(&ev("fatal", "checkout", "ab"), false, &mut plain);
        assert!(!plain.contains('\x1b'));
        // Human output through the printer ends with a newline.
        let p = Printer::default();
        let mut out = Vec::new();
        assert!(p.render(ev("info", "a", "b").to_string().as_bytes(), &mut out));
        assert!(
            out.ends_with(b"[b #3]\n"),
            "{}",
            String::from_utf8_lossy(&out)
        );
    }

    #[test]
    fn log_path_precedence() {
        let args = |log: Option<&str>, config: Option<&Path>| TailArgs {
            log: log.map(PathBuf::from),
            config: config.map(Path::to_path_buf),
            lines: 10,
            level: None,
            service: None,
            fingerprint: None,
            kind: vec![],
            json: false,
            no_follow: false,
        };
        let env = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("c.toml");
        std::fs::write(&cfg, "[sink]\npath = \"/tmp/from-config.log\"\n").unwrap();
        let lf = [("QERRORS_LOG_FILE", "/tmp/from-env.log")];
        let r = |a: &TailArgs, e: &[(&str, &str)]| resolve_path(a, env(e)).unwrap();
        assert_eq!(
            r(&args(Some("/x.log"), Some(&cfg)), &lf),
            Path::new("/x.log")
        );
        assert_eq!(r(&args(None, None), &lf), Path::new("/tmp/from-env.log"));
        assert_eq!(
            r(&args(None, Some(&cfg)), &lf),
            Path::new("/tmp/from-config.log")
        );
        assert_eq!(
            r(&args(None, None), &[("QERRORS_SINK_PATH", "/tmp/sink.log")]),
            Path::new("/tmp/sink.log")
        );
        assert_eq!(r(&args(None, None), &[]), config::default_log_path());
        assert!(resolve_path(&args(None, Some(&d.path().join("none.toml"))), vec![]).is_err());
    }

    #[test]
    fn short_time_shapes() {
        assert_eq!(
            short_time("2026-11-28T16:49:03.123456Z"),
            "2026-11-28 16:49:03.123Z"
        );
        assert_eq!(
            short_time("2026-11-28T16:49:03.1+02:00"),
            "2026-11-28 16:49:03.1+02:00"
        );
        assert_eq!(short_time("yesterday"), "yesterday");
    }

    fn tmpfile(content: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("errors.log");
        std::fs::write(&p, content).unwrap();
        (dir, p)
    }

    /// The straightforward answer `scan_back` must match.
    fn naive(content: &[u8], n: usize, pred: &dyn Fn(&[u8]) -> bool) -> (u64, Vec<Vec<u8>>) {
        let end = content
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |i| i + 1);
        let lines: Vec<Vec<u8>> = content[..end]
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty() && pred(l))
            .map(<[u8]>::to_vec)
            .collect();
        let skip = lines.len().saturating_sub(n);
        (end as u64, lines[skip..].to_vec())
    }

    #[test]
    fn scan_back_matches_a_naive_split_at_every_chunk_size() {
        let contents: [&[u8]; 6] = [
            b"",
            b"partial",
            b"a\nbb\n",
            b"a\nbb\nccc",
            b"first line\n\nthird-long-line-xxxxxxxxxx\nx\ny\npartial-last",
            b"\n\n\nodd\n",
        ];
        let even: &dyn Fn(&[u8]) -> bool = &|l| l.len() % 2 == 0;
        let all: &dyn Fn(&[u8]) -> bool = &|_| true;
        for content in contents {
            let (_d, p) = tmpfile(content);
            let f = File::open(&p).unwrap();
            for chunk in [1, 2, 3, 5, 8, 64] {
                for n in [0, 1, 2, 3, 100] {
                    for pred in [even, all] {
                        let got = scan_back(&f, content.len() as u64, n, &mut |l| pred(l), chunk)
                            .unwrap();
                        assert_eq!(
                            got,
                            naive(content, n, pred),
                            "{:?} chunk {chunk} n {n}",
                            String::from_utf8_lossy(content)
                        );
                    }
                }
            }
        }
    }

    fn append(p: &Path, data: &[u8]) {
        OpenOptions::new()
            .append(true)
            .create(true)
            .open(p)
            .unwrap()
            .write_all(data)
            .unwrap();
    }

    fn poll_lines(f: &mut Follower) -> Vec<String> {
        let mut got = Vec::new();
        f.poll(&mut |l| {
            got.push(String::from_utf8(l.to_vec()).unwrap());
            Ok(())
        })
        .unwrap();
        got
    }

    #[test]
    fn follows_partial_lines_and_truncation() {
        let (_d, p) = tmpfile(b"old1\nold2\npart");
        let mut f = Follower::new(&p);
        let first = f.start(1, &mut |_| true).unwrap().unwrap();
        assert_eq!(first, vec![b"old2".to_vec()]);
        assert!(poll_lines(&mut f).is_empty(), "partial line not shown");
        append(&p, b"ial\nnext");
        assert_eq!(poll_lines(&mut f), ["partial"]);
        append(&p, b"\n");
        assert_eq!(poll_lines(&mut f), ["next"]);
        // copytruncate: the same file starts over.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&p, b"fresh\n");
        assert_eq!(poll_lines(&mut f), ["fresh"]);
        assert!(f.take_notes().iter().any(|n| n.contains("truncated")));
    }

    #[test]
    fn follows_rotation_including_files_rotated_between_polls() {
        let (d, p) = tmpfile(b"");
        let sib = |k: usize| d.path().join(format!("errors.log.{k}"));
        let mut f = Follower::new(&p);
        assert!(f.start(10, &mut |_| true).unwrap().unwrap().is_empty());
        append(&p, b"a1\n");
        assert_eq!(poll_lines(&mut f), ["a1"]);
        // Three rotations before the next poll: a → .3, b → .2, c → .1, d at the path.
        append(&p, b"a2\n");
        std::fs::rename(&p, sib(1)).unwrap();
        append(&p, b"b1\n");
        std::fs::rename(sib(1), sib(2)).unwrap();
        std::fs::rename(&p, sib(1)).unwrap();
        append(&p, b"c1\nc2\n");
        std::fs::rename(sib(2), sib(3)).unwrap();
        std::fs::rename(sib(1), sib(2)).unwrap();
        std::fs::rename(&p, sib(1)).unwrap();
        append(&p, b"d1\n");
        assert_eq!(poll_lines(&mut f), ["a2", "b1", "c1", "c2", "d1"]);
        // A late write to the old file (logrotate before the writer reopened) is still read.
        append(&sib(1), b"c3\n");
        append(&p, b"d2\n");
        assert_eq!(poll_lines(&mut f), ["c3", "d2"]);
        assert!(poll_lines(&mut f).is_empty());
    }

    #[test]
    fn waits_for_a_missing_file_and_a_deleted_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("errors.log");
        let mut f = Follower::new(&p);
        assert!(f.start(10, &mut |_| true).unwrap().is_none());
        assert!(poll_lines(&mut f).is_empty());
        append(&p, b"one\n");
        assert_eq!(poll_lines(&mut f), ["one"]);
        std::fs::remove_file(&p).unwrap();
        assert!(poll_lines(&mut f).is_empty());
        assert!(f.take_notes().iter().any(|n| n.contains("disappeared")));
        append(&p, b"two\n");
        assert_eq!(poll_lines(&mut f), ["two"]);
    }

    #[test]
    fn skips_an_overlong_partial_line() {
        let (_d, p) = tmpfile(b"");
        let mut f = Follower::new(&p);
        f.start(0, &mut |_| true).unwrap();
        let big = vec![b'x'; MAX_LINE + 1];
        append(&p, &big);
        assert!(poll_lines(&mut f).is_empty());
        append(&p, b"xx\nok\n");
        assert_eq!(poll_lines(&mut f), ["ok"]);
    }

    #[test]
    fn run_without_follow_prints_the_last_matching_records() {
        let lines = [
            ev("info", "a", "11"),
            ev("error", "b", "22"),
            json!({"kind":"daemon","msg":"start"}),
            ev("warn", "a", "33"),
        ];
        let content: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let (_d, p) = tmpfile(content.as_bytes());
        let opts = Options {
            path: p.clone(),
            lines: 1,
            follow: false,
            printer: Printer {
                json: true,
                filter: Filter {
                    service: Some("a".into()),
                    ..Filter::default()
                },
                color: false,
            },
            poll: POLL_INTERVAL,
        };
        let mut out = Vec::new();
        run(&opts, &mut out, &mut io::sink()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{}\n", lines[3]));
        let missing = Options {
            path: p.with_extension("nope"),
            ..opts
        };
        assert!(run(&missing, &mut Vec::new(), &mut io::sink()).is_err());
    }
}
