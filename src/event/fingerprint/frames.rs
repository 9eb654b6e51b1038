//! Reading one frame: the frame formats of each runtime (JavaScript and Java `at …`, Python,
//! Go, Rust) and their reduction to *(function, file name)*, without directory, line, column
//! or query string. The table of formats is in the [parent module](super) documentation.

use memchr::{memchr, memrchr, memrchr3};

use super::in_app::{at_in_app, go_in_app, python_in_app, rust_in_app};
use super::lines::find;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) enum Kind {
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

/// A normalized frame.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Frame<'a> {
    pub(super) func: &'a [u8],
    pub(super) file: &'a [u8],
    pub(super) in_app: bool,
}

/// Parses a frame from its (unescaped, trimmed) line(s).
#[inline]
pub(super) fn parse_frame<'a>(
    kind: Kind,
    head: &'a [u8],
    loc: Option<&'a [u8]>,
) -> Option<Frame<'a>> {
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
pub(super) fn rust_symbol(t: &[u8]) -> Option<&[u8]> {
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
pub(super) fn go_func(t: &[u8]) -> Option<&[u8]> {
    let func = &t[..open_of_last_paren(t)?];
    if func.is_empty() || func.iter().any(u8::is_ascii_whitespace) {
        return None;
    }
    Some(func)
}

/// `/path/x.go:42 +0x1d` (Go), returning the path.
pub(super) fn go_loc(t: &[u8]) -> Option<&[u8]> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::fingerprint::tests::{chosen, esc, fp, names};

    // ---- Java

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

    // ---- Go

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

    // ---- Rust

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
}
