//! Grouping: which events are "the same error".
//!
//! Every event gets a 128-bit [`Fingerprint`]. Events with equal fingerprints are counted as
//! occurrences of one error (`occurrence` in the record, rate limits, advice). The fingerprint is
//! stable across processes, hosts and daemon restarts: it is XXH3-128 with the fixed default seed
//! (0), never a per-process random state, over the byte stream described below.
//!
//! # Automatic fingerprint ([`compute`])
//!
//! The hash covers, in this order, each field followed by its length so fields can never run
//! into each other:
//!
//! 1. a version tag ([`AUTO_TAG`]); changing any rule below means a new tag, so old and new
//!    fingerprints never mix silently;
//! 2. the error `name` as sent (absent and empty are the same);
//! 3. the `message`, with volatile parts masked (first [`MAX_MESSAGE_BYTES`] bytes only):
//!    - a quoted value — `'…'`, `"…"` or `` `…` `` — becomes one placeholder. A quote only opens
//!      after a non-alphanumeric character and only closes before one, so apostrophes
//!      (`can't`, `user's`) are left alone. Consequence (accepted): `Cannot read properties of
//!      undefined (reading 'id')` and `… (reading 'name')` group together;
//!    - a UUID (`8-4-4-4-12` hex digits) becomes one placeholder;
//!    - a word (maximal run of ASCII letters and digits) that is a hex number — `0x` followed by
//!      hex digits, or at least [`MIN_HEX_RUN`] hex digits of which at least one is a decimal
//!      digit (`3fa9c2b1d4` yes; `deadbeef`, `facade` no: they read as words) — becomes one
//!      placeholder;
//!    - any other run of ASCII digits becomes a single `0`. This also covers IPv4 addresses and
//!      ports (`10.0.0.7:5432` → `0.0.0.0:0`), sizes and durations (`3000ms` → `0ms`), ids
//!      (`User 123` → `User 0`) and the `:line:col` of paths (`/app/x.js:10:5` →
//!      `/app/x.js:0:0`). HTTP status codes in messages are masked too.
//!
//!    Everything else (letters, punctuation, non-ASCII text) is kept as is, case-sensitively.
//! 4. up to [`TOP_FRAMES`] stack frames, each reduced to *(function, file name)*: no directory,
//!    no line, no column, no query string, so the same code deployed under another directory,
//!    host or release with shifted line numbers groups together.
//!
//! ## Which frames count
//!
//! The `stack` is read as the client sent it inside the JSON string (escapes `\n`, `\r\n`,
//! `\t`, `\"`, `\\`, `\uXXXX` are understood; a raw newline also ends a line). Lines that do not
//! look like a frame are ignored; in particular the first line is skipped when it is an
//! unindented `Name: message` header. Recognized frame formats:
//!
//! | runtime | frame | function, file |
//! | --- | --- | --- |
//! | JavaScript (V8) | `at fn (/srv/app/src/x.js:10:5)`, `at async fn (…)`, `at /srv/app/x.js:10:5` | `fn`, `x.js` (`async ` and ` [as alias]` dropped) |
//! | Java / Kotlin | `at com.x.Y.method(Y.java:42)`, `at java.base/java.lang.Thread.run(…)` | `com.x.Y.method`, `Y.java` (module prefix dropped) |
//! | Python | `File "/srv/app/x.py", line 42, in func` | `func`, `x.py` |
//! | Go | `main.handler(0xc000010000, 0x1)` followed by `/srv/app/x.go:42 +0x1d` | `main.handler`, `x.go` |
//! | Rust | `3: myapp::module::func` optionally followed by `at ./src/x.rs:10:5` | `myapp::module::func`, `x.rs` (`::h<hash>` suffix dropped) |
//!
//! The *top* frames are the innermost calls: the first frames for JavaScript, Java, Go and
//! Rust, the last frames for Python (whose tracebacks list the most recent call last; with
//! chained exceptions that is the last traceback). A Java `Caused by:` section only counts
//! when the outer exception has fewer than [`TOP_FRAMES`] in-app frames. The first recognized
//! frame decides which reading applies; frames of another runtime in the same stack are
//! ignored.
//!
//! Only **in-app** frames are used; a frame is *not* in-app when
//! - its file is under `node_modules`, or is `node:…`, `internal/…`, `<anonymous>`, `native`,
//!   `Native Method`, `Unknown Source`, `index N` (JavaScript / Java built-ins);
//! - its function is in the `java.`, `javax.`, `jdk.`, `sun.`, `com.sun.`, `kotlin.`,
//!   `android.` or `dalvik.` packages;
//! - its file is under `site-packages`, `dist-packages`, `/lib/python…` (the standard library,
//!   e.g. `/usr/lib/python3.12`, `/usr/local/lib/python3.12`) or is `<frozen …>`;
//! - its file is under `/usr/local/go/src`, `…/src/runtime/`, `runtime/`, a Go module cache
//!   (`/pkg/mod/`), or its function is `runtime.…`;
//! - its file is under `/rustc/`, `~/.cargo/registry` or `~/.cargo/git`, `library/std|core|alloc`,
//!   or its function is in `std::`, `core::`, `alloc::`, `backtrace::` or is a runtime entry
//!   symbol (`rust_begin_unwind`, `__rust_…`, `main`, `_start`, …).
//!
//! If a stack has no in-app frame at all, its top [`TOP_FRAMES`] frames are used instead. A
//! missing or unrecognizable stack contributes no frames (name and message alone decide).
//!
//! # Client override ([`from_client`])
//!
//! A client may send `fingerprint` as a string or an array of strings. The hash then covers only
//! a different tag ([`CLIENT_TAG`]) and the parts (each followed by its length, then the number of
//! parts), nothing else. Because the two tags differ, a client fingerprint can never equal an
//! automatic one by construction, and `["ab","c"]` differs from `["a","bc"]` and from `"abc"`.
#![forbid(unsafe_code)]

use std::fmt;

use crate::json;
use memchr::{memchr, memchr2, memrchr, memrchr3};
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// Number of (in-app) stack frames that take part in grouping. Three frames separate call
/// sites well without letting deep framework/caller differences split one bug into many groups.
pub const TOP_FRAMES: usize = 3;

/// Only this many leading bytes of the message are hashed: enough for any real message
/// template, and it bounds the work spent on a pathological multi-kilobyte message.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// Shortest word (run of ASCII letters and digits) treated as a hex identifier when it is all
/// hex digits and contains at least one decimal digit (commit ids, object ids, hashes). Eight
/// keeps short numbers-with-letters (`v2beta`, `e5`) and ordinary words out.
pub const MIN_HEX_RUN: usize = 8;

/// Leads every automatic fingerprint's input. Same length as [`CLIENT_TAG`], different bytes.
pub const AUTO_TAG: &[u8; 16] = b"qerrors/fp/auto2";

/// Domain separator of [`stack_digest`].
pub const STACK_TAG: &[u8; 16] = b"qerrors/fp/stck2";

/// Leads every client-supplied fingerprint's input.
pub const CLIENT_TAG: &[u8; 16] = b"qerrors/fp/user1";

/// Stack lines containing escapes (other than leading `\t`) are unescaped into a stack buffer
/// of this size; longer lines are truncated (deterministically). Real frame lines are far shorter.
const LINE_BUF: usize = 512;

/// Hash input is gathered in a stack buffer of this size before it reaches the hasher; a
/// typical event (~250 bytes of hash input) fits and is hashed in one shot, larger ones spill
/// into a streaming XXH3 state.
const SINK_BUF: usize = 512;

/// Stack offsets are stored as `u32`; a stack is only read up to this length (the protocol's
/// line limit is far below).
const MAX_STACK_BYTES: usize = u32::MAX as usize;

/// Fields are length-suffixed with a `u32`; longer fields (impossible with the protocol's
/// line limit) are cut to this length so the encoding stays exact.
const MAX_FIELD: usize = u32::MAX as usize;

/// Placeholders written in place of masked message parts.
const MASK_DIGITS: &[u8] = b"0";
const MASK_HEX: &[u8] = b"<hex>";
const MASK_UUID: &[u8] = b"<uuid>";
const MASK_QUOTED: u8 = b'?';

/// Byte classes for the message scan.
const ALNUM: u8 = 1;
const DIGIT: u8 = 2;
/// A byte that may start a masked part: a digit or a quote.
const TRIGGER: u8 = 4;
static CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut v = 0;
        if c.is_ascii_alphanumeric() {
            v |= ALNUM;
        }
        if c.is_ascii_digit() {
            v |= DIGIT | TRIGGER;
        }
        if c == b'\'' || c == b'"' || c == b'`' {
            v |= TRIGGER;
        }
        table[i] = v;
        i += 1;
    }
    table
};

#[inline]
fn class(b: u8) -> u8 {
    CLASS[b as usize]
}

#[inline]
fn is_alnum(b: u8) -> bool {
    class(b) & ALNUM != 0
}

/// A 128-bit grouping key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub u128);

impl Fingerprint {
    /// 32 lowercase hex chars, most significant first (the same as `format!("{:032x}", fp.0)`),
    /// no allocation.
    pub fn to_hex(self) -> [u8; 32] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 32];
        let mut v = self.0;
        for slot in out.iter_mut().rev() {
            *slot = DIGITS[(v & 0xf) as usize];
            v >>= 4;
        }
        out
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        // Always ASCII; the error arm is unreachable but costs nothing to handle.
        f.pad(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

/// Automatic grouping key; see the module documentation for the rules.
///
/// `stack_escaped` is the stack exactly as it appears between the quotes of the JSON string
/// (still escaped). Any content is accepted: malformed escapes are taken literally.
pub fn compute(name: Option<&str>, message: &str, stack_escaped: Option<&str>) -> Fingerprint {
    compute_with(name, message, stack_digest(stack_escaped))
}

/// The stack's share of a fingerprint: a hash of its normalized in-app frames. It depends on
/// the stack text alone, so callers may cache it by the stack (the same code path sends the
/// same stack over and over) and skip frame parsing, the costliest part of [`compute`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StackDigest(pub u128);

/// Digest of the frames of an escaped stack (`None`: no stack).
pub fn stack_digest(stack_escaped: Option<&str>) -> StackDigest {
    let mut sink = Sink::new();
    sink.write(STACK_TAG);
    let mut frames = 0;
    if let Some(stack) = stack_escaped.map(str::as_bytes) {
        let mut buf_a = [0u8; LINE_BUF];
        let mut buf_b = [0u8; LINE_BUF];
        frames = for_each_frame(stack, &mut buf_a, &mut buf_b, |frame| {
            sink.field(frame.func);
            sink.field(frame.file);
        });
    }
    sink.write_len(frames);
    StackDigest(sink.finish())
}

/// Stack digests recently computed on one connection, keyed by a 64-bit hash of the escaped
/// stack text. Bounded: when full it is cleared (a connection's working set of stacks is small;
/// clearing is cheaper than tracking recency and just as good here).
#[derive(Debug, Default)]
pub struct StackCache {
    map:
        std::collections::HashMap<u64, StackDigest, std::hash::BuildHasherDefault<PrehashedHasher>>,
}

/// Entries per connection: 64 × ~24 bytes keeps even 1024 connections under 2 MiB.
pub const STACK_CACHE_ENTRIES: usize = 64;

impl StackCache {
    /// [`stack_digest`], from the cache when this exact stack text was seen before.
    pub fn digest(&mut self, stack_escaped: Option<&str>) -> StackDigest {
        let Some(stack) = stack_escaped else {
            return stack_digest(None);
        };
        let key = xxhash_rust::xxh3::xxh3_64(stack.as_bytes());
        if let Some(d) = self.map.get(&key) {
            return *d;
        }
        if self.map.len() >= STACK_CACHE_ENTRIES {
            self.map.clear();
        }
        let d = stack_digest(Some(stack));
        self.map.insert(key, d);
        d
    }
}

/// Hasher for keys that are already uniform hashes (fingerprints, xxh3 digests): takes their
/// bits as they are instead of hashing them again.
#[derive(Default)]
pub(crate) struct PrehashedHasher(u64);

impl std::hash::Hasher for PrehashedHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

/// [`compute`] with the stack already digested.
pub fn compute_with(name: Option<&str>, message: &str, stack: StackDigest) -> Fingerprint {
    let mut sink = Sink::new();
    sink.write(AUTO_TAG);
    sink.field(name.unwrap_or("").as_bytes());

    let before = sink.total;
    mask_message(message.as_bytes(), &mut sink);
    let masked_len = sink.total - before;
    sink.write_len(masked_len);
    sink.write(&stack.0.to_le_bytes());
    Fingerprint(sink.finish())
}

/// Grouping key chosen by the client (`fingerprint` as a string = one part, or an array).
pub fn from_client(parts: &[&str]) -> Fingerprint {
    let mut sink = Sink::new();
    sink.write(CLIENT_TAG);
    for part in parts {
        sink.field(part.as_bytes());
    }
    sink.write_len(parts.len());
    Fingerprint(sink.finish())
}

// ---------------------------------------------------------------------------------------------
// Hash input sink

/// Buffers hash input on the stack; spills into a streaming XXH3 state (boxed, so the common
/// case stays small and allocation-free) only when an event's input exceeds [`SINK_BUF`].
/// Both paths give the XXH3-128 of the concatenated input.
struct Sink {
    buf: [u8; SINK_BUF],
    len: usize,
    total: usize,
    state: Option<Box<Xxh3>>,
}

impl Sink {
    fn new() -> Self {
        Sink {
            buf: [0; SINK_BUF],
            len: 0,
            total: 0,
            state: None,
        }
    }

    #[inline]
    fn write(&mut self, data: &[u8]) {
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
    fn field(&mut self, data: &[u8]) {
        let data = &data[..data.len().min(MAX_FIELD)];
        self.write(data);
        self.write_len(data.len());
    }

    fn write_len(&mut self, n: usize) {
        self.write(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes());
    }

    /// Takes `&mut self` rather than `self`: moving the buffer would cost a copy.
    fn finish(&mut self) -> u128 {
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

// ---------------------------------------------------------------------------------------------
// Message masking

fn mask_message(msg: &[u8], out: &mut Sink) {
    let msg = &msg[..msg.len().min(MAX_MESSAGE_BYTES)];
    let n = msg.len();
    // `lit` is the start of the literal text not yet written; `i` the scan position. The scan
    // only stops on digits and quotes and always consumes whole words, so `lit <= i` and no
    // word is ever split between two steps.
    let mut lit = 0;
    let mut i = 0;
    // Once a search for a closing quote of some kind failed, later ones would fail too.
    let mut unclosed = [false; 3];
    loop {
        i = next_trigger(msg, i);
        let Some(&b) = msg.get(i) else { break };
        if let Some(q) = quote_kind(b) {
            let after_word = i > 0 && is_alnum(msg[i - 1]);
            if !after_word && !unclosed[q] {
                match closing_quote(msg, i + 1, b) {
                    Some(end) => {
                        out.write(&msg[lit..i]);
                        out.write(&[b, MASK_QUOTED, b]);
                        i = end + 1;
                        lit = i;
                        continue;
                    }
                    None => unclosed[q] = true,
                }
            }
            i += 1;
            continue;
        }
        // A digit: look at the whole word around it.
        let mut start = i;
        while start > lit && is_alnum(msg[start - 1]) {
            start -= 1;
        }
        let mut end = i + 1;
        while end < n && is_alnum(msg[end]) {
            end += 1;
        }
        if let Some(u) = uuid_around(msg, lit, start, end) {
            out.write(&msg[lit..u]);
            out.write(MASK_UUID);
            i = u + 36;
            lit = i;
            continue;
        }
        if is_hex_word(&msg[start..end]) {
            out.write(&msg[lit..start]);
            out.write(MASK_HEX);
            lit = end;
        } else {
            // Letters before `i` in this word are not digits (the scan stopped at the first).
            let mut j = i;
            while j < end {
                if class(msg[j]) & DIGIT != 0 {
                    out.write(&msg[lit..j]);
                    out.write(MASK_DIGITS);
                    while j < end && class(msg[j]) & DIGIT != 0 {
                        j += 1;
                    }
                    lit = j;
                } else {
                    j += 1;
                }
            }
        }
        i = end;
    }
    out.write(&msg[lit..]);
}

/// Position of the first digit or quote at or after `i` (or `msg.len()`), eight bytes at a time.
fn next_trigger(msg: &[u8], mut i: usize) -> usize {
    while let Some(bytes) = msg.get(i..i + 8).and_then(|c| <[u8; 8]>::try_from(c).ok()) {
        let hits = trigger_bytes(u64::from_le_bytes(bytes));
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < msg.len() && class(msg[i]) & TRIGGER == 0 {
        i += 1;
    }
    i
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// High bit set in exactly the bytes of `x` that are zero (no carries between bytes).
#[inline]
fn zero_bytes(x: u64) -> u64 {
    !(((x & LOW7) + LOW7) | x | LOW7)
}

/// High bit set in exactly the bytes of `x` that are ASCII digits or quotes.
#[inline]
fn trigger_bytes(x: u64) -> u64 {
    // Digits become 0x00..=0x09: high nibble zero and low nibble below ten.
    let y = x ^ (0x30 * ONES);
    let high_nonzero = ((y >> 4) & (0x0f * ONES)) + (0x7f * ONES);
    let low_ge_ten = (((y & (0x0f * ONES)) + (0x06 * ONES)) << 3) & HIGHS;
    let digits = !(high_nonzero | low_ge_ten) & HIGHS;
    digits
        | zero_bytes(x ^ (u64::from(b'\'') * ONES))
        | zero_bytes(x ^ (u64::from(b'"') * ONES))
        | zero_bytes(x ^ (u64::from(b'`') * ONES))
}

/// Index of a quote character (`'`, `"`, `` ` ``) for per-kind state; shared with `classify`.
pub(crate) fn quote_kind(b: u8) -> Option<usize> {
    match b {
        b'\'' => Some(0),
        b'"' => Some(1),
        b'`' => Some(2),
        _ => None,
    }
}

/// The first `q` at or after `from` that is not followed by a letter or digit.
pub(crate) fn closing_quote(msg: &[u8], from: usize, q: u8) -> Option<usize> {
    let mut j = from;
    while let Some(off) = memchr(q, msg.get(j..)?) {
        let k = j + off;
        if !msg.get(k + 1).is_some_and(|&c| is_alnum(c)) {
            return Some(k);
        }
        j = k + 1;
    }
    None
}

/// Start of a UUID (`8-4-4-4-12` hex digits, not glued to other letters/digits) containing the
/// word `msg[start..end]`, not starting before `floor`.
fn uuid_around(msg: &[u8], floor: usize, start: usize, end: usize) -> Option<usize> {
    // Offset of the word inside the UUID, by the word's length.
    let offsets: &[usize] = match end - start {
        8 => &[0],
        4 => &[9, 14, 19],
        12 => &[24],
        _ => return None,
    };
    offsets.iter().find_map(|&off| {
        let u = start.checked_sub(off)?;
        let ok = u >= floor
            && (u == 0 || !is_alnum(msg[u - 1]))
            && msg.get(u..u + 36).is_some_and(is_uuid)
            && !msg.get(u + 36).is_some_and(|&c| is_alnum(c));
        ok.then_some(u)
    })
}

fn is_uuid(u: &[u8]) -> bool {
    u.len() == 36
        && u.iter().enumerate().all(|(k, &c)| match k {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `0x…` hex literal, or at least [`MIN_HEX_RUN`] hex digits (callers only pass words that
/// contain a decimal digit).
fn is_hex_word(word: &[u8]) -> bool {
    if let Some(digits) = word
        .strip_prefix(b"0x")
        .or_else(|| word.strip_prefix(b"0X"))
    {
        if !digits.is_empty() && digits.iter().all(u8::is_ascii_hexdigit) {
            return true;
        }
    }
    word.len() >= MIN_HEX_RUN && word.iter().all(u8::is_ascii_hexdigit)
}

// ---------------------------------------------------------------------------------------------
// Escaped stack: lines

/// A line of the escaped stack: leading whitespace (including `\t` escapes) and the separator
/// excluded. `escaped` says whether it still contains an escape (then it must be unescaped
/// before parsing); `indented` whether leading whitespace was skipped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LineRef {
    start: u32,
    end: u32,
    escaped: bool,
    indented: bool,
}

/// Splits the body of a JSON string at `\n` escapes (and `\u000a`, and raw newlines), treating
/// `\r\n` as one separator. Escapes are walked in order, so `\\n` (an escaped backslash, then
/// `n`) does not split.
struct Lines<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    /// Offsets are kept as `u32`; only the first [`MAX_STACK_BYTES`] are looked at.
    fn new(s: &'a [u8]) -> Self {
        Lines {
            s: &s[..s.len().min(MAX_STACK_BYTES)],
            pos: 0,
        }
    }
}

impl Iterator for Lines<'_> {
    type Item = LineRef;

    #[inline]
    fn next(&mut self) -> Option<LineRef> {
        let s = self.s;
        if self.pos >= s.len() {
            return None;
        }
        let mut start = self.pos;
        loop {
            start += s[start..].iter().take_while(|&&c| c == b' ').count();
            match s.get(start..start + 2) {
                Some([b'\t', _]) => start += 1,
                Some(b"\\t") => start += 2,
                _ => break,
            }
        }
        let indented = start > self.pos;
        let mut escaped = false;
        let mut j = start;
        loop {
            let Some(off) = s.get(j..).and_then(|rest| memchr2(b'\\', b'\n', rest)) else {
                self.pos = s.len();
                return Some(LineRef {
                    start: start as u32,
                    end: s.len() as u32,
                    escaped,
                    indented,
                });
            };
            let k = j + off;
            // (separator length, or 0 and the escape's length)
            let (sep_len, esc_len) = if s[k] == b'\n' {
                (1, 0)
            } else {
                match s.get(k + 1) {
                    Some(b'n') => (2, 0),
                    Some(b'r') if s.get(k + 2..k + 4) == Some(b"\\n") => (4, 0),
                    Some(b'u') => match s.get(k + 2..).and_then(json::hex4) {
                        Some(0x0a) => (6, 0),
                        Some(_) => (0, 6),
                        None => (0, 2),
                    },
                    Some(_) => (0, 2),
                    None => (0, 1),
                }
            };
            if sep_len > 0 {
                self.pos = k + sep_len;
                return Some(LineRef {
                    start: start as u32,
                    end: k as u32,
                    escaped,
                    indented,
                });
            }
            escaped = true;
            j = k + esc_len;
        }
    }
}

/// The text of a line: borrowed when it has no escapes, else unescaped into `buf`.
fn view<'s>(stack: &'s [u8], line: LineRef, buf: &'s mut [u8; LINE_BUF]) -> &'s [u8] {
    let raw = stack
        .get(line.start as usize..line.end as usize)
        .unwrap_or_default();
    if line.escaped {
        unescape(raw, buf)
    } else {
        raw
    }
}

/// JSON-unescapes `src` into `buf` (truncating at its size). Malformed escapes are copied
/// literally; lone surrogates become U+FFFD.
fn unescape<'b>(src: &[u8], buf: &'b mut [u8; LINE_BUF]) -> &'b [u8] {
    let mut n = 0;
    let mut i = 0;
    while i < src.len() && n < LINE_BUF {
        let rest = &src[i..];
        let run = memchr(b'\\', rest).unwrap_or(rest.len());
        let take = run.min(LINE_BUF - n);
        buf[n..n + take].copy_from_slice(&rest[..take]);
        n += take;
        i += run;
        if i >= src.len() || n >= LINE_BUF {
            break;
        }
        let (ch, used) = json::decode_escape(&src[i..]);
        let mut tmp = [0u8; 4];
        let enc = ch.encode_utf8(&mut tmp).as_bytes();
        let take = enc.len().min(LINE_BUF - n);
        buf[n..n + take].copy_from_slice(&enc[..take]);
        n += take;
        i += used;
    }
    &buf[..n]
}

// ---------------------------------------------------------------------------------------------
// Frames

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Kind {
    /// `at …` (JavaScript, Java, Kotlin).
    #[default]
    At,
    /// `File "…", line N, in f`.
    Python,
    /// `pkg.func(args)` + location line.
    Go,
    /// `N: symbol` + optional `at location` line.
    Rust,
}

/// Where a recognized frame is in the stack, to parse it again when it is chosen late.
#[derive(Debug, Clone, Copy, Default)]
struct FrameRef {
    kind: Kind,
    head: LineRef,
    loc: Option<LineRef>,
}

/// A normalized frame.
#[derive(Debug, PartialEq, Eq)]
struct Frame<'a> {
    func: &'a [u8],
    file: &'a [u8],
    in_app: bool,
}

/// Collects either the first or (as a ring) the last [`TOP_FRAMES`] frames pushed.
#[derive(Default)]
struct Picker {
    items: [FrameRef; TOP_FRAMES],
    count: usize,
}

impl Picker {
    fn push_first(&mut self, f: FrameRef) {
        if let Some(slot) = self.items.get_mut(self.count) {
            *slot = f;
            self.count += 1;
        }
    }

    fn push_last(&mut self, f: FrameRef) {
        self.items[self.count % TOP_FRAMES] = f;
        self.count += 1;
    }

    fn len(&self) -> usize {
        self.count.min(TOP_FRAMES)
    }

    /// The `k`-th frame in push order, or (`newest_first`, for a ring) the `k`-th most recent.
    fn get(&self, k: usize, newest_first: bool) -> &FrameRef {
        if newest_first {
            &self.items[(self.count - 1 - k) % TOP_FRAMES]
        } else {
            &self.items[k]
        }
    }
}

/// Calls `emit` with each frame that takes part in the fingerprint, top (innermost) first,
/// and returns how many there were. The buffers are scratch space for unescaping.
///
/// The first recognized frame decides the order: for Python the last frames count (a ring of
/// the last [`TOP_FRAMES`]), for the others the first ones, emitted as soon as they are found
/// (the scan stops after [`TOP_FRAMES`] in-app frames). Frames kept for later (the Python ring,
/// the library frames in case no in-app frame turns up) are parsed again when emitted.
fn for_each_frame(
    stack: &[u8],
    buf_head: &mut [u8; LINE_BUF],
    buf_next: &mut [u8; LINE_BUF],
    mut emit: impl FnMut(&Frame<'_>),
) -> usize {
    let mut emitted = 0;
    let mut app = Picker::default();
    let mut any = Picker::default();
    let mut python: Option<bool> = None;

    let mut lines = Lines::new(stack);
    let mut first_line = true;
    while let Some(head_ref) = lines.next() {
        let line = view(stack, head_ref, buf_head).trim_ascii_end();
        if std::mem::take(&mut first_line) && !head_ref.indented && is_header(line) {
            continue;
        }
        let mut loc: Option<(LineRef, &[u8])> = None;
        let kind = if line.starts_with(b"at ") {
            Kind::At
        } else if line.starts_with(b"File \"") {
            Kind::Python
        } else if rust_symbol(line).is_some() {
            // An `at location` line may follow; anything else is left for the next round.
            let resume = lines.pos;
            if let Some(n) = lines.next() {
                let v = view(stack, n, buf_next).trim_ascii_end();
                if v.starts_with(b"at ") {
                    loc = Some((n, v));
                } else {
                    lines.pos = resume;
                }
            }
            Kind::Rust
        } else if go_func(line).is_some() {
            // Go frames are two lines; without the location line this is not a frame.
            let resume = lines.pos;
            let Some(n) = lines.next() else { continue };
            let v = view(stack, n, buf_next).trim_ascii_end();
            if go_loc(v).is_none() {
                lines.pos = resume;
                continue;
            }
            loc = Some((n, v));
            Kind::Go
        } else {
            continue;
        };
        let Some(frame) = parse_frame(kind, line, loc.map(|(_, v)| v)) else {
            continue;
        };
        let is_python = kind == Kind::Python;
        if *python.get_or_insert(is_python) != is_python {
            continue;
        }
        let r = FrameRef {
            kind,
            head: head_ref,
            loc: loc.map(|(n, _)| n),
        };
        // Library frames only matter while no in-app frame has been seen.
        if is_python {
            if frame.in_app {
                app.push_last(r);
            } else if app.count == 0 {
                any.push_last(r);
            }
        } else if frame.in_app {
            emit(&frame);
            emitted += 1;
            if emitted == TOP_FRAMES {
                break;
            }
        } else if emitted == 0 {
            any.push_first(r);
        }
    }
    if emitted > 0 {
        return emitted;
    }
    let newest_first = python == Some(true);
    let kept = if app.count > 0 { &app } else { &any };
    for k in 0..kept.len() {
        let r = kept.get(k, newest_first);
        let head = view(stack, r.head, buf_head).trim_ascii_end();
        let loc = r.loc.map(|l| view(stack, l, buf_next).trim_ascii_end());
        if let Some(frame) = parse_frame(r.kind, head, loc) {
            emit(&frame);
            emitted += 1;
        }
    }
    emitted
}

/// An unindented `Name: message` first line.
fn is_header(line: &[u8]) -> bool {
    find(line, b": ").is_some()
}

/// Parses a frame from its (unescaped, trimmed) line(s).
#[inline]
fn parse_frame<'a>(kind: Kind, head: &'a [u8], loc: Option<&'a [u8]>) -> Option<Frame<'a>> {
    match kind {
        Kind::At => parse_at(head),
        Kind::Python => parse_python(head),
        Kind::Go => {
            let func = go_func(head)?;
            let path = go_loc(loc?)?;
            Some(Frame {
                func,
                file: basename(path),
                in_app: go_in_app(func, path),
            })
        }
        Kind::Rust => {
            let func = rust_symbol(head)?;
            let path = loc
                .and_then(|l| l.strip_prefix(b"at "))
                .map(|l| strip_line_col(l.trim_ascii()))
                .unwrap_or_default();
            Some(Frame {
                func,
                file: basename(path),
                in_app: rust_in_app(func, path),
            })
        }
    }
}

/// `at fn (location)`, `at async fn (location)`, `at location`, `at pkg.Cls.m(File.java:1)`.
#[inline]
fn parse_at(t: &[u8]) -> Option<Frame<'_>> {
    let mut rest = t.strip_prefix(b"at ")?.trim_ascii();
    if let Some(r) = rest.strip_prefix(b"async ") {
        rest = r.trim_ascii_start();
    }
    let (mut func, loc, under_node_modules, java) = match rest.split_last() {
        None => return None,
        Some((b')', inner)) => match location_open(inner) {
            // JavaScript puts a space before the location's `(`, Java does not.
            Some((p, nm)) => {
                let java = p > 0 && inner[p - 1] != b' ';
                (inner[..p].trim_ascii_end(), &inner[p + 1..], nm, java)
            }
            None => (&b""[..], rest, has_node_modules(rest), false),
        },
        Some(_) => (&b""[..], rest, has_node_modules(rest), false),
    };
    if java {
        // Java 9+ module / class-loader prefix: `java.base/java.lang.Thread.run`, `app//com.x.Y.m`.
        if let Some(p) = func.iter().rposition(|&c| c == b'/') {
            func = &func[p + 1..];
        }
    } else if func.last() == Some(&b']') {
        // `Foo.bar [as baz]`
        if let Some(p) = find(func, b" [as ") {
            func = &func[..p];
        }
    }
    Some(Frame {
        func,
        file: location_file(loc),
        in_app: !under_node_modules && at_in_app(func, loc, java),
    })
}

/// Index of the `(` that opens the location in `s` (an `at` frame without its final `)`),
/// scanning backwards with nesting, and whether `node_modules` occurs after it.
fn location_open(s: &[u8]) -> Option<(usize, bool)> {
    let mut end = s.len();
    let mut depth = 0usize;
    let mut node_modules = false;
    while let Some(k) = memrchr3(b'(', b')', b'_', &s[..end]) {
        match s[k] {
            b'_' => node_modules |= is_node_modules_at(s, k),
            b')' => depth += 1,
            _ if depth == 0 => return Some((k, node_modules)),
            _ => depth -= 1,
        }
        end = k;
    }
    None
}

/// Whether `node_modules` has its `_` at `k` (searching for the rare `_` is cheap).
fn is_node_modules_at(s: &[u8], k: usize) -> bool {
    k >= 4 && s.get(k - 4..k + 8) == Some(b"node_modules")
}

fn has_node_modules(s: &[u8]) -> bool {
    let mut i = 0;
    while let Some(off) = s.get(i..).and_then(|rest| memchr(b'_', rest)) {
        if is_node_modules_at(s, i + off) {
            return true;
        }
        i += off + 1;
    }
    false
}

/// `File "/path/x.py", line 42, in func`.
fn parse_python(t: &[u8]) -> Option<Frame<'_>> {
    let rest = t.strip_prefix(b"File \"")?;
    let q = memchr(b'"', rest)?;
    let path = &rest[..q];
    let after = &rest[q + 1..];
    let func = find(after, b", in ").map_or(&b""[..], |p| after[p + 5..].trim_ascii());
    Some(Frame {
        func,
        file: basename(path),
        in_app: python_in_app(path),
    })
}

/// `N: symbol` (Rust backtrace), returning the symbol without its `::h<16 hex>` suffix.
fn rust_symbol(t: &[u8]) -> Option<&[u8]> {
    let digits = t.iter().take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let mut sym = t[digits..].strip_prefix(b": ")?.trim_ascii();
    // Older format: `N: 0x55d4c3a2b1c0 - myapp::func`.
    if sym.starts_with(b"0x") {
        if let Some(p) = find(sym, b" - ") {
            sym = sym[p + 3..].trim_ascii();
        }
    }
    if sym.is_empty() {
        return None;
    }
    // Symbols have spaces only inside `<…>` (`<T as Trait>::f`, `<fn() -> T as …>`); prose
    // like `404: not found` is not a frame.
    let mut depth = 0i32;
    let mut prev = 0u8;
    for &c in sym {
        match c {
            b'<' => depth += 1,
            b'>' if prev != b'-' => depth -= 1,
            b' ' if depth <= 0 => return None,
            _ => {}
        }
        prev = c;
    }
    if sym.len() > 19 {
        let (head, tail) = sym.split_at(sym.len() - 19);
        if tail.starts_with(b"::h") && tail[3..].iter().all(u8::is_ascii_hexdigit) {
            sym = head;
        }
    }
    Some(sym)
}

/// `pkg.func(args)` / `pkg.(*T).m(args)` (Go), returning the function.
fn go_func(t: &[u8]) -> Option<&[u8]> {
    let func = &t[..open_of_last_paren(t)?];
    if func.is_empty() || func.iter().any(u8::is_ascii_whitespace) {
        return None;
    }
    Some(func)
}

/// `/path/x.go:42 +0x1d` (Go), returning the path.
fn go_loc(t: &[u8]) -> Option<&[u8]> {
    let mut s = t;
    if let Some(p) = memrchr(b' ', s) {
        if s[p + 1..].starts_with(b"+0x") {
            s = s[..p].trim_ascii_end();
        }
    }
    let c = memrchr(b':', s)?;
    let line = &s[c + 1..];
    let path = &s[..c];
    if path.ends_with(b".go") && !line.is_empty() && line.iter().all(u8::is_ascii_digit) {
        Some(path)
    } else {
        None
    }
}

/// Index of the `(` matching a final `)`.
fn open_of_last_paren(s: &[u8]) -> Option<usize> {
    if s.last() != Some(&b')') {
        return None;
    }
    let mut depth = 0usize;
    for (i, &c) in s.iter().enumerate().rev() {
        match c {
            b')' => depth += 1,
            b'(' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Drops up to two trailing `:digits` groups (`:line:col`).
fn strip_line_col(s: &[u8]) -> &[u8] {
    let mut end = s.len();
    for _ in 0..2 {
        let mut k = end;
        while k > 0 && s[k - 1].is_ascii_digit() {
            k -= 1;
        }
        if k == end || k == 0 || s[k - 1] != b':' {
            break;
        }
        end = k - 1;
    }
    &s[..end]
}

/// File name of a location: `:line:col`, directories and a URL query string or fragment
/// (`main.js?v=3`) dropped, in one short scan back from the end.
fn location_file(loc: &[u8]) -> &[u8] {
    let name = basename(strip_line_col(loc));
    match name.iter().position(|&c| c == b'?' || c == b'#') {
        Some(p) => &name[..p],
        None => name,
    }
}

/// The last path component (`/` or `\` separated); a short scan back from the end.
fn basename(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&c| c == b'/' || c == b'\\') {
        Some(p) => &path[p + 1..],
        None => path,
    }
}

/// In-app test for `at` frames; `node_modules` is checked by the caller.
fn at_in_app(func: &[u8], loc: &[u8], java: bool) -> bool {
    const BUILTIN_LOCS: [&[u8]; 5] = [
        b"<anonymous>",
        b"native",
        b"Native Method",
        b"Unknown Source",
        b"",
    ];
    const LIB_PACKAGES: [&[u8]; 8] = [
        b"java.",
        b"javax.",
        b"jdk.",
        b"sun.",
        b"com.sun.",
        b"kotlin.",
        b"android.",
        b"dalvik.",
    ];
    !(BUILTIN_LOCS.contains(&loc)
        || loc.starts_with(b"index ")
        || loc.starts_with(b"node:")
        || loc.starts_with(b"internal/")
        || (java && LIB_PACKAGES.iter().any(|p| func.starts_with(p))))
}

fn python_in_app(path: &[u8]) -> bool {
    !(path.starts_with(b"<frozen ")
        || find(path, b"site-packages").is_some()
        || find(path, b"dist-packages").is_some()
        || find(path, b"/lib/python").is_some())
}

fn go_in_app(func: &[u8], path: &[u8]) -> bool {
    !(func.starts_with(b"runtime.")
        || path.starts_with(b"runtime/")
        || find(path, b"/usr/local/go/src/").is_some()
        || find(path, b"/src/runtime/").is_some()
        || find(path, b"/pkg/mod/").is_some())
}

fn rust_in_app(func: &[u8], path: &[u8]) -> bool {
    const LIB_PREFIXES: [&[u8]; 12] = [
        b"std::",
        b"core::",
        b"alloc::",
        b"backtrace::",
        b"<std::",
        b"<core::",
        b"<alloc::",
        b"<backtrace::",
        b"rust_begin_unwind",
        b"rust_panic",
        b"__rust",
        b"__libc_start",
    ];
    const ENTRY_SYMBOLS: [&[u8]; 5] = [b"main", b"_start", b"start_thread", b"clone", b"clone3"];
    const LIB_PATHS: [&[u8]; 6] = [
        b"/rustc/",
        b"/.cargo/registry/",
        b"/.cargo/git/",
        b"library/std/",
        b"library/core/",
        b"library/alloc/",
    ];
    !(LIB_PREFIXES.iter().any(|p| func.starts_with(p))
        || ENTRY_SYMBOLS.contains(&func)
        || LIB_PATHS.iter().any(|p| find(path, p).is_some()))
}

/// Substring search for short haystacks (frame lines), anchored on the needle's first byte;
/// `memmem::find` would build a searcher per call for haystacks of 64 bytes or more.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut i = 0;
    while let Some(off) = memchr(first, hay.get(i..)?) {
        let k = i + off;
        if hay.get(k + 1..)?.starts_with(rest) {
            return Some(k);
        }
        i = k + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// JSON-escapes a raw stack the way a client's JSON encoder would.
    fn esc(raw: &str) -> String {
        let mut out = String::new();
        for c in raw.chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out
    }

    fn fp(name: &str, msg: &str, raw_stack: &str) -> Fingerprint {
        compute(Some(name), msg, Some(&esc(raw_stack)))
    }

    fn msg_fp(msg: &str) -> Fingerprint {
        compute(Some("Error"), msg, None)
    }

    /// Normalized (function, file, in_app) of the frames chosen from an escaped stack.
    fn chosen(stack_escaped: &str) -> Vec<(String, String, bool)> {
        let mut a = [0u8; LINE_BUF];
        let mut b = [0u8; LINE_BUF];
        let mut out = Vec::new();
        let n = for_each_frame(stack_escaped.as_bytes(), &mut a, &mut b, |f| {
            out.push((
                String::from_utf8_lossy(f.func).into_owned(),
                String::from_utf8_lossy(f.file).into_owned(),
                f.in_app,
            ));
        });
        assert_eq!(n, out.len());
        out
    }

    fn names(frames: &[(String, String, bool)]) -> Vec<(&str, &str)> {
        frames
            .iter()
            .map(|(f, file, _)| (f.as_str(), file.as_str()))
            .collect()
    }

    fn js_stack(root: &str, line: u32, top_fn: &str) -> String {
        format!(
            "TypeError: Cannot read properties of undefined (reading 'id')\n    \
             at {top_fn} ({root}/src/services/order.js:{line}:17)\n    \
             at async OrderController.create ({root}/src/controllers/order.js:{}:5)\n    \
             at handle ({root}/src/routes.js:{}:9)\n    \
             at Layer.handle [as handle_request] ({root}/node_modules/express/lib/router/layer.js:95:5)\n    \
             at next ({root}/node_modules/express/lib/router/route.js:144:13)\n    \
             at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
            line + 20,
            line + 3
        )
    }

    // ---- hex / Display

    #[test]
    fn hex_is_32_lowercase_digits_msb_first() {
        let f = Fingerprint(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        assert_eq!(&f.to_hex(), b"0123456789abcdeffedcba9876543210");
        assert_eq!(f.to_string(), "0123456789abcdeffedcba9876543210");
        assert_eq!(Fingerprint(0).to_string(), "0".repeat(32));
        assert_eq!(Fingerprint(u128::MAX).to_string(), "f".repeat(32));
        for v in [1u128, 0xabc, u128::MAX / 3, 1 << 127] {
            assert_eq!(Fingerprint(v).to_string(), format!("{v:032x}"));
        }
    }

    #[test]
    fn cached_stack_digests_equal_fresh_ones() {
        let mut cache = StackCache::default();
        let a = js_stack("/srv/app", 10, "getUser");
        let b = js_stack("/srv/app", 10, "getOrder");
        for _ in 0..3 {
            for s in [&a, &b] {
                assert_eq!(cache.digest(Some(s)), stack_digest(Some(s)));
            }
        }
        assert_ne!(cache.digest(Some(&a)), cache.digest(Some(&b)));
        assert_eq!(cache.digest(None), stack_digest(None));
        for i in 0..(STACK_CACHE_ENTRIES * 3) {
            let s = js_stack("/srv/app", i as u32, &format!("f{i}"));
            assert_eq!(cache.digest(Some(&s)), stack_digest(Some(&s)));
            assert!(cache.map.len() <= STACK_CACHE_ENTRIES);
        }
        assert_eq!(
            compute_with(Some("E"), "m", cache.digest(Some(&a))),
            compute(Some("E"), "m", Some(&a))
        );
    }

    #[test]
    fn golden_values_are_stable() {
        // If these change, fingerprints change for every user: bump AUTO_TAG / CLIENT_TAG
        // deliberately and update the values.
        let auto = fp(
            "TypeError",
            "User 42 not found",
            &js_stack("/srv/app", 10, "getUser"),
        );
        let again = fp(
            "TypeError",
            "User 42 not found",
            &js_stack("/srv/app", 10, "getUser"),
        );
        assert_eq!(auto, again);
        assert_eq!(auto.to_string(), GOLDEN_AUTO);
        assert_eq!(
            from_client(&["checkout", "db-down"]).to_string(),
            GOLDEN_CLIENT
        );
    }
    const GOLDEN_AUTO: &str = "62b3326c5df6d1e93a815d45d10d5be3";
    const GOLDEN_CLIENT: &str = "6b558ea4fb65183c2588bb3cc6953fc1";

    // ---- message masking

    #[test]
    fn volatile_message_parts_group_together() {
        let same = [
            ("User 123 not found", "User 98765 not found"),
            ("timeout after 3000ms", "timeout after 5000ms"),
            (
                "ENOENT: no such file or directory, open '/tmp/a1.txt'",
                "ENOENT: no such file or directory, open '/tmp/b22.txt'",
            ),
            (
                "Cannot read properties of undefined (reading 'id')",
                "Cannot read properties of undefined (reading 'name')",
            ),
            (
                "order 550e8400-e29b-41d4-a716-446655440000 failed",
                "order 6BA7B810-9DAD-11D1-80B4-00C04FD430C8 failed",
            ),
            ("commit 3fa9c2b1d4e5 missing", "commit 0123abcd4567 missing"),
            (
                "object 65f1c2e3a4b5c6d7e8f90a1b gone",
                "object 65f1c2e3a4b5c6d7e8f90a1c gone",
            ),
            ("trace a1b2c3d4", "trace 9f8e7d6c"),
            ("bad pointer 0x7ffe3a2c10", "bad pointer 0xdeadbeef"),
            (
                "connect ECONNREFUSED 10.0.0.7:5432",
                "connect ECONNREFUSED 127.0.0.1:6379",
            ),
            (
                "at /srv/app/x.js:10:5 failed",
                "at /srv/app/x.js:212:15 failed",
            ),
            (r#"key "user:17" expired"#, r#"key "session:abc" expired"#),
            ("field `email` required", "field `phone_number` required"),
            ("can't parse 'x1'", "can't parse 'y'"),
            ("v1.2.3 rejected", "v10.20.30 rejected"),
        ];
        for (a, b) in same {
            assert_eq!(msg_fp(a), msg_fp(b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn different_messages_differ() {
        let differ = [
            ("User 1 not found", "Order 1 not found"),
            ("timeout after 3000ms", "timeout after 3000s"),
            ("can't connect", "cant connect"),
            (
                "Cannot read properties of undefined",
                "Cannot read properties of null",
            ),
            ("abc", "abd"),
            ("", " "),
            ("User not found", "user not found"),
            // Apostrophes are not quotes: the text after them stays significant.
            ("can't open foo", "can't open bar"),
            // Words without a decimal digit are words, even when they are valid hex.
            ("facade broken", "decade broken"),
            ("magic deadbeef", "magic cafebabe"),
            // Too short for a hex id: only the digits are masked.
            ("code e1f2", "code a1b2"),
        ];
        for (a, b) in differ {
            assert_ne!(msg_fp(a), msg_fp(b), "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn name_and_message_are_separate_fields() {
        assert_ne!(
            compute(Some("TypeError"), "x", None),
            compute(Some("RangeError"), "x", None)
        );
        assert_ne!(
            compute(Some("ab"), "c", None),
            compute(Some("a"), "bc", None)
        );
        assert_eq!(compute(None, "x", None), compute(Some(""), "x", None));
        // An empty or frameless stack contributes nothing.
        assert_eq!(compute(None, "x", None), compute(None, "x", Some("")));
        assert_eq!(
            compute(None, "x", None),
            compute(None, "x", Some("Error: x\\n  no frames here"))
        );
    }

    #[test]
    fn only_the_message_prefix_is_hashed() {
        let long_a = format!("{}A", "x".repeat(MAX_MESSAGE_BYTES));
        let long_b = format!("{}B", "x".repeat(MAX_MESSAGE_BYTES));
        assert_eq!(msg_fp(&long_a), msg_fp(&long_b));
        let short_a = format!("{}A", "x".repeat(MAX_MESSAGE_BYTES - 2));
        let short_b = format!("{}B", "x".repeat(MAX_MESSAGE_BYTES - 2));
        assert_ne!(msg_fp(&short_a), msg_fp(&short_b));
    }

    #[test]
    fn swar_trigger_scan_matches_the_byte_table() {
        for b in 0..=255u8 {
            let trigger = b.is_ascii_digit() || matches!(b, b'\'' | b'"' | b'`');
            assert_eq!(class(b) & TRIGGER != 0, trigger);
            for pos in 0..8 {
                for fill in [b'a', b'5', b'\'', 0, 0xff] {
                    let mut bytes = [fill; 8];
                    bytes[pos] = b;
                    let hits = trigger_bytes(u64::from_le_bytes(bytes));
                    let expect = bytes.iter().enumerate().fold(0u64, |m, (k, &c)| {
                        m | if class(c) & TRIGGER != 0 {
                            0x80 << (8 * k)
                        } else {
                            0
                        }
                    });
                    assert_eq!(hits, expect, "byte {b:#x} at {pos} in {fill:#x}");
                }
            }
        }
        let msg = b"abcdefghijklmnopqrstuvwxyz 'q' 7";
        assert_eq!(next_trigger(msg, 0), 27);
        assert_eq!(next_trigger(msg, 28), 29);
        assert_eq!(next_trigger(msg, 30), 31);
        assert_eq!(next_trigger(msg, 32), 32);
    }

    // ---- stacks: JavaScript

    #[test]
    fn js_same_error_from_other_install_dir_and_lines_groups() {
        let a = fp(
            "TypeError",
            "m",
            &js_stack("/srv/app/releases/41", 10, "getUser"),
        );
        let b = fp(
            "TypeError",
            "m",
            &js_stack("/home/deploy/checkout", 57, "getUser"),
        );
        let c = fp(
            "TypeError",
            "m",
            &js_stack("C:\\apps\\checkout", 3, "getUser"),
        );
        assert_eq!(a, b);
        assert_eq!(a, c);
    }

    #[test]
    fn js_different_top_in_app_function_differs() {
        let a = fp("TypeError", "m", &js_stack("/srv/app", 10, "getUser"));
        let b = fp("TypeError", "m", &js_stack("/srv/app", 10, "getOrder"));
        assert_ne!(a, b);
        // And the stack matters at all.
        assert_ne!(a, compute(Some("TypeError"), "m", None));
    }

    #[test]
    fn js_frames_are_normalized_and_library_frames_skipped() {
        let frames = chosen(&esc(&js_stack("/srv/app", 10, "getUser")));
        assert_eq!(
            names(&frames),
            vec![
                ("getUser", "order.js"),
                ("OrderController.create", "order.js"),
                ("handle", "routes.js"),
            ]
        );
        assert!(frames.iter().all(|f| f.2));

        let lib_first = "Error: boom\n    at Layer.handle [as handle_request] (/srv/app/node_modules/express/lib/router/layer.js:95:5)\n    at new Promise (<anonymous>)\n    at Array.map (<anonymous>)\n    at /srv/app/src/index.mjs:7:3\n    at listOnTimeout (node:internal/timers:569:17)\n    at file:///srv/app/src/boot.mjs?v=3:1:1";
        assert_eq!(
            names(&chosen(&esc(lib_first))),
            vec![("", "index.mjs"), ("", "boot.mjs")]
        );
    }

    #[test]
    fn js_library_frames_below_app_frames_do_not_matter() {
        let base = "Error: x\n    at a (/app/a.js:1:1)\n    at b (/app/b.js:2:2)\n";
        let one = format!("{base}    at x (/app/node_modules/lib/x.js:1:1)");
        let two = format!(
            "{base}    at y (/app/node_modules/other/y.js:9:9)\n    at z (node:internal/z:1:1)"
        );
        assert_eq!(fp("Error", "x", &one), fp("Error", "x", &two));
    }

    #[test]
    fn stack_without_app_frames_falls_back_to_top_frames() {
        let a = "Error: x\n    at parse (/app/node_modules/lib/p.js:1:1)\n    at run (/app/node_modules/lib/r.js:2:2)";
        let b = "Error: x\n    at lex (/app/node_modules/lib/p.js:1:1)\n    at run (/app/node_modules/lib/r.js:2:2)";
        assert_eq!(
            names(&chosen(&esc(a))),
            vec![("parse", "p.js"), ("run", "r.js")]
        );
        assert_ne!(fp("Error", "x", a), fp("Error", "x", b));
    }

    #[test]
    fn header_line_is_not_a_frame_even_if_it_looks_like_one() {
        // Header mimicking a Rust frame / an `at` frame must not count.
        let a = "404: user 17 not found (reason)\n    at f (/app/f.js:1:1)";
        let b = "404: user 99 not found (reason)\n    at f (/app/f.js:1:1)";
        assert_eq!(fp("E", "m", a), fp("E", "m", b));
        assert_eq!(names(&chosen(&esc(a))), vec![("f", "f.js")]);
    }

    // ---- escapes

    #[test]
    fn escaped_stack_variants_group_together() {
        let raw = js_stack("/srv/app", 10, "getUser");
        let lf = esc(&raw);
        let crlf = esc(&raw.replace('\n', "\r\n"));
        let unicode_nl = lf.replace("\\n", "\\u000a");
        let raw_newlines = raw.clone(); // not escaped at all: raw newlines also split
        let slash = lf.replace('/', "\\/");
        let base = compute(Some("E"), "m", Some(&lf));
        for (what, s) in [
            ("crlf", &crlf),
            ("\\u000a", &unicode_nl),
            ("raw", &raw_newlines),
            ("\\/", &slash),
        ] {
            assert_eq!(compute(Some("E"), "m", Some(s)), base, "{what}");
        }
    }

    #[test]
    fn unicode_escapes_decode_to_the_raw_text() {
        let raw = "Error: x\n    at caf\u{e9}.\u{1F600} (/app/\u{fc}ber.js:1:1)";
        let escaped = "Error: x\\n    at caf\\u00e9.\\ud83d\\ude00 (/app/\\u00FCber.js:1:1)";
        assert_eq!(
            compute(None, "m", Some(escaped)),
            compute(None, "m", Some(&esc(raw)))
        );
        assert_eq!(names(&chosen(escaped)), vec![("café.\u{1F600}", "über.js")]);
    }

    #[test]
    fn escaped_backslash_before_n_is_not_a_newline() {
        // Windows path `C:\new\app.js` arrives as `C:\\new\\app.js`.
        let s = "Error: x\\n    at f (C:\\\\new\\\\app.js:1:1)";
        assert_eq!(names(&chosen(s)), vec![("f", "app.js")]);
        let lines: Vec<_> = Lines::new(s.as_bytes()).collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].escaped);
        assert!(!lines[0].escaped);
    }

    #[test]
    fn unescape_handles_every_json_escape() {
        let mut buf = [0u8; LINE_BUF];
        let got = unescape(
            br#"a\"b\\c\/d\be\ff\ng\rh\ti\u0041\u00e9\ud83d\ude00"#,
            &mut buf,
        );
        assert_eq!(
            got,
            "a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti\u{41}\u{e9}\u{1F600}".as_bytes()
        );
        // Malformed escapes are literal; lone surrogates become U+FFFD.
        let got = unescape(br"\x \u12 \ud800 \udc00x \", &mut buf);
        assert_eq!(got, "\\x \\u12 \u{FFFD} \u{FFFD}x \\".as_bytes());
    }

    #[test]
    fn long_escaped_lines_are_truncated_not_panicking() {
        let long = format!(
            "    at f (/app/{}x.js:1:1)\\t",
            "\\\\d".repeat(2 * LINE_BUF)
        );
        let s = format!("Error: x\\n{long}\\n{long}");
        let _ = compute(None, "m", Some(&s));
        let mut buf = [0u8; LINE_BUF];
        assert_eq!(unescape(long.as_bytes(), &mut buf).len(), LINE_BUF);
    }

    // ---- stacks: Python

    fn py_stack(root: &str, inner: &str, line: u32) -> String {
        format!(
            "Traceback (most recent call last):\n  \
             File \"{root}/venv/lib/python3.12/site-packages/flask/app.py\", line 1473, in wsgi_app\n    \
             response = self.full_dispatch_request()\n  \
             File \"{root}/app/views.py\", line {line}, in create_order\n    \
             order = build(payload)\n  \
             File \"{root}/app/orders.py\", line {}, in {inner}\n    \
             return payload[\"id\"]\n  \
             File \"/usr/lib/python3.12/json/__init__.py\", line 346, in loads\n    \
             return _default_decoder.decode(s)\n\
             KeyError: 'id'",
            line + 7
        )
    }

    #[test]
    fn python_uses_innermost_app_frames_and_normalizes() {
        assert_eq!(
            names(&chosen(&esc(&py_stack("/srv", "build", 10)))),
            vec![("build", "orders.py"), ("create_order", "views.py")]
        );
        let a = fp("KeyError", "'id'", &py_stack("/srv", "build", 10));
        let b = fp("KeyError", "'id'", &py_stack("/opt/other", "build", 99));
        let c = fp("KeyError", "'id'", &py_stack("/srv", "build_v2", 10));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn python_library_only_stack_uses_innermost_frames() {
        let s = "Traceback (most recent call last):\n  File \"<frozen runpy>\", line 198, in _run_module_as_main\n  File \"/usr/local/lib/python3.11/asyncio/base_events.py\", line 653, in run_until_complete\n  File \"/usr/local/lib/python3.11/site-packages/httpx/_client.py\", line 1, in send\nhttpx.ConnectError: boom";
        let frames = chosen(&esc(s));
        assert_eq!(
            names(&frames),
            vec![
                ("send", "_client.py"),
                ("run_until_complete", "base_events.py"),
                ("_run_module_as_main", "<frozen runpy>"),
            ]
        );
        assert!(frames.iter().all(|f| !f.2));
    }

    // ---- stacks: Java

    fn java_stack(line: u32, method: &str) -> String {
        format!(
            "java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"s\" is null\n\
             \tat com.acme.shop.OrderService.{method}(OrderService.java:{line})\n\
             \tat com.acme.shop.OrderController.create(OrderController.java:{})\n\
             \tat java.base/jdk.internal.reflect.DirectMethodHandleAccessor.invoke(DirectMethodHandleAccessor.java:103)\n\
             \tat java.base/java.lang.Thread.run(Thread.java:1583)\n\
             Caused by: java.io.IOException: x\n\
             \t... 12 more",
            line * 2
        )
    }

    #[test]
    fn java_frames() {
        assert_eq!(
            names(&chosen(&esc(&java_stack(42, "total")))),
            vec![
                ("com.acme.shop.OrderService.total", "OrderService.java"),
                (
                    "com.acme.shop.OrderController.create",
                    "OrderController.java"
                ),
            ]
        );
        assert_eq!(
            fp("NPE", "m", &java_stack(42, "total")),
            fp("NPE", "m", &java_stack(77, "total"))
        );
        assert_ne!(
            fp("NPE", "m", &java_stack(42, "total")),
            fp("NPE", "m", &java_stack(42, "subtotal"))
        );
        let jdk_only = "x\n\tat java.base/java.lang.Thread.run(Thread.java:1583)\n\tat app//com.acme.Main.main(Native Method)";
        let frames = chosen(&esc(jdk_only));
        assert_eq!(
            names(&frames),
            vec![
                ("java.lang.Thread.run", "Thread.java"),
                ("com.acme.Main.main", "Native Method")
            ]
        );
    }

    // ---- stacks: Go

    fn go_stack(root: &str, handler: &str, off: &str) -> String {
        format!(
            "panic: runtime error: invalid memory address or nil pointer dereference\n\
             [signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a1b2c]\n\n\
             goroutine 18 [running]:\n\
             panic({{0x6b5e20?, 0x9a4f10?}})\n\
             \t/usr/local/go/src/runtime/panic.go:770 +0x132\n\
             main.(*Server).{handler}(0xc000124000, {{0x7a1c40, 0xc00013e0e0}})\n\
             \t{root}/server.go:42 +0x{off}\n\
             net/http.HandlerFunc.ServeHTTP(0x0?, {{0x7a1c40?, 0xc00013e0e0?}}, 0x0?)\n\
             \t{root}/go/pkg/mod/golang.org/x/net@v0.1.0/http.go:2166 +0x29\n\
             main.main()\n\
             \t{root}/main.go:17 +0x{off}\n\
             created by net/http.(*Server).Serve in goroutine 1\n\
             \t/usr/local/go/src/net/http/server.go:3285 +0x4b4"
        )
    }

    #[test]
    fn go_frames() {
        assert_eq!(
            names(&chosen(&esc(&go_stack("/build", "handleOrder", "1d")))),
            vec![
                ("main.(*Server).handleOrder", "server.go"),
                ("main.main", "main.go")
            ]
        );
        let a = fp("panic", "m", &go_stack("/build", "handleOrder", "1d"));
        let b = fp(
            "panic",
            "m",
            &go_stack("/home/ci/src/shop", "handleOrder", "2f"),
        );
        let c = fp("panic", "m", &go_stack("/build", "handleRefund", "1d"));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    // ---- stacks: Rust

    fn rust_stack(func: &str, line: u32) -> String {
        format!(
            "stack backtrace:\n   \
             0: rust_begin_unwind\n             \
             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/std/src/panicking.rs:665:5\n   \
             1: core::panicking::panic_fmt\n             \
             at /rustc/90b35a6239c3d8bdabc530a6a0816f7ff89a0aaf/library/core/src/panicking.rs:74:14\n   \
             2: serde_json::de::from_str::h0123456789abcdef\n             \
             at /home/u/.cargo/registry/src/index.crates.io-6f17d22bba15001f/serde_json-1.0.1/src/de.rs:2:1\n   \
             3: shop::orders::{func}::h9f8e7d6c5b4a3921\n             \
             at ./src/orders.rs:{line}:9\n   \
             4: shop::main\n             \
             at ./src/main.rs:3:5\n   \
             5: core::ops::function::FnOnce::call_once\n   \
             6: main\n   \
             7: <unknown>"
        )
    }

    #[test]
    fn rust_frames() {
        assert_eq!(
            names(&chosen(&esc(&rust_stack("total", 10)))),
            vec![
                ("shop::orders::total", "orders.rs"),
                ("shop::main", "main.rs"),
                ("<unknown>", "")
            ]
        );
        assert_eq!(
            fp("panic", "m", &rust_stack("total", 10)),
            fp("panic", "m", &rust_stack("total", 99))
        );
        assert_ne!(
            fp("panic", "m", &rust_stack("total", 10)),
            fp("panic", "m", &rust_stack("subtotal", 10))
        );
        assert_eq!(
            rust_symbol(b"12: 0x55d4c3a2b1c0 - <alloc::boxed::Box<F,A> as core::ops::FnOnce<Args>>::call_once::h0123456789abcdef"),
            Some(&b"<alloc::boxed::Box<F,A> as core::ops::FnOnce<Args>>::call_once"[..])
        );
        assert_eq!(rust_symbol(b"404: not found"), None);
        assert_eq!(
            rust_symbol(b"7: <fn() -> core::result::Result<(), String> as core::ops::FnOnce<()>>::call_once"),
            Some(&b"<fn() -> core::result::Result<(), String> as core::ops::FnOnce<()>>::call_once"[..])
        );
    }

    #[test]
    fn rust_std_backtrace_as_printed_by_a_test_panic() {
        let s = "thread 'tests::golden' (11892) panicked at src/x.rs:1054:9:\nassertion failed\nstack backtrace:\n   0: __rustc::rust_begin_unwind\n             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/std/src/panicking.rs:689:5\n   1: core::panicking::panic_fmt\n             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/panicking.rs:80:14\n   2: fpclass::tests::golden\n             at ./src/x.rs:1054:9\n   3: fpclass::tests::golden::{{closure}}\n             at ./src/x.rs:1048:34\n   4: core::ops::function::FnOnce::call_once\n             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/ops/function.rs:250:5\n   5: <fn() -> core::result::Result<(), alloc::string::String> as core::ops::function::FnOnce<()>>::call_once\n             at /rustc/59807616e1fa2540724bfbac14d7976d7e4a3860/library/core/src/ops/function.rs:250:5\nnote: Some details are omitted";
        let frames = chosen(s);
        assert_eq!(
            names(&frames),
            vec![
                ("fpclass::tests::golden", "x.rs"),
                ("fpclass::tests::golden::{{closure}}", "x.rs")
            ]
        );
    }

    // ---- client override

    #[test]
    fn client_fingerprints_are_unambiguous_and_separate() {
        assert_eq!(from_client(&["a", "b"]), from_client(&["a", "b"]));
        assert_ne!(from_client(&["ab", "c"]), from_client(&["a", "bc"]));
        assert_ne!(from_client(&["abc"]), from_client(&["ab", "c"]));
        assert_ne!(from_client(&["a"]), from_client(&["a", ""]));
        assert_ne!(from_client(&[]), from_client(&[""]));
        // Same name/message text never meets an automatic fingerprint.
        assert_ne!(from_client(&["x"]), compute(Some("x"), "", None));
        assert_ne!(from_client(&[]), compute(None, "", None));
        assert_ne!(AUTO_TAG, CLIENT_TAG);
        assert_eq!(AUTO_TAG.len(), CLIENT_TAG.len());
    }

    // ---- robustness

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

    #[test]
    fn garbage_never_panics() {
        let odd = [
            "",
            "\\",
            "\\\\",
            "\\u",
            "\\u12",
            "\\uZZZZ",
            "\\ud800",
            "\\udc00\\ud800",
            "\\ud800\\u0041",
            "\\n\\n\\n",
            "\\r\\n",
            "\\r",
            "at",
            "at ",
            "at (",
            "at )",
            "at ()",
            "at f ()",
            "at ((((",
            "at ))))",
            "File \"",
            "File \"x",
            "File \"\", line",
            "0:",
            "0: ",
            "0: 0x",
            "0: 0x - ",
            "1: ::h0123456789abcdef",
            "f()\\n",
            "f()\\n\\t:1",
            "f()\\n.go:",
            "f()\\n.go:1 +0x",
            "()\\n/x.go:1",
            "\u{0}\u{7f}\u{FFFD}é\u{10FFFF}",
            "'\"`'\"`",
        ];
        for s in odd {
            let _ = compute(Some(s), s, Some(s));
            let _ = compute(
                None,
                s,
                Some(&format!("Error: x\\n{s}\\n{s}\\n    at f (/a.js:1:1)")),
            );
        }
        for msg in [
            "'",
            "''",
            "'a",
            "a'",
            "\"",
            "`",
            "0x",
            "0X",
            "0xg",
            "--------",
            "0-0-0-0-0",
        ] {
            let _ = msg_fp(msg);
        }
    }

    #[test]
    fn pseudo_random_inputs_never_panic() {
        const ALPHABET: &[&str] = &[
            "\\",
            "n",
            "u",
            "r",
            "t",
            "\"",
            "'",
            "`",
            " ",
            "\t",
            "at ",
            "File \"",
            "(",
            ")",
            ":",
            "0",
            "7",
            "a",
            "f",
            "x",
            "-",
            "/",
            ".go",
            ".js",
            "\n",
            "é",
            "\u{1F600}",
            "0x",
            "+0x1",
            ", in ",
            "  3: ",
            "\\u00",
            "d8",
            "dc",
            "node_modules",
            "::h",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let len = (next() % 120) as usize;
            let s: String = (0..len)
                .map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize])
                .collect();
            let _ = compute(Some(&s), &s, Some(&s));
        }
    }

    #[test]
    fn huge_inputs_are_fine() {
        let frame = "    at f (/app/node_modules/x/y.js:1:1)\\n";
        let stack = format!("Error: x\\n{}", frame.repeat(20_000));
        let msg = "9".repeat(300_000);
        let a = compute(Some("E"), &msg, Some(&stack));
        let b = compute(Some("E"), &"1".repeat(300_000), Some(&stack));
        assert_eq!(a, b);
        let py = format!(
            "Traceback (most recent call last):\\n{}",
            "  File \\\"/app/r.py\\\", line 1, in rec\\n".repeat(20_000)
        );
        assert_eq!(names(&chosen(&py)), vec![("rec", "r.py"); 3]);
    }
}
