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
//!
//! # Layout
//!
//! This file holds the fingerprint type and the entry points; the steps live in submodules:
//! `mask` (message masking), `lines` (the escaped stack split into lines and unescaped),
//! `choose` (which frames count), `frames` (reading one frame of each runtime), `in_app`
//! (which frames are the app's) and `sink` (the hash input buffer).

mod choose;
mod frames;
mod in_app;
mod lines;
mod mask;
mod sink;

use std::fmt;

use choose::for_each_frame;
use lines::LINE_BUF;
use mask::mask_message;
use sink::Sink;

pub(crate) use mask::{closing_quote, quote_kind};
pub use mask::{MAX_MESSAGE_BYTES, MIN_HEX_RUN};

/// Number of (in-app) stack frames that take part in grouping. Three frames separate call
/// sites well without letting deep framework/caller differences split one bug into many groups.
pub const TOP_FRAMES: usize = 3;

/// Leads every automatic fingerprint's input. Same length as [`CLIENT_TAG`], different bytes.
pub const AUTO_TAG: &[u8; 16] = b"qerrors/fp/auto2";

/// Domain separator of [`stack_digest`].
pub const STACK_TAG: &[u8; 16] = b"qerrors/fp/stck2";

/// Leads every client-supplied fingerprint's input.
pub const CLIENT_TAG: &[u8; 16] = b"qerrors/fp/user1";

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

#[cfg(test)]
mod tests {
    use super::*;

    // Helpers shared with the tests of the submodules.

    /// JSON-escapes a raw stack the way a client's JSON encoder would.
    pub(super) fn esc(raw: &str) -> String {
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

    pub(super) fn fp(name: &str, msg: &str, raw_stack: &str) -> Fingerprint {
        compute(Some(name), msg, Some(&esc(raw_stack)))
    }

    pub(super) fn msg_fp(msg: &str) -> Fingerprint {
        compute(Some("Error"), msg, None)
    }

    /// Normalized (function, file, in_app) of the frames chosen from an escaped stack.
    pub(super) fn chosen(stack_escaped: &str) -> Vec<(String, String, bool)> {
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

    pub(super) fn names(frames: &[(String, String, bool)]) -> Vec<(&str, &str)> {
        frames
            .iter()
            .map(|(f, file, _)| (f.as_str(), file.as_str()))
            .collect()
    }

    pub(super) fn js_stack(root: &str, line: u32, top_fn: &str) -> String {
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

    // ---- fields

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
