//! Which frames are the app's: a frame is *not* in-app when its file or function belongs to
//! a runtime, its standard library or an installed dependency (`node_modules`, JDK packages,
//! `site-packages`, the Go module cache, `~/.cargo/registry`, …). The full list is in the
//! [parent module](super) documentation.

use super::lines::find;

/// In-app test for `at` frames; `node_modules` is checked by the caller.
pub(super) fn at_in_app(func: &[u8], loc: &[u8], java: bool) -> bool {
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

pub(super) fn python_in_app(path: &[u8]) -> bool {
    !(path.starts_with(b"<frozen ")
        || find(path, b"site-packages").is_some()
        || find(path, b"dist-packages").is_some()
        || find(path, b"/lib/python").is_some())
}

pub(super) fn go_in_app(func: &[u8], path: &[u8]) -> bool {
    !(func.starts_with(b"runtime.")
        || path.starts_with(b"runtime/")
        || find(path, b"/usr/local/go/src/").is_some()
        || find(path, b"/src/runtime/").is_some()
        || find(path, b"/pkg/mod/").is_some())
}

pub(super) fn rust_in_app(func: &[u8], path: &[u8]) -> bool {
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

#[cfg(test)]
mod tests {
    use crate::event::fingerprint::tests::{chosen, esc, js_stack, names};

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
}
