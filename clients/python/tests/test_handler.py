"""Unit tests: ``python3 -m unittest discover -s clients/python/tests`` (also run by ``cargo test``,
tests/it/formats.rs). The "daemon" is a plain Unix-socket server thread that records lines."""

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from qerrors_client import (  # noqa: E402
    QerrorsHandler, daemon_default_socket, record_to_event, report, resolve_socket,
    socket_candidates)
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

    def test_stats_count_what_is_held_and_dropped(self):
        h = QerrorsHandler(socket_path=self.path, max_events=3)
        log = logger_with(h, "t.held")
        for i in range(10):
            log.error("e%d", i)
        wait_for(lambda: h.stats()["connect_failures"] >= 2)
        st = h.stats()
        # the line the sender thread holds counts as held too
        self.assertEqual((st["sent"], st["queued"], st["dropped"], st["connected"]),
                         (0, 3, 7, False))
        self.assertEqual(st["socket"], self.path)
        self.assertGreater(st["queued_bytes"], 0)
        # flush gives up at once when the daemon cannot be reached
        start = time.monotonic()
        h.flush(timeout=5.0)
        self.assertLess(time.monotonic() - start, 1.0)
        # close discards what is held and counts it as dropped
        h.close(timeout=5.0)
        st = h.stats()
        self.assertEqual((st["queued"], st["queued_bytes"], st["dropped"]), (0, 0, 10))

    def test_record_context_has_only_what_is_known(self):
        ev = record_to_event(logging.LogRecord("n", 40, "", 0, "m", None, None))
        self.assertEqual(ev["context"], {"logger": "n"})
        rec = logging.LogRecord("n", 40, "/srv/app/billing.py", 42, "m", None, None, func="charge")
        rec.invoice = 7
        self.assertEqual(record_to_event(rec)["context"],
                         {"logger": "n", "module": "billing", "func": "charge", "line": 42,
                          "invoice": 7})

    def test_errno_is_sent_by_name(self):
        try:
            open(os.path.join(self.dir.name, "missing", "file"))
        except OSError as e:
            err = e
        ev = record_to_event(logging.LogRecord("n", 40, "", 0, "m", None,
                                               (type(err), err, err.__traceback__)))
        self.assertEqual((ev["name"], ev["code"]), ("FileNotFoundError", "ENOENT"))
        odd = OSError(9999, "not an errno")  # no name for it: the number stays
        ev = record_to_event(logging.LogRecord("n", 40, "", 0, "m", None, (OSError, odd, None)))
        self.assertEqual(ev["code"], 9999)

    def test_report_uses_the_installed_handler(self):
        srv = Server(self.path)
        qerrors_client._default = None
        root = logging.getLogger()
        saved = root.handlers[:]
        h = QerrorsHandler(socket_path=self.path, service="billing")
        root.handlers[:] = [h]
        try:
            try:
                open(os.path.join(self.dir.name, "missing", "file"))
            except OSError as e:
                report(e, {"invoice": 42})
                report(e)
            report("not an exception")
            wait_for(lambda: len(srv.lines) == 3)
        finally:
            root.handlers[:] = saved
        ev = srv.lines[0]
        self.assertEqual((ev["name"], ev["code"], ev["service"]),
                         ("FileNotFoundError", "ENOENT", "billing"))
        self.assertEqual(ev["context"], {"invoice": 42})
        self.assertNotIn("context", srv.lines[1])
        self.assertEqual((srv.lines[2]["message"], srv.lines[2]["service"]),
                         ("not an exception", "billing"))
        self.assertIsNone(qerrors_client._default)  # no second handler was made
        h.close()
        srv.stop()

    def test_report_uses_the_configured_handler_first(self):
        srv = Server(self.path)
        other = os.path.join(self.dir.name, "other.sock")
        root = logging.getLogger()
        saved = root.handlers[:]
        installed = QerrorsHandler(socket_path=other, service="installed")
        root.handlers[:] = [installed]
        try:
            configured = qerrors_client.configure(socket_path=self.path, service="configured")
            report(ValueError("bad card"))
            wait_for(lambda: len(srv.lines) == 1)
        finally:
            root.handlers[:] = saved
        self.assertEqual(srv.lines[0]["service"], "configured")
        configured.close()
        installed.close(timeout=0)
        qerrors_client._default = None
        srv.stop()


class SocketRuleTest(unittest.TestCase):
    """The socket rule (README "Sending errors from your app"; the same in qerrorsd, qerrorsctl
    and the Node shim). /tmp and /run are stood in for by temp dirs: a real daemon on this
    machine may own /tmp/qerrors-<euid>."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        base = self.dir.name
        self.xdg, self.tmp, self.run = (os.path.join(base, d) for d in ("xdg", "tmp", "run"))
        for d in (self.xdg, self.tmp, self.run):
            os.mkdir(d)
        # The user played: this euid, or 1000 when running as root (the rule differs for root).
        self.uid = 1000 if os.geteuid() == 0 else os.geteuid()
        self.tmp_sock = os.path.join(self.tmp, f"qerrors-{self.uid}", "qerrors.sock")
        self.servers = []

    def tearDown(self):
        for srv in self.servers:
            srv.stop()
        self.dir.cleanup()

    def where(self, env, uid=None):
        return dict(env=env, uid=self.uid if uid is None else uid, tmp_dir=self.tmp,
                    run_dir=self.run)

    def serve(self, path):
        d = os.path.dirname(path)
        if not os.path.isdir(d):
            os.makedirs(d, mode=0o700)
            if d == os.path.dirname(self.tmp_sock) and os.geteuid() == 0:
                os.chown(d, self.uid, self.uid)  # the user's own, as its daemon makes it
        srv = Server(path)
        self.servers.append(srv)
        return srv

    def test_candidates_in_order_xdg_only_when_set(self):
        rest = [self.tmp_sock, os.path.join(self.run, "qerrors.sock")]
        self.assertEqual(socket_candidates(**self.where({})), rest)
        self.assertEqual(socket_candidates(**self.where({"XDG_RUNTIME_DIR": ""})), rest)
        self.assertEqual(socket_candidates(**self.where({"XDG_RUNTIME_DIR": self.xdg})),
                         [os.path.join(self.xdg, "qerrors.sock")] + rest)
        # the real /tmp and /run by default
        self.assertEqual(socket_candidates(env={}, uid=1000),
                         ["/tmp/qerrors-1000/qerrors.sock", "/run/qerrors.sock"])

    def test_no_socket_anywhere_gives_the_daemon_default(self):
        got = resolve_socket(**self.where({"XDG_RUNTIME_DIR": self.xdg}))
        self.assertEqual((got.path, got.source),
                         (os.path.join(self.xdg, "qerrors.sock"), "default"))
        self.assertEqual(got.tried, (os.path.join(self.xdg, "qerrors.sock"), self.tmp_sock,
                                     os.path.join(self.run, "qerrors.sock")))
        self.assertEqual(resolve_socket(**self.where({})).path, self.tmp_sock)
        # XDG_RUNTIME_DIR relative, or not a directory: the daemon would not use it
        self.assertEqual(resolve_socket(**self.where({"XDG_RUNTIME_DIR": "rel/dir"})).path,
                         self.tmp_sock)
        gone = os.path.join(self.xdg, "gone")
        self.assertEqual(resolve_socket(**self.where({"XDG_RUNTIME_DIR": gone})).path,
                         self.tmp_sock)
        # root: /run/qerrors.sock whatever XDG_RUNTIME_DIR says
        self.assertEqual(resolve_socket(**self.where({"XDG_RUNTIME_DIR": self.xdg}, uid=0)).path,
                         os.path.join(self.run, "qerrors.sock"))
        self.assertEqual(daemon_default_socket(env={}, uid=0), "/run/qerrors.sock")
        self.assertEqual(daemon_default_socket(env={}, uid=1000), "/tmp/qerrors-1000/qerrors.sock")

    def test_the_first_candidate_that_is_a_socket_wins(self):
        env = {"XDG_RUNTIME_DIR": self.xdg}
        self.serve(os.path.join(self.run, "qerrors.sock"))  # a root daemon
        got = resolve_socket(**self.where(env))
        self.assertEqual((got.path, got.source), (os.path.join(self.run, "qerrors.sock"),
                                                  "candidate"))
        self.serve(self.tmp_sock)  # a daemon without XDG_RUNTIME_DIR comes before /run
        self.assertEqual(resolve_socket(**self.where(env)).path, self.tmp_sock)
        with open(os.path.join(self.xdg, "qerrors.sock"), "w") as f:
            f.write("not a socket")
        self.assertEqual(resolve_socket(**self.where(env)).path, self.tmp_sock)
        os.unlink(os.path.join(self.xdg, "qerrors.sock"))
        self.serve(os.path.join(self.xdg, "qerrors.sock"))
        self.assertEqual(resolve_socket(**self.where(env)).path,
                         os.path.join(self.xdg, "qerrors.sock"))
        self.assertEqual(resolve_socket(**self.where({})).path, self.tmp_sock)

    def test_a_tmp_directory_that_is_not_the_users_own_is_never_used(self):
        d = os.path.dirname(self.tmp_sock)
        os.mkdir(d, mode=0o700)  # made by this process: not user ``self.uid``'s when root
        if os.geteuid() != 0:
            os.chmod(d, 0o777)  # the user's, but writable by anyone
        squat = Server(self.tmp_sock)
        self.servers.append(squat)
        if os.geteuid() != 0:
            os.chmod(d, 0o777)
        self.serve(os.path.join(self.run, "qerrors.sock"))
        self.assertEqual(resolve_socket(**self.where({})).path,
                         os.path.join(self.run, "qerrors.sock"))

    def test_a_dead_daemons_socket_file_does_not_hide_a_live_daemon_after_it(self):
        import socket as socketmod
        dead = os.path.join(self.xdg, "qerrors.sock")
        s = socketmod.socket(socketmod.AF_UNIX)
        s.bind(dead)  # bound, never listening, file left behind: what kill -9 leaves
        s.close()
        live = self.serve(os.path.join(self.run, "qerrors.sock"))
        h = QerrorsHandler(resolve=self.where({"XDG_RUNTIME_DIR": self.xdg}))
        logger_with(h, "t.dead").error("past the dead one")
        wait_for(lambda: len(live.lines) == 1)
        self.assertEqual(live.lines[0]["message"], "past the dead one")
        self.assertEqual(h.stats()["socket"], os.path.join(self.run, "qerrors.sock"))
        h.close()

    def test_environment_wins_ingest_before_legacy_socket_path_over_both(self):
        self.serve(os.path.join(self.xdg, "qerrors.sock"))
        both = {"XDG_RUNTIME_DIR": self.xdg, "QERRORS_INGEST_SOCKET": "/new.sock",
                "QERRORS_SOCKET": "/old.sock"}
        self.assertEqual(tuple(resolve_socket(**self.where(both))),
                         ("/new.sock", "QERRORS_INGEST_SOCKET", ("/new.sock",)))
        legacy = dict(both, QERRORS_INGEST_SOCKET="")
        self.assertEqual(tuple(resolve_socket(**self.where(legacy)))[:2],
                         ("/old.sock", "QERRORS_SOCKET"))
        neither = dict(legacy, QERRORS_SOCKET="")
        self.assertEqual(resolve_socket(**self.where(neither)).path,
                         os.path.join(self.xdg, "qerrors.sock"))
        h = QerrorsHandler(socket_path="/option.sock", resolve=self.where(both))
        self.assertEqual(h.stats()["socket"], "/option.sock")
        h.close(timeout=0)

    def test_without_socket_path_the_handler_finds_a_daemon_started_later(self):
        h = QerrorsHandler(resolve=self.where({"XDG_RUNTIME_DIR": self.xdg}))
        log = logger_with(h, "t.later")
        for i in range(3):
            log.error("late %d", i)
        wait_for(lambda: h.stats()["connect_failures"] >= 2)
        st = h.stats()
        self.assertEqual(st["socket"], os.path.join(self.xdg, "qerrors.sock"))
        self.assertEqual((st["sent"], st["queued"], st["dropped"], st["connected"]),
                         (0, 3, 0, False))
        srv = self.serve(self.tmp_sock)  # the daemon starts without XDG_RUNTIME_DIR
        wait_for(lambda: len(srv.lines) == 3)
        self.assertEqual([e["message"] for e in srv.lines], ["late 0", "late 1", "late 2"])
        st = h.stats()
        self.assertEqual((st["socket"], st["sent"], st["queued"], st["connected"]),
                         (self.tmp_sock, 3, 0, True))
        h.close()


FIXTURE = os.path.join(os.path.dirname(__file__), "unreachable.py")


def child_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("QERRORS_") and k != "XDG_RUNTIME_DIR"}
    env.update(extra)
    return env


def notices(text, needle):
    return [line for line in text.splitlines() if needle in line]


class ProcessTest(unittest.TestCase):
    """Whole processes: the notices are once per process, the exit notice comes at exit, and a
    script whose daemon is down exits at once."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.sock = os.path.join(self.dir.name, "q.sock")

    def tearDown(self):
        self.dir.cleanup()

    def run_fixture(self, args, env, timeout=30):
        start = time.monotonic()
        p = subprocess.run([sys.executable, FIXTURE] + args, env=env, capture_output=True,
                           text=True, timeout=timeout)
        return p, time.monotonic() - start

    def test_daemon_down_the_script_exits_at_once_and_says_what_it_held(self):
        p, took = self.run_fixture(["-", "10", "5", "exit"],
                                   child_env(QERRORS_INGEST_SOCKET=self.sock))
        self.assertEqual(p.returncode, 0, p.stderr)
        # behaviour, not a benchmark: interpreter start-up included, the old handler took ~3 s
        self.assertLess(took, 1.5, p.stderr)
        st = json.loads(p.stdout)
        self.assertEqual((st["sent"], st["queued"], st["dropped"], st["socket"]),
                         (0, 5, 6, self.sock))
        warned = notices(p.stderr, "cannot reach")
        self.assertEqual(len(warned), 1, p.stderr)
        self.assertTrue(warned[0].startswith("qerrors: cannot reach the qerrors daemon: ENOENT at "
                                             + self.sock + " (from QERRORS_INGEST_SOCKET)"),
                        warned[0])
        exiting = notices(p.stderr, "exiting")
        self.assertEqual(len(exiting), 1, p.stderr)
        self.assertIn("exiting with 5 event(s) still held (5 for " + self.sock
                      + ", not connected) and 6 dropped", exiting[0])
        self.assertEqual(len(notices(p.stderr, "qerrors: ")), 2, p.stderr)

    def test_one_notice_for_many_failed_attempts(self):
        p, _ = self.run_fixture(["-", "10", "100", "wait"],
                                child_env(QERRORS_SOCKET=self.sock))
        self.assertEqual(p.returncode, 0, p.stderr)
        st = json.loads(p.stdout)
        self.assertGreaterEqual(st["connect_failures"], 3, st)
        self.assertEqual((st["queued"], st["dropped"]), (11, 0))
        self.assertEqual(len(notices(p.stderr, "cannot reach")), 1, p.stderr)
        self.assertIn("(from QERRORS_SOCKET)", p.stderr)
        self.assertEqual(len(notices(p.stderr, "exiting with 11 event(s) still held")), 1,
                         p.stderr)

    def test_late_daemon_notice_on_the_logger_never_sent_then_delivered(self):
        legacy = os.path.join(self.dir.name, "legacy.sock")
        env = child_env(QERRORS_INGEST_SOCKET=self.sock, QERRORS_SOCKET=legacy)
        p = subprocess.Popen([sys.executable, FIXTURE, "-", "3", "100", "late", "logging"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        err_lines, srv = [], []

        def read_stderr():
            for line in p.stderr:
                err_lines.append(line)
                if "cannot reach" in line and not srv:
                    srv.append(Server(self.sock))

        # Only this thread reads stderr (communicate() would read it too and could take the line).
        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        try:
            p.wait(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
        reader.join(10)
        out = p.stdout.read()
        p.stdout.close()
        stderr = "".join(err_lines)
        self.assertEqual(p.returncode, 0, stderr)
        self.assertTrue(srv, stderr)
        wait_for(lambda: len(srv[0].lines) == 4)
        st = json.loads(out)
        self.assertEqual((st["sent"], st["queued"], st["dropped"], st["socket"]),
                         (4, 0, 0, self.sock))
        # the notices went to logging (basicConfig's stderr handler), once, and not to the daemon
        self.assertEqual(len(notices(stderr, "WARNING:qerrors_client:cannot reach")), 1, stderr)
        self.assertEqual(len(notices(stderr, "cannot reach")), 1, stderr)
        self.assertEqual(len(notices(stderr, "WARNING:qerrors_client:connected to the qerrors "
                                             "daemon at " + self.sock)), 1, stderr)
        self.assertEqual(notices(stderr, "exiting"), [], stderr)
        self.assertEqual([e["message"] for e in srv[0].lines[:3]], ["held 0", "held 1", "held 2"])
        self.assertFalse([e for e in srv[0].lines if "qerrors daemon" in e["message"]],
                         srv[0].lines)
        # report(): the installed handler's service, the errno's name, only the given context
        ev = srv[0].lines[3]
        self.assertEqual((ev["name"], ev["code"], ev["service"], ev["context"]),
                         ("FileNotFoundError", "ENOENT", "unreachable-fixture", {"step": "open"}))
        srv[0].stop()

    def test_nothing_but_the_environment_finds_xdg_runtime_dir(self):
        xdg = os.path.join(self.dir.name, "xdg")
        os.mkdir(xdg)
        srv = Server(os.path.join(xdg, "qerrors.sock"))
        p, _ = self.run_fixture(["-", "2", "100", "late"], child_env(XDG_RUNTIME_DIR=xdg))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["socket"], os.path.join(xdg, "qerrors.sock"))
        wait_for(lambda: len(srv.lines) == 3)
        self.assertEqual(p.stderr, "")
        srv.stop()


if __name__ == "__main__":
    unittest.main()
