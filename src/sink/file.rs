//! The log file: append-only writes, size-based rotation and reopen (logrotate's `create` mode
//! and SIGHUP). Used only from the writer thread, so plain blocking std I/O is right here.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    mode: u32,
    rotate_bytes: u64,
    keep: usize,
}

impl LogFile {
    /// Opens (creating the directory and file if needed) for appending.
    pub fn open(path: &Path, mode: u32, rotate_bytes: u64, keep: usize) -> io::Result<LogFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = open_append(path, mode)?;
        let size = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_path_buf(),
            file,
            size,
            mode,
            rotate_bytes,
            keep,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
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

    /// Opens the path again (after an external rename, e.g. logrotate).
    pub fn reopen(&mut self) -> io::Result<()> {
        let file = open_append(&self.path, self.mode)?;
        self.size = file.metadata()?.len();
        self.file = file;
        Ok(())
    }

    /// Writes all of `bufs`, advancing them; on error the slices hold what is left, so a retry
    /// continues exactly where the last attempt stopped and no line is torn or duplicated.
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

    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

fn numbered(path: &Path, i: usize) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{i}"));
    PathBuf::from(s)
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
}
