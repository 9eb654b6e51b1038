//! Which frames count: the stack is walked line by line, each line recognized as a frame of
//! some runtime or skipped, and the top in-app frames chosen (the first ones, or the last ones
//! for Python), falling back to the top frames when none is in-app. See "Which frames count"
//! in the [parent module](super) documentation.

use super::frames::{go_func, go_loc, parse_frame, rust_symbol, Frame, Kind};
use super::lines::find;
use super::lines::{view, LineRef, Lines, LINE_BUF};
use super::TOP_FRAMES;

/// Where a recognized frame is in the stack, to parse it again when it is chosen late.
#[derive(Debug, Clone, Copy, Default)]
struct FrameRef {
    kind: Kind,
    head: LineRef,
    loc: Option<LineRef>,
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
pub(super) fn for_each_frame(
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

#[cfg(test)]
mod tests {
    use crate::event::fingerprint::compute;
    use crate::event::fingerprint::tests::{chosen, esc, fp, js_stack, names};

    // ---- JavaScript

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

    // ---- Python

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
}
