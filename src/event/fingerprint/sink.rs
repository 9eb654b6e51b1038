//! Hash input sink: buffers the bytes a fingerprint hashes on the stack and hands them to
//! XXH3-128, in one shot for a typical event or streamed when the input is larger.

use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// Hash input is gathered in a stack buffer of this size before it reaches the hasher; a
/// typical event (~250 bytes of hash input) fits and is hashed in one shot, larger ones spill
/// into a streaming XXH3 state.
const SINK_BUF: usize = 512;

/// Fields are length-suffixed with a `u32`; longer fields (impossible with the protocol's
/// line limit) are cut to this length so the encoding stays exact.
const MAX_FIELD: usize = u32::MAX as usize;

/// Buffers hash input on the stack; spills into a streaming XXH3 state (boxed, so the common
/// case stays small and allocation-free) only when an event's input exceeds [`SINK_BUF`].
/// Both paths give the XXH3-128 of the concatenated input.
pub(super) struct Sink {
    buf: [u8; SINK_BUF],
    len: usize,
    pub(super) total: usize,
    state: Option<Box<Xxh3>>,
}

impl Sink {
    pub(super) fn new() -> Self {
        Sink {
            buf: [0; SINK_BUF],
            len: 0,
            total: 0,
            state: None,
        }
    }

    #[inline]
    pub(super) fn write(&mut self, data: &[u8]) {
        self.total += data.len();
        if let Some(dst) = self.buf.get_mut(self.len..self.len + data.len()) {
            copy_small(dst, data);
            self.len += data.len();
        } else {
            self.spill(data);
        }
    }

    #[cold]
    fn spill(&mut self, data: &[u8]) {
        let state = self.state.get_or_insert_with(|| Box::new(Xxh3::new()));
        state.update(&self.buf[..self.len]);
        self.len = 0;
        if data.len() >= SINK_BUF {
            state.update(data);
        } else {
            self.buf[..data.len()].copy_from_slice(data);
            self.len = data.len();
        }
    }

    /// A field followed by its length: the stream stays decodable from its end, so two
    /// different field sequences can never produce the same bytes.
    pub(super) fn field(&mut self, data: &[u8]) {
        let data = &data[..data.len().min(MAX_FIELD)];
        self.write(data);
        self.write_len(data.len());
    }

    pub(super) fn write_len(&mut self, n: usize) {
        self.write(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }

    /// Takes `&mut self` rather than `self`: moving the buffer would cost a copy.
    pub(super) fn finish(&mut self) -> u128 {
        let tail = &self.buf[..self.len];
        match self.state.as_mut() {
            None => xxh3_128(tail),
            Some(state) => {
                state.update(tail);
                state.digest128()
            }
        }
    }
}

/// `dst.copy_from_slice(src)` for the short pieces written here: fixed-size chunk moves
/// instead of a call into `memcpy` per piece.
#[inline]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    let mut d = dst.chunks_exact_mut(16);
    let mut s = src.chunks_exact(16);
    for (d, s) in (&mut d).zip(&mut s) {
        d.copy_from_slice(s);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_spill_matches_one_shot_hash() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8).collect();
        for chunk in [1usize, 7, 100, 255, 256, 257, 1000, 5000] {
            let mut s = Sink::new();
            for c in data.chunks(chunk) {
                s.write(c);
            }
            assert_eq!(s.total, data.len());
            assert_eq!(s.finish(), xxh3_128(&data), "chunk {chunk}");
        }
    }
}
