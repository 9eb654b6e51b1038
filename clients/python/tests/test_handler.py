"""Unit tests: ``python3 -m unittest discover -s clients/python/tests`` (also run by ``cargo test``,
tests/it/formats.rs). The "daemon" is a plain Unix-socket server thread that records lines."""

import json
import logging
import os
import socket
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from qerrors_client import QerrorsHandler, record_to_event, report  # noqa: E402
import qerrors_client  # noqa: E402


class Server:
    """Collects NDJSON lines; ``stop()`` drops every connection (a daemon restart)."""

    def __init__(self, path):
        self.path = path
        self.lines = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(8)
        self.conns = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._read, args=(c,), daemon=True).start()

    def _read(self, c):
        buf = b""
        while True:
            try:
                d = c.recv(65536)
            except OSError:
                return
            if not d:
                return
            buf += d
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.append(json.loads(line))

    def stop(self):
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        os.unlink(self.path)


def wait_for(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        time.sleep(0.01)


def logger_with(handler, name):
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log


class HandlerTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "q.sock")

    def tearDown(self):
        self.dir.cleanup()

    def test_record_carries_exception_and_stack(self):
        srv = Server(self.path)
        h = QerrorsHandler(socket_path=self.path, service="billing")
        log = logger_with(h, "t.exc")
        try:
            {}["missing"]
        except KeyError:
            log.exception("lookup failed for %s", "order 7", extra={"order": 7})
        log.warning("plain warning")
        wait_for(lambda: len(srv.lines) == 2)
        ev = srv.lines[0]
        self.assertEqual(ev["message"], "lookup failed for order 7")
        self.assertEqual(ev["level"], "error")
        self.assertEqual(ev["name"], "KeyError")
        self.assertTrue(ev["stack"].startswith("Traceback (most recent call last):"))
        self.assertIn("KeyError: 'missing'", ev["stack"])
        self.assertEqual(ev["service"], "billing")
        self.assertEqual(ev["context"]["order"], 7)
        self.assertEqual(ev["context"]["logger"], "t.exc")
        self.assertEqual(srv.lines[1]["level"], "warn")
        self.assertNotIn("name", srv.lines[1])
        h.close()
        srv.stop()

    def test_levels(self):
        rec = lambda lvl: logging.LogRecord("n", lvl, "", 0, "m", None, None)  # noqa: E731
        got = [record_to_event(rec(lv))["level"] for lv in (5, 10, 20, 30, 40, 50)]
        self.assertEqual(got, ["trace", "debug", "info", "warn", "error", "fatal"])

    def test_daemon_down_never_blocks_and_counts_drops(self):
        h = QerrorsHandler(socket_path=self.path, max_events=10)
        log = logger_with(h, "t.down")
        start = time.monotonic()
        for i in range(500):
            log.error("e%d", i)
        self.assertLess(time.monotonic() - start, 10.0)  # generous: it must merely not hang
        # at most 10 queued plus the one the sender thread holds
        self.assertGreaterEqual(h.dropped, 489)
        self.assertEqual(h.sent, 0)
        h.close(timeout=0.1)

    def test_queue_is_bounded_by_bytes_too(self):
        h = QerrorsHandler(socket_path=self.path, max_events=1000, max_bytes=64 * 1024)
        log = logger_with(h, "t.bytes")
        big = "x" * 16 * 1024
        for i in range(40):
            log.error("%s %d", big, i)
        # ~16 KiB lines into 64 KiB (plus the one line the sender thread may hold)
        self.assertLessEqual(40 - h.dropped, 5)
        self.assertLessEqual(h.stats()["queued_bytes"], 64 * 1024)
        h.close(timeout=0.1)

    @unittest.skipUnless(hasattr(os, "fork"), "needs fork")
    def test_a_forked_child_sends_through_its_own_thread(self):
        srv = Server(self.path)
        h = QerrorsHandler(socket_path=self.path)
        log = logger_with(h, "t.fork")
        log.error("from the parent")
        wait_for(lambda: any(e["message"] == "from the parent" for e in srv.lines))
        pid = os.fork()
        if pid == 0:  # the child: its sender thread was restarted
            code = 1
            try:
                before = h.sent
                log.error("from the child")
                end = time.monotonic() + 10.0
                while h.sent == before and time.monotonic() < end:
                    time.sleep(0.01)
                code = 0 if h.sent == before + 1 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        wait_for(lambda: any(e["message"] == "from the child" for e in srv.lines))
        h.close()
        srv.stop()

    def test_delivers_after_daemon_starts_and_after_restart(self):
        h = QerrorsHandler(socket_path=self.path)
        log = logger_with(h, "t.restart")
        log.error("early")
        time.sleep(0.2)
        srv = Server(self.path)
        wait_for(lambda: any(e["message"] == "early" for e in srv.lines))
        srv.stop()
        srv = Server(self.path)

        def later_arrived():
            log.error("later")
            time.sleep(0.02)
            return any(e["message"] == "later" for e in srv.lines)

        wait_for(later_arrived)
        self.assertGreaterEqual(h.connects, 2)
        h.close()
        srv.stop()

    def test_unserializable_extra_and_bad_format_do_not_raise(self):
        srv = Server(self.path)
        h = QerrorsHandler(socket_path=self.path)
        log = logger_with(h, "t.odd")
        log.error("obj", extra={"thing": object()})
        log.error("bad %d format", "x")
        wait_for(lambda: len(srv.lines) == 2)
        self.assertTrue(srv.lines[0]["context"]["thing"].startswith("<object object"))
        self.assertEqual(srv.lines[1]["message"], "bad %d format")
        h.close()
        srv.stop()

    def test_report_is_the_original_call_shape(self):
        srv = Server(self.path)
        qerrors_client._default = None
        try:
            raise ValueError("bad card")
        except ValueError as e:
            report(e, {"invoice": 42}, socket_path=self.path)
        wait_for(lambda: len(srv.lines) == 1)
        ev = srv.lines[0]
        self.assertEqual((ev["name"], ev["message"]), ("ValueError", "bad card"))
        self.assertEqual(ev["context"]["invoice"], 42)
        qerrors_client._default.close()
        qerrors_client._default = None
        srv.stop()


if __name__ == "__main__":
    unittest.main()
