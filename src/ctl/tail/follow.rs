//! Reading the log for `qerrorsctl tail`: [`Follower`] reads one path forward across rotation
//! and truncation; [`scan_back`] finds the last N records at start by reading backwards.
//! How rotation, truncation, a missing file and overlong lines are handled is described in the
//! [parent module](super)'s docs.

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memchr::{memchr, memrchr};

use super::CHUNK;

/// Longest line kept while waiting for its newline; longer lines are skipped.
pub const MAX_LINE: usize = 16 << 20;
/// How long a replaced file is still read after it last grew.
pub const DRAIN_GRACE: Duration = Duration::from_secs(2);
/// Replaced files held open at most (the oldest is closed first).
pub const MAX_DRAINING: usize = 8;
/// Rotated siblings (`PATH.1` … `PATH.N`) looked at when the path changed.
const MAX_SIBLINGS: usize = 64;

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

/// Follows one path across rotation, replacement and truncation (see the [module docs](super)).
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
    use super::super::tests::tmpfile;
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;

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
}
