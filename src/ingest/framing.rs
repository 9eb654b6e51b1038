//! Newline framing over a `BytesMut` read buffer with a maximum line length.
//!
//! Lines end with `\n` (a preceding `\r` is stripped). A line longer than the maximum is
//! reported once as [`Frame::TooLong`] and everything up to the next newline is skipped, so the
//! connection stays usable and memory stays bounded by the maximum, however long the line.
//! Bytes already searched are remembered, so a line arriving in many small reads is scanned once.

use bytes::{Buf, BytesMut};

#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Line(&'a [u8]),
    /// A line exceeded the maximum; it is being (or has been) skipped.
    TooLong,
}

#[derive(Debug)]
pub struct Framer {
    max_line: usize,
    /// Skipping the rest of an over-long line.
    discarding: bool,
    /// Prefix of the buffer already searched for a newline.
    scanned: usize,
}

impl Framer {
    pub fn new(max_line: usize) -> Self {
        Self {
            max_line,
            discarding: false,
            scanned: 0,
        }
    }

    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Bytes of an incomplete line are buffered (a read timeout applies to them).
    pub fn has_partial(&self, buf: &BytesMut) -> bool {
        !buf.is_empty() || self.discarding
    }

    /// Emits every complete line in `buf` and consumes it; keeps an incomplete tail.
    pub fn drain(&mut self, buf: &mut BytesMut, mut emit: impl FnMut(Frame<'_>)) {
        let mut pos = 0;
        let mut from = self.scanned;
        while let Some(off) = memchr::memchr(b'\n', &buf[from..]) {
            let end = from + off;
            if self.discarding {
                self.discarding = false;
            } else {
                let line = strip_cr(&buf[pos..end]);
                if line.len() > self.max_line {
                    emit(Frame::TooLong);
                } else {
                    emit(Frame::Line(line));
                }
            }
            pos = end + 1;
            from = pos;
        }
        let tail = buf.len() - pos;
        if self.discarding {
            pos = buf.len();
        } else if tail > self.max_line + 1 {
            // +1: a line of exactly max bytes may still be waiting for its "\r\n".
            emit(Frame::TooLong);
            self.discarding = true;
            pos = buf.len();
        }
        buf.advance(pos);
        self.scanned = buf.len();
    }

    /// At end of stream: a final line without newline counts.
    pub fn finish(&mut self, buf: &mut BytesMut, mut emit: impl FnMut(Frame<'_>)) {
        self.drain(buf, &mut emit);
        if !self.discarding && !buf.is_empty() {
            let line = strip_cr(&buf[..]);
            if line.len() > self.max_line {
                emit(Frame::TooLong);
            } else if !line.is_empty() {
                emit(Frame::Line(line));
            }
        }
        buf.clear();
        self.discarding = false;
        self.scanned = 0;
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(f: &mut Framer, buf: &mut BytesMut, eof: bool) -> Vec<String> {
        let mut out = Vec::new();
        let mut emit = |fr: Frame<'_>| match fr {
            Frame::Line(l) => out.push(String::from_utf8_lossy(l).into_owned()),
            Frame::TooLong => out.push("<too long>".into()),
        };
        if eof {
            f.finish(buf, &mut emit)
        } else {
            f.drain(buf, &mut emit)
        }
        out
    }

    #[test]
    fn splits_lines_and_keeps_the_tail() {
        let mut f = Framer::new(100);
        let mut b = BytesMut::from(&b"a\nbb\r\nccc"[..]);
        assert_eq!(frames(&mut f, &mut b, false), ["a", "bb"]);
        assert_eq!(&b[..], b"ccc");
        b.extend_from_slice(b"c\n");
        assert_eq!(frames(&mut f, &mut b, false), ["cccc"]);
        assert!(b.is_empty());
    }

    #[test]
    fn final_line_without_newline_counts_at_eof() {
        let mut f = Framer::new(100);
        let mut b = BytesMut::from(&b"x\nlast"[..]);
        assert_eq!(frames(&mut f, &mut b, true), ["x", "last"]);
    }

    #[test]
    fn too_long_line_is_skipped_once_and_the_next_line_survives() {
        let mut f = Framer::new(10);
        let mut b = BytesMut::from(&b"ok\n"[..]);
        b.extend_from_slice(&[b'x'; 25]);
        assert_eq!(frames(&mut f, &mut b, false), ["ok", "<too long>"]);
        assert!(b.is_empty(), "discarded bytes are not kept");
        b.extend_from_slice(&[b'x'; 1000]);
        assert_eq!(frames(&mut f, &mut b, false), Vec::<String>::new());
        b.extend_from_slice(b"xx\nfine\n");
        assert_eq!(frames(&mut f, &mut b, false), ["fine"]);
        // exactly at the limit, with CRLF split across reads
        b.extend_from_slice(&[b'y'; 10]);
        b.extend_from_slice(b"\r");
        assert_eq!(frames(&mut f, &mut b, false), Vec::<String>::new());
        b.extend_from_slice(b"\n");
        assert_eq!(frames(&mut f, &mut b, false), ["yyyyyyyyyy"]);
        // complete over-long line in one read
        b.extend_from_slice(&[b'z'; 11]);
        b.extend_from_slice(b"\nk\n");
        assert_eq!(frames(&mut f, &mut b, false), ["<too long>", "k"]);
    }

    #[test]
    fn byte_at_a_time_equals_all_at_once() {
        let input = b"{\"message\":\"a\"}\n\r\n\nxyz\r\nlonglonglonglong\nend";
        let mut f1 = Framer::new(8);
        let mut b1 = BytesMut::from(&input[..]);
        let all = frames(&mut f1, &mut b1, true);
        let mut f2 = Framer::new(8);
        let mut b2 = BytesMut::new();
        let mut pieces = Vec::new();
        for &byte in input.iter() {
            b2.extend_from_slice(&[byte]);
            pieces.extend(frames(&mut f2, &mut b2, false));
        }
        pieces.extend(frames(&mut f2, &mut b2, true));
        assert_eq!(all, pieces);
        assert_eq!(all, ["<too long>", "", "", "xyz", "<too long>", "end"]);
    }
}
