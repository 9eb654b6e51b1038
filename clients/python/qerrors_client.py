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
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
import time
import traceback
import weakref

__all__ = ["QerrorsHandler", "default_socket", "record_to_event", "report"]

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

# Attributes every LogRecord has; anything else came from ``extra=`` and goes to ``context``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def default_socket() -> str:
    """Where the daemon listens, like ``qerrorsctl`` finds it."""
    if os.environ.get("QERRORS_SOCKET"):
        return os.environ["QERRORS_SOCKET"]
    if hasattr(os, "getuid") and os.getuid() == 0:
        return "/run/qerrors.sock"
    if os.environ.get("XDG_RUNTIME_DIR"):
        return os.path.join(os.environ["XDG_RUNTIME_DIR"], "qerrors.sock")
    return "/run/qerrors.sock"


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


def record_to_event(record: logging.LogRecord, service: str | None = None) -> dict:
    """A protocol event (docs/PROTOCOL.md) for one log record."""
    try:
        message = record.getMessage()
    except Exception:  # a bad %-format in the app's call
        message = str(record.msg)
    event = {"message": message, "level": _level(record.levelno), "ts": record.created * 1000.0}
    if record.exc_info and record.exc_info[0] is not None:
        etype, evalue, _tb = record.exc_info
        event["name"] = etype.__name__
        event["stack"] = "".join(traceback.format_exception(*record.exc_info))
        code = getattr(evalue, "errno", None) or getattr(evalue, "code", None)
        if isinstance(code, (str, int)) and not isinstance(code, bool):
            event["code"] = code
    elif record.stack_info:
        event["stack"] = record.stack_info
    if service:
        event["service"] = service
    context = {"logger": record.name, "module": record.module, "func": record.funcName,
               "line": record.lineno}
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            context[key] = value
    event["context"] = context
    return event


class QerrorsHandler(logging.Handler):
    """Sends each record to the qerrors daemon. Never blocks the caller, never raises."""

    def __init__(self, level=logging.NOTSET, *, socket_path: str | None = None,
                 service: str | None = None, max_events: int = DEFAULT_MAX_EVENTS,
                 max_bytes: int = DEFAULT_MAX_BYTES):
        super().__init__(level)
        self.socket_path = socket_path or default_socket()
        self.service = service
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.dropped = 0
        self.sent = 0
        self.connects = 0
        self._closed = False
        self._start()
        _live.add(self)

    def _start(self) -> None:
        """A new queue and sender thread (at construction, and in a forked child, where the
        parent's thread does not exist and its socket and queue must not be shared)."""
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=self.max_events)
        self._bytes = 0  # encoded bytes queued
        self._bytes_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread = threading.Thread(target=self._run, name="qerrors-sender", daemon=True)
        self._thread.start()

    def _after_fork_in_child(self) -> None:
        self._start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = record_to_event(record, self.service)
            line = (json.dumps(event, default=repr, ensure_ascii=False) + "\n").encode()
            if len(line) > MAX_LINE_BYTES or self._closed:
                self.dropped += 1
                return
            with self._bytes_lock:
                if self._bytes + len(line) > self.max_bytes:
                    self.dropped += 1
                    return
                self._bytes += len(line)
            try:
                self._queue.put_nowait(line)
            except queue.Full:
                with self._bytes_lock:
                    self._bytes -= len(line)
                raise
        except queue.Full:
            self.dropped += 1
        except Exception:
            # Never let error reporting break the app (not even via handleError's print).
            self.dropped += 1

    def stats(self) -> dict:
        return {"sent": self.sent, "dropped": self.dropped, "queued": self._queue.qsize(),
                "queued_bytes": self._bytes, "connects": self.connects}

    # The sender thread.
    def _run(self) -> None:
        backoff = RECONNECT_MIN_S
        pending: bytes | None = None
        while True:
            if pending is None:
                pending = self._queue.get()
                if pending is None:  # close()
                    break
                with self._bytes_lock:
                    self._bytes -= len(pending)
            if self._sock is None:
                s = None
                try:
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.settimeout(SEND_TIMEOUT_S)
                    s.connect(self.socket_path)
                    self._sock = s
                    self.connects += 1
                    backoff = RECONNECT_MIN_S
                except OSError:
                    if s is not None:
                        s.close()
                    time.sleep(backoff)
                    backoff = min(backoff * 2, RECONNECT_MAX_S)
                    continue
            try:
                self._sock.sendall(pending)
                self.sent += 1
                pending = None
            except OSError:
                # The daemon went away (restart): reconnect and send this line again.
                self._sock.close()
                self._sock = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def flush(self, timeout: float = 1.0) -> None:
        """Waits (bounded) until the queue was handed to the socket."""
        deadline = time.monotonic() + timeout
        while self._queue.qsize() > 0 and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self, timeout: float = 1.0) -> None:
        if not self._closed:
            self.flush(timeout)
            self._closed = True
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass  # the daemon thread dies with the process
            self._thread.join(timeout)
        super().close()


# Live handlers, restarted in a forked child (weak: a handler that is gone is not kept alive).
_live: "weakref.WeakSet[QerrorsHandler]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for h in list(_live):
        if not h._closed:
            h._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

_default: QerrorsHandler | None = None


def report(exc: BaseException, context: dict | None = None, **kwargs) -> None:
    """``report(err, {"order": 42})``: the original qerrors call shape, without a logger."""
    global _default
    try:
        if _default is None:
            _default = QerrorsHandler(**kwargs)
        record = logging.LogRecord("qerrors", logging.ERROR, "", 0, str(exc), None,
                                   (type(exc), exc, exc.__traceback__))
        if context:
            record.__dict__.update({k: v for k, v in context.items() if k not in _STANDARD})
        _default.emit(record)
    except Exception:
        pass
