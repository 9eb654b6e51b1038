"""qerrors client for Python: a ``logging.Handler`` that sends records to the qerrors daemon.

    import logging
    from qerrors_client import QerrorsHandler

    logging.getLogger().addHandler(QerrorsHandler(level=logging.WARNING, service="billing"))
    log.exception("charge failed")          # message, level, exception type and traceback

Standard library only. ``emit`` never blocks and never raises: records are formatted in the
caller's thread and put into a queue bounded by events and bytes; one daemon thread writes them
to the Unix socket, reconnecting with backoff when the daemon is down or restarting. When the
queue is full the record is dropped and counted (``handler.dropped``). Delivery is at most once.
A forked child (gunicorn/uWSGI workers, multiprocessing) gets a fresh queue and sender thread.

Which socket: ``resolve_socket`` (the rule qerrorsd, qerrorsctl and the Node shim share), looked
up again on every connection attempt unless ``socket_path`` was given. Nothing is lost silently:
the first time the daemon cannot be reached the process says so once (a warning on the
``qerrors_client`` logger, or stderr when nothing would show it), and at exit, after a bounded
flush that gives up at once when not connected, it says on stderr how many events were still held
or were dropped.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import os
import queue
import socket
import stat
import sys
import threading
import time
import traceback
import weakref
from typing import NamedTuple

__all__ = ["QerrorsHandler", "configure", "daemon_default_socket", "default_socket",
           "explicit_socket", "record_to_event", "report", "resolve_socket", "socket_candidates"]

#: Default bounds of the in-process queue: events, and bytes of encoded lines.
DEFAULT_MAX_EVENTS = 1000
DEFAULT_MAX_BYTES = 1024 * 1024
#: The daemon's default ``ingest.max_line_bytes``; longer lines are dropped here.
MAX_LINE_BYTES = 256 * 1024
#: Reconnect backoff, doubling from the minimum to the maximum (seconds).
RECONNECT_MIN_S = 0.05
RECONNECT_MAX_S = 2.0
#: Socket send timeout: a stalled daemon costs the sender thread at most this per attempt.
SEND_TIMEOUT_S = 5.0
#: At exit, how long a connected handler may take to hand over what it holds (seconds). A handler
#: that is not connected gives up at once: a script never waits for a daemon that is down.
EXIT_FLUSH_S = 1.0

#: The socket's file name in each directory the daemon may use.
SOCKET_NAME = "qerrors.sock"
#: The environment variable naming the socket, and its deprecated alias (the new name wins).
SOCKET_ENV = "QERRORS_INGEST_SOCKET"
LEGACY_SOCKET_ENV = "QERRORS_SOCKET"
#: Where a daemon without a runtime directory puts its socket (``<TMP_DIR>/qerrors-<euid>/``).
TMP_DIR = "/tmp"
#: Where a daemon run as root (or installed with systemd) puts its socket.
RUN_DIR = "/run"
#: The logger of this module's own notices. Its records are never sent to the daemon.
NOTICE_LOGGER = "qerrors_client"

# Attributes every LogRecord has; anything else came from ``extra=`` and goes to ``context``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


def explicit_socket(env=None) -> tuple[str, str] | None:
    """The socket named in the environment, ``(path, variable)``: ``QERRORS_INGEST_SOCKET``, else
    the deprecated ``QERRORS_SOCKET``; ``None`` when neither is set (empty counts as unset)."""
    env = os.environ if env is None else env
    for name in (SOCKET_ENV, LEGACY_SOCKET_ENV):
        if env.get(name):
            return env[name], name
    return None


def socket_candidates(env=None, uid: int | None = None, tmp_dir: str = TMP_DIR,
                      run_dir: str = RUN_DIR) -> list[str]:
    """Where a daemon may listen, in the order a client looks: ``$XDG_RUNTIME_DIR/qerrors.sock``
    (when set), ``/tmp/qerrors-<euid>/qerrors.sock``, ``/run/qerrors.sock``. The parameters exist
    for tests (the directories stand in for /tmp and /run)."""
    env = os.environ if env is None else env
    uid = _euid() if uid is None else uid
    found = []
    if env.get("XDG_RUNTIME_DIR"):
        found.append(os.path.join(env["XDG_RUNTIME_DIR"], SOCKET_NAME))
    found.append(os.path.join(tmp_dir, f"qerrors-{uid}", SOCKET_NAME))
    found.append(os.path.join(run_dir, SOCKET_NAME))
    return found


def daemon_default_socket(env=None, uid: int | None = None, tmp_dir: str = TMP_DIR,
                          run_dir: str = RUN_DIR) -> str:
    """Where a daemon of this identity binds when nothing is configured: ``/run/qerrors.sock`` for
    euid 0, else ``$XDG_RUNTIME_DIR/qerrors.sock`` when that is an absolute path to a directory,
    else ``/tmp/qerrors-<euid>/qerrors.sock``."""
    env = os.environ if env is None else env
    uid = _euid() if uid is None else uid
    if uid == 0:
        return os.path.join(run_dir, SOCKET_NAME)
    xdg = env.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and os.path.isdir(xdg):
        return os.path.join(xdg, SOCKET_NAME)
    return os.path.join(tmp_dir, f"qerrors-{uid}", SOCKET_NAME)


def _is_private_dir(path: str, uid: int) -> bool:
    """A real directory (not a symlink) owned by ``uid`` that nobody else can write: the
    ``/tmp/qerrors-<euid>`` candidate is used only then, since another user could have made it
    first to receive this user's events (qerrorsd refuses such a directory the same way)."""
    try:
        st = os.lstat(path)
    except (OSError, ValueError):
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid and st.st_mode & 0o022 == 0


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


class Resolved(NamedTuple):
    """A socket chosen by the rule: ``source`` is the variable's name, ``"candidate"``,
    ``"default"`` or ``"socket_path"``; ``tried`` the paths looked at."""
    path: str
    source: str
    tried: tuple


def resolve_socket(env=None, uid: int | None = None, tmp_dir: str = TMP_DIR,
                   run_dir: str = RUN_DIR, skip=frozenset()) -> Resolved:
    """The socket rule shared with qerrorsd, qerrorsctl and the Node shim: the environment
    (``explicit_socket``) wins; else the first of ``socket_candidates`` that exists and is a
    socket (the ``/tmp`` one only in a directory of this user's own, ``_is_private_dir``); else
    the daemon default for this identity (``daemon_default_socket``), so a daemon started later
    is found. ``skip``: candidates that refused the last connection (a dead daemon's socket
    file), so a live daemon further down the list is tried; when every one refused, the first
    again."""
    named = explicit_socket(env)
    if named is not None:
        return Resolved(named[0], named[1], (named[0],))
    uid = _euid() if uid is None else uid
    tried = tuple(socket_candidates(env, uid, tmp_dir, run_dir))
    user_tmp = os.path.join(tmp_dir, f"qerrors-{uid}")
    usable = [p for p in tried
              if (os.path.dirname(p) != user_tmp or _is_private_dir(user_tmp, uid))
              and _is_socket(p)]
    for path in usable:
        if path not in skip:
            return Resolved(path, "candidate", tried)
    if usable:
        return Resolved(usable[0], "candidate", tried)
    return Resolved(daemon_default_socket(env, uid, tmp_dir, run_dir), "default", tried)


def default_socket(**kwargs) -> str:
    """The socket path the rule gives now (``resolve_socket(**kwargs).path``)."""
    return resolve_socket(**kwargs).path


def _level(levelno: int) -> str:
    if levelno >= logging.CRITICAL:
        return "fatal"
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


def _code(exc: BaseException):
    """The error's code: an ``errno`` as its name (``2`` -> ``"ENOENT"``), else ``code``."""
    number = getattr(exc, "errno", None)
    if isinstance(number, int) and not isinstance(number, bool) and number:
        return errno.errorcode.get(number, number)
    if isinstance(number, str) and number:
        return number
    code = getattr(exc, "code", None)
    if isinstance(code, (str, int)) and not isinstance(code, bool):
        return code
    return None


def record_to_event(record: logging.LogRecord, service: str | None = None) -> dict:
    """A protocol event (docs/PROTOCOL.md) for one log record. ``context`` has the logger, module,
    function and line (those that are known) and the ``extra=`` fields; ``report()`` records carry
    exactly the caller's context."""
    try:
        message = record.getMessage()
    except Exception:  # a bad %-format in the app's call
        message = str(record.msg)
    event = {"message": message, "level": _level(record.levelno), "ts": record.created * 1000.0}
    if record.exc_info and record.exc_info[0] is not None:
        etype, evalue, _tb = record.exc_info
        event["name"] = etype.__name__
        event["stack"] = "".join(traceback.format_exception(*record.exc_info))
        code = _code(evalue)
        if code is not None:
            event["code"] = code
    elif record.stack_info:
        event["stack"] = record.stack_info
    if service:
        event["service"] = service
    context = getattr(record, "_qerrors_context", None)
    if context is None:
        context = {}
        for key, value in (("logger", record.name), ("module", record.module),
                           ("func", record.funcName), ("line", record.lineno)):
            if value:  # a record made by hand has "", None, 0 here: nothing to say
                context[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                context[key] = value
    if context:
        event["context"] = context
    return event


class QerrorsHandler(logging.Handler):
    """Sends each record to the qerrors daemon. Never blocks the caller, never raises.

    ``socket_path``: the daemon's socket; without it, the environment and then the socket rule
    (``resolve_socket``), looked up again on every connection attempt. ``resolve``: for tests,
    keyword arguments for ``resolve_socket`` (``env``, ``uid``, ``tmp_dir``, ``run_dir``).
    """

    def __init__(self, level=logging.NOTSET, *, socket_path: str | None = None,
                 service: str | None = None, max_events: int = DEFAULT_MAX_EVENTS,
                 max_bytes: int = DEFAULT_MAX_BYTES, resolve: dict | None = None):
        super().__init__(level)
        self._explicit = socket_path
        self._resolve_options = dict(resolve or {})
        # Candidates whose socket refused the last attempt (skipped until a connection works).
        self._refused: set = set()
        self._target = self._resolve_target()
        self.socket_path = self._target.path
        self.service = service
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.dropped = 0
        self.sent = 0
        self.connects = 0
        self.connect_failures = 0
        self._closed = False
        self._start()
        _live.add(self)

    def _resolve_target(self) -> Resolved:
        if self._explicit:
            return Resolved(self._explicit, "socket_path", (self._explicit,))
        return resolve_socket(**self._resolve_options, skip=frozenset(self._refused))

    def _start(self) -> None:
        """A new queue and sender thread (at construction, and in a forked child, where the
        parent's thread does not exist and its socket and queue must not be shared)."""
        # Bounded by ``_held`` (events) and ``_bytes``, both checked under ``_lock`` in ``emit``.
        self._queue: queue.Queue[bytes | None] = queue.Queue()
        self._lock = threading.Lock()
        self._held = 0  # accepted, not yet handed to the socket: the queue and the line in hand
        self._bytes = 0  # encoded bytes in the queue
        self._sock: socket.socket | None = None
        self._connected = False
        self._down = False  # the last connection attempt failed
        self._wake = threading.Event()  # cuts the backoff short at close()
        self._thread = threading.Thread(target=self._run, name="qerrors-sender", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the child's copy of the parent's connection; the parent keeps it
        self._start()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == NOTICE_LOGGER or record.name.startswith(NOTICE_LOGGER + "."):
            return  # this module's own notices ("daemon unreachable") never go to the daemon
        try:
            event = record_to_event(record, self.service)
            line = (json.dumps(event, default=repr, ensure_ascii=False) + "\n").encode()
            full = len(line) > MAX_LINE_BYTES or self._closed
            if not full:
                with self._lock:
                    full = (self._held >= self.max_events
                            or self._bytes + len(line) > self.max_bytes)
                    if not full:
                        self._held += 1
                        self._bytes += len(line)
                        self._queue.put_nowait(line)  # unbounded Queue: never raises Full
            if full:
                self._drop()
        except Exception:
            # Never let error reporting break the app (not even via handleError's print).
            self._drop()

    def _drop(self, n: int = 1) -> None:
        with self._lock:
            self.dropped += n
        _count_dropped(n)

    def stats(self) -> dict:
        """Counters: ``sent`` (handed to the socket), ``dropped`` (queue full, line too long, left
        at close), ``queued``/``queued_bytes`` (held: not yet handed to the socket), ``connects``,
        ``connect_failures``; whether it is ``connected`` and to which ``socket``."""
        with self._lock:
            return {"sent": self.sent, "dropped": self.dropped, "queued": self._held,
                    "queued_bytes": self._bytes, "connects": self.connects,
                    "connect_failures": self.connect_failures, "connected": self._connected,
                    "socket": self.socket_path}

    # The sender thread.
    def _run(self) -> None:
        backoff = RECONNECT_MIN_S
        pending: bytes | None = None
        while True:
            if pending is None:
                pending = self._queue.get()
                if pending is None:  # close()
                    break
                with self._lock:
                    self._bytes -= len(pending)
            if self._closed:
                break  # close() counted what was left as dropped
            if self._sock is None:
                if not self._connect():
                    self._wake.wait(backoff)
                    backoff = min(backoff * 2, RECONNECT_MAX_S)
                    continue
                backoff = RECONNECT_MIN_S
            try:
                self._sock.sendall(pending)
            except OSError:
                # The daemon went away (restart): reconnect and send this line again.
                self._disconnect()
                continue
            with self._lock:
                self.sent += 1
                self._held = max(self._held - 1, 0)
            pending = None
        self._disconnect()

    def _connect(self) -> bool:
        # Looked up on every attempt: a daemon started later at any candidate is found.
        self._target = self._resolve_target()
        self.socket_path = self._target.path
        s = None
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(SEND_TIMEOUT_S)
            s.connect(self.socket_path)
        except OSError as e:
            if s is not None:
                s.close()
            if self._target.source == "candidate" and isinstance(e, ConnectionRefusedError):
                self._refused.add(self.socket_path)
            with self._lock:
                self.connect_failures += 1
            _note_unreachable(self, e)
            self._down = True  # after the notice: the exit notice comes after it
            return False
        self._sock = s
        self._down = False
        self._refused.clear()
        with self._lock:
            self.connects += 1
            self._connected = True
        _note_connected(self)
        return True

    def _disconnect(self) -> None:
        with self._lock:
            self._connected = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _wait_delivered(self, deadline: float) -> None:
        """Waits until everything held was handed to the socket, until ``deadline``, or not at
        all when the last attempt to reach the daemon failed."""
        while time.monotonic() < deadline and not self._closed and not _exited[0]:
            with self._lock:
                if self._held == 0:
                    return
            if (self._down and not self._connected) or not self._thread.is_alive():
                return
            time.sleep(0.005)

    def flush(self, timeout: float = 1.0) -> None:
        """Waits (bounded) until the queue was handed to the socket; returns at once when the
        daemon cannot be reached."""
        self._wait_delivered(time.monotonic() + timeout)

    def close(self, timeout: float = 1.0) -> None:
        """Flushes (bounded, see ``flush``) and stops the sender thread. What is still held then
        is discarded and counted as dropped."""
        if not self._closed:
            self.flush(timeout)
            with self._lock:
                self._closed = True
                left, self._held, self._bytes = self._held, 0, 0
            if left:
                self._drop(left)
            self._queue.put_nowait(None)
            self._wake.set()
            # After the exit hook (which already waited) logging.shutdown must not wait again.
            self._thread.join(0.05 if _exited[0] else timeout)
        super().close()


# Process-wide state: the notices are said once per process, the exit notice counts every handler.
_live: "weakref.WeakSet[QerrorsHandler]" = weakref.WeakSet()
_state_lock = threading.Lock()
_notices = {"unreachable": False, "connected": False}
_dropped_total = [0]  # events dropped by every handler of this process
_exited = [False]  # the exit hook ran: flush and close no longer wait


def _count_dropped(n: int) -> None:
    with _state_lock:
        _dropped_total[0] += n


def _visible_handler(log: logging.Logger) -> bool:
    """Whether a WARNING on ``log`` reaches a handler other than ours (which would not show it)."""
    current = log
    while current is not None:
        for h in current.handlers:
            if not isinstance(h, QerrorsHandler) and logging.WARNING >= h.level:
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False


def _say(message: str) -> None:
    """One notice: a warning on the ``qerrors_client`` logger when a handler other than ours would
    show it, else a line on stderr. Silent only when that logger was silenced on purpose."""
    try:
        log = logging.getLogger(NOTICE_LOGGER)
        if log.disabled or log.level > logging.WARNING:
            return
        if log.isEnabledFor(logging.WARNING) and _visible_handler(log):
            log.warning(message)
        else:
            sys.stderr.write(f"qerrors: {message}\n")
            sys.stderr.flush()
    except Exception:
        pass  # nowhere left to say it


def _once(name: str) -> bool:
    with _state_lock:
        if _notices[name]:
            return False
        _notices[name] = True
        return True


def _describe(target: Resolved) -> str:
    if target.source == "candidate":
        return f"{target.path} (the first socket found among {', '.join(target.tried)})"
    if target.source == "default":
        return f"{target.path} (no socket at {', '.join(target.tried)})"
    return f"{target.path} (from {target.source})"


def _note_unreachable(h: QerrorsHandler, err: OSError) -> None:
    if not _once("unreachable"):
        return
    why = errno.errorcode.get(err.errno, type(err).__name__) if err.errno else type(err).__name__
    stats = h.stats()
    _say(f"cannot reach the qerrors daemon: {why} at {_describe(h._target)}. Holding "
         f"{stats['queued']} event(s) and retrying in the background; {stats['dropped']} dropped "
         f"so far (at most {h.max_events} events / {h.max_bytes} bytes are held, the rest is "
         f"dropped and counted in handler.stats()). Start qerrorsd, or set {SOCKET_ENV} to its "
         f"socket. (Said once per process.)")


def _note_connected(h: QerrorsHandler) -> None:
    if _notices["unreachable"] and _once("connected"):
        _say(f"connected to the qerrors daemon at {h.socket_path}; delivering "
             f"{h.stats()['queued']} held event(s)")


def _at_exit() -> None:
    """Bounded flush of every open handler (not at all for one that is not connected), then one
    line on stderr if events are still held or were dropped. Runs before ``logging.shutdown``
    (registered later, so called earlier)."""
    try:
        handlers = [h for h in list(_live) if not h._closed]
        deadline = time.monotonic() + EXIT_FLUSH_S
        for h in handlers:
            h._wait_delivered(deadline)
        _exited[0] = True
        held, where = 0, []
        for h in handlers:
            st = h.stats()
            if st["queued"]:
                held += st["queued"]
                state = "connected" if st["connected"] else "not connected"
                where.append(f"{st['queued']} for {st['socket']}, {state}")
        dropped = _dropped_total[0]
        if held or dropped:
            held_text = (f"{held} event(s) still held ({'; '.join(where)})" if held
                         else "0 event(s) held")
            sys.stderr.write(f"qerrors: exiting with {held_text} and {dropped} dropped; none of "
                             f"them reached the daemon\n")
            sys.stderr.flush()
    except Exception:
        pass


atexit.register(_at_exit)


def _after_fork_in_child() -> None:
    global _state_lock
    # A lock another thread held at fork() stays locked in the child: make new ones.
    _state_lock = threading.Lock()
    _notices.update(unreachable=False, connected=False)
    _dropped_total[0] = 0
    for h in list(_live):
        if not h._closed:
            h._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_default: QerrorsHandler | None = None


def configure(**kwargs) -> QerrorsHandler:
    """Sets the handler ``report()`` uses (keyword arguments of ``QerrorsHandler``), instead of
    the one installed on a logger. Returns it."""
    global _default
    old, _default = _default, QerrorsHandler(**kwargs)
    if old is not None:
        old.close()
    return _default


def _installed_handler() -> QerrorsHandler | None:
    """A QerrorsHandler on the root logger, else on any logger."""
    loggers = [logging.getLogger()] + [
        lg for lg in list(logging.Logger.manager.loggerDict.values())
        if isinstance(lg, logging.Logger)]
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, QerrorsHandler) and not h._closed:
                return h
    return None


def _report_handler(kwargs: dict) -> QerrorsHandler:
    global _default
    if _default is not None and not _default._closed:
        return _default
    if not kwargs:
        installed = _installed_handler()
        if installed is not None:
            return installed
    _default = QerrorsHandler(**kwargs)
    return _default


def report(exc: BaseException, context: dict | None = None, **kwargs) -> None:
    """``report(err, {"order": 42})``: the original qerrors call shape, without a logger.

    Sent through the handler set by ``configure()``, else a QerrorsHandler installed on a logger
    (with its service), else one made from ``kwargs`` (``socket_path``, ``service``, ...) on the
    first call. The event's context is exactly ``context``."""
    try:
        handler = _report_handler(kwargs)
        if isinstance(exc, BaseException):
            record = logging.LogRecord("qerrors", logging.ERROR, "", 0, str(exc), None,
                                       (type(exc), exc, exc.__traceback__))
        else:  # the original library took anything
            record = logging.LogRecord("qerrors", logging.ERROR, "", 0, str(exc), None, None)
        record._qerrors_context = dict(context) if context else {}
        if record.levelno >= handler.level:
            handler.handle(record)
    except Exception:
        pass
