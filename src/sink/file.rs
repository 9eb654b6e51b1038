//! The log file: append-only writes, size-based rotation and reopen (logrotate's `create` mode
//! and SIGHUP), plus the fault handling the writer builds on: cutting a failed write back to the
//! last whole line, probing for space before a retry, noticing that the path no longer names
//! the open file, and repairing a torn last line left by a crash. Used only from the writer
//! thread, so plain blocking std I/O is right here.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// How far back from the end [`LogFile::open`] looks for the last newline when the file does
/// not end with one. A torn write is at most one write group (`sink.batch_bytes` plus one
/// batch); if no newline turns up within this, the bytes are not a torn record of ours and are
/// only terminated, not removed.
const TAIL_SCAN_MAX: u64 = 64 << 20;

/// Read size of that backwards scan.
const TAIL_SCAN_CHUNK: u64 = 64 << 10;

/// Why the path no longer names the file being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathChange {
    /// Nothing exists at the path (deleted, or renamed away without a new file).
    Missing,
    /// Another file is at the path (rotated without SIGHUP, or replaced).
    Replaced,
}

impl PathChange {
    pub fn as_str(self) -> &'static str {
        match self {
            PathChange::Missing => "missing",
            PathChange::Replaced => "replaced",
        }
    }
}

/// What [`LogFile::open`] did to a last line that had no newline (left by a crash mid-write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TailRepair {
    /// The partial record was cut off (this many bytes).
    Truncated(u64),
    /// No newline within `TAIL_SCAN_MAX`: a newline was appended instead.
    Terminated,
}

#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    mode: u32,
    rotate_bytes: u64,
    keep: usize,
    /// `(st_dev, st_ino)` of the open file, compared with the path's by [`path_changed`].
    ///
    /// [`path_changed`]: LogFile::path_changed
    ident: (u64, u64),
    /// A regular file (not a FIFO, terminal or `/dev/null`): only then are truncation,
    /// preallocation and fsync meaningful.
    regular: bool,
    repaired: Option<TailRepair>,
}

impl LogFile {
    /// Opens (creating the directory and file if needed) for appending. A last line without a
    /// newline — a write torn by a crash or power loss — is repaired first (see [`TailRepair`]),
    /// so new records never run into it; [`take_repair`](LogFile::take_repair) tells what was
    /// done. The repair is best effort: a file the daemon may append to but not read is used
    /// as it is.
    pub fn open(path: &Path, mode: u32, rotate_bytes: u64, keep: usize) -> io::Result<LogFile> {
        let mut f = LogFile::open_plain(path, mode, rotate_bytes, keep)?;
        if f.regular && f.size > 0 {
            match f.repair_tail() {
                Ok(r) => f.repaired = r,
                Err(e) => tracing::warn!(error = %e, path = %path.display(),
                    "could not check the log's last line for a torn record"),
            }
        }
        Ok(f)
    }

    fn open_plain(path: &Path, mode: u32, rotate_bytes: u64, keep: usize) -> io::Result<LogFile> {
        create_parent(path)?;
        let file = open_append(path, mode)?;
        let meta = file.metadata()?;
        // A file just created (or renamed into place by rotation) must keep its directory entry
        // through a power loss, or `fsync = "always"` would guard data in a file that vanishes.
        sync_parent(path);
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size: meta.len(),
            mode,
            rotate_bytes,
            keep,
            ident: (meta.dev(), meta.ino()),
            regular: meta.file_type().is_file(),
            repaired: None,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// What `open` did to a torn last line, once.
    pub fn take_repair(&mut self) -> Option<TailRepair> {
        self.repaired.take()
    }

    /// Rotates first if appending `incoming` bytes would pass the size limit. A write larger
    /// than the limit goes alone into a fresh file: lines are never split across files.
    /// Returns whether it rotated.
    pub fn rotate_if_needed(&mut self, incoming: u64) -> io::Result<bool> {
        if self.rotate_bytes == 0 || self.size == 0 || self.size + incoming <= self.rotate_bytes {
            return Ok(false);
        }
        self.rotate()?;
        Ok(true)
    }

    /// `errors.log` → `errors.log.1` → … → `errors.log.N`; the oldest is overwritten.
    pub fn rotate(&mut self) -> io::Result<()> {
        let _ = self.file.sync_data();
        for i in (1..self.keep).rev() {
            let from = numbered(&self.path, i);
            if from.exists() {
                std::fs::rename(&from, numbered(&self.path, i + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(&self.path, 1))?;
        self.reopen()
    }

    /// Opens the path again (after an external rename, e.g. logrotate, or a deletion; the
    /// directory is created again if it went too).
    pub fn reopen(&mut self) -> io::Result<()> {
        let f = LogFile::open_plain(&self.path, self.mode, self.rotate_bytes, self.keep)?;
        self.file = f.file;
        self.size = f.size;
        self.ident = f.ident;
        self.regular = f.regular;
        Ok(())
    }

    /// Whether the path still names the open file (same device and inode). Also re-reads the
    /// file's size, so a truncation behind our back (`copytruncate`) doesn't skew rotation.
    pub fn path_changed(&mut self) -> io::Result<Option<PathChange>> {
        if self.regular {
            self.size = self.file.metadata()?.len();
        }
        match std::fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.ident => Ok(None),
            Ok(_) => Ok(Some(PathChange::Replaced)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Some(PathChange::Missing)),
            Err(e) => Err(e),
        }
    }

    /// Whether the open file has been deleted (no name links to it any more): one `fstat`,
    /// cheap enough to ask before every write, so nothing is written into a deleted file.
    pub fn unlinked(&self) -> io::Result<bool> {
        Ok(self.regular && self.file.metadata()?.nlink() == 0)
    }

    /// Writes all of `bufs`, advancing them; on error the slices hold what is left, so a retry
    /// can continue exactly where the last attempt stopped. [`size`](LogFile::size) grows by
    /// what did land either way.
    pub fn write_all_vectored(&mut self, bufs: &mut &mut [IoSlice<'_>]) -> io::Result<()> {
        while !bufs.is_empty() {
            match self.file.write_vectored(bufs) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.size += n as u64;
                    IoSlice::advance_slices(bufs, n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Cuts the last `n` bytes off again (the part of a failed write that did land), so the
    /// file ends with a whole line. Fails on files that can't be truncated (FIFOs).
    pub fn truncate_back(&mut self, n: u64) -> io::Result<()> {
        if !self.regular {
            return Err(io::ErrorKind::Unsupported.into());
        }
        let len = self.file.metadata()?.len();
        let to = len.checked_sub(n).ok_or(io::ErrorKind::InvalidInput)?;
        self.file.set_len(to)?;
        self.size = to;
        Ok(())
    }

    /// Reserves room for `len` more bytes without changing the file (`fallocate` with
    /// `FALLOC_FL_KEEP_SIZE`): a cheap probe whether a retried write can succeed, so that while
    /// a disk stays full nothing is written and cut off again. Succeeds where preallocation is
    /// not supported (the write itself then tells).
    pub fn reserve(&mut self, len: u64) -> io::Result<()> {
        if !self.regular || len == 0 {
            return Ok(());
        }
        reserve(&self.file, self.size, len)
    }

    /// `fdatasync`; nothing to do for a FIFO or a character device.
    pub fn sync(&mut self) -> io::Result<()> {
        if !self.regular {
            return Ok(());
        }
        self.file.sync_data()
    }

    /// Cuts a partial last record off (or terminates it, see [`TAIL_SCAN_MAX`]).
    fn repair_tail(&mut self) -> io::Result<Option<TailRepair>> {
        let mut rd = File::open(&self.path)?;
        let mut last = [0u8; 1];
        rd.seek(SeekFrom::Start(self.size - 1))?;
        rd.read_exact(&mut last)?;
        if last[0] == b'\n' {
            return Ok(None);
        }
        let mut end = self.size;
        let floor = self.size.saturating_sub(TAIL_SCAN_MAX);
        let mut chunk = vec![0u8; TAIL_SCAN_CHUNK as usize];
        while end > floor {
            let start = end.saturating_sub(TAIL_SCAN_CHUNK).max(floor);
            let buf = &mut chunk[..(end - start) as usize];
            rd.seek(SeekFrom::Start(start))?;
            rd.read_exact(buf)?;
            if let Some(i) = memchr::memrchr(b'\n', buf) {
                let keep = start + i as u64 + 1;
                return self.cut_to(keep).map(Some);
            }
            end = start;
        }
        if floor == 0 {
            // No newline at all: the whole file is one torn first write.
            return self.cut_to(0).map(Some);
        }
        self.file.write_all(b"\n")?;
        self.size += 1;
        Ok(Some(TailRepair::Terminated))
    }

    fn cut_to(&mut self, keep: u64) -> io::Result<TailRepair> {
        let removed = self.size - keep;
        self.file.set_len(keep)?;
        self.file.sync_data()?;
        self.size = keep;
        Ok(TailRepair::Truncated(removed))
    }
}

#[cfg(target_os = "linux")]
fn reserve(file: &File, offset: u64, len: u64) -> io::Result<()> {
    use nix::errno::Errno;
    use nix::fcntl::{fallocate, FallocateFlags};
    use std::os::fd::AsRawFd;
    let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Ok(());
    };
    match fallocate(
        file.as_raw_fd(),
        FallocateFlags::FALLOC_FL_KEEP_SIZE,
        off,
        len,
    ) {
        Ok(()) => Ok(()),
        // Not supported by this file system: no probe, the write will tell.
        Err(Errno::EOPNOTSUPP | Errno::ENOSYS | Errno::EINVAL | Errno::ENODEV) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
fn reserve(_file: &File, _offset: u64, _len: u64) -> io::Result<()> {
    Ok(())
}

fn numbered(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
}

/// `fsync` on the directory holding `path`, best effort (some file systems refuse it).
fn sync_parent(path: &Path) {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d,
        None => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

fn create_parent(path: &Path) -> io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => std::fs::create_dir_all(dir),
        None => Ok(()),
    }
}

fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(mode)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_keeping_n_files_and_never_splits_a_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logs/e.log");
        let mut f = LogFile::open(&path, 0o640, 100, 2).unwrap();
        for i in 0..10 {
            let line = format!("{i:059}\n"); // 60 bytes: one per file
            f.rotate_if_needed(line.len() as u64).unwrap();
            let mut slices = [IoSlice::new(line.as_bytes())];
            f.write_all_vectored(&mut &mut slices[..]).unwrap();
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{:059}\n", 9)
        );
        assert_eq!(
            std::fs::read_to_string(numbered(&path, 1)).unwrap(),
            format!("{:059}\n", 8)
        );
        assert_eq!(
            std::fs::read_to_string(numbered(&path, 2)).unwrap(),
            format!("{:059}\n", 7)
        );
        assert!(!numbered(&path, 3).exists());
    }

    #[test]
    fn rotation_off_with_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.log");
        let mut f = LogFile::open(&path, 0o640, 0, 1).unwrap();
        f.size = u64::MAX / 2;
        assert!(!f.rotate_if_needed(1 << 40).unwrap());
    }

    #[test]
    fn reopen_follows_an_external_rename() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.log");
        let mut f = LogFile::open(&path, 0o640, 0, 1).unwrap();
        let mut s = [IoSlice::new(b"a\n")];
        f.write_all_vectored(&mut &mut s[..]).unwrap();
        std::fs::rename(&path, dir.path().join("e.log.old")).unwrap();
        f.reopen().unwrap();
        let mut s = [IoSlice::new(b"b\n")];
        f.write_all_vectored(&mut &mut s[..]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "b\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("e.log.old")).unwrap(),
            "a\n"
        );
    }

    fn append(f: &mut LogFile, data: &[u8]) {
        let mut s = [IoSlice::new(data)];
        f.write_all_vectored(&mut &mut s[..]).unwrap();
    }

    #[test]
    fn truncate_back_cuts_a_partial_write_to_the_last_whole_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.log");
        let mut f = LogFile::open(&path, 0o640, 0, 1).unwrap();
        append(&mut f, b"one\n");
        append(&mut f, b"two\nthr"); // as if "three\n" had failed after 3 bytes of its write
        f.truncate_back(3).unwrap();
        assert_eq!(f.size(), 8);
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
        assert!(f.truncate_back(100).is_err(), "more than the file holds");
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\n");
    }

    #[test]
    fn open_cuts_off_a_torn_last_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.log");
        std::fs::write(&path, b"{\"a\":1}\n{\"b\":2}\n{\"c\":").unwrap();
        let mut f = LogFile::open(&path, 0o640, 0, 1).unwrap();
        assert_eq!(f.take_repair(), Some(TailRepair::Truncated(5)));
        assert_eq!(f.take_repair(), None, "reported once");
        append(&mut f, b"{\"d\":4}\n");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"{\"a\":1}\n{\"b\":2}\n{\"d\":4}\n"
        );

        // A whole line is left alone; a file that is all one torn line is emptied.
        let mut f = LogFile::open(&path, 0o640, 0, 1).unwrap();
        assert_eq!(f.take_repair(), None);
        std::fs::write(&path, b"{\"torn").unwrap();
        let mut f = LogFile::open(&path, 0o640, 0, 1).unwrap();
        assert_eq!(f.take_repair(), Some(TailRepair::Truncated(6)));
        assert_eq!(f.size(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn a_torn_tail_longer_than_a_chunk_is_found() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.log");
        let mut data = b"{\"a\":1}\n".to_vec();
        data.extend(std::iter::repeat_n(b'x', 3 * TAIL_SCAN_CHUNK as usize + 17));
        std::fs::write(&path, &data).unwrap();
        let mut f = LogFile::open(&path, 0o640, 0, 1).unwrap();
        assert_eq!(
            f.take_repair(),
            Some(TailRepair::Truncated(3 * TAIL_SCAN_CHUNK + 17))
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}\n");
    }

    #[test]
    fn path_changed_sees_deletion_and_replacement() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.log");
        let mut f = LogFile::open(&path, 0o640, 0, 1).unwrap();
        assert_eq!(f.path_changed().unwrap(), None);

        std::fs::remove_file(&path).unwrap();
        assert_eq!(f.path_changed().unwrap(), Some(PathChange::Missing));
        f.reopen().unwrap();
        assert_eq!(f.path_changed().unwrap(), None);
        append(&mut f, b"a\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"a\n");

        let other = dir.path().join("other");
        std::fs::write(&other, b"").unwrap();
        std::fs::rename(&other, &path).unwrap();
        assert_eq!(f.path_changed().unwrap(), Some(PathChange::Replaced));
        f.reopen().unwrap();
        append(&mut f, b"b\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"b\n");

        // The directory too.
        std::fs::remove_file(&path).unwrap();
        std::fs::remove_dir(dir.path()).unwrap();
        assert_eq!(f.path_changed().unwrap(), Some(PathChange::Missing));
        f.reopen().unwrap();
        assert!(path.exists());
    }

    #[test]
    fn path_changed_follows_a_truncation_behind_our_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.log");
        let mut f = LogFile::open(&path, 0o640, 0, 1).unwrap();
        append(&mut f, b"0123456789\n");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap(); // copytruncate
        assert_eq!(f.path_changed().unwrap(), None);
        assert_eq!(f.size(), 0);
    }
}
