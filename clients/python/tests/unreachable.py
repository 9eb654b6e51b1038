"""Used by test_handler.py: an app whose daemon is down, or comes up late.

    python3 unreachable.py SOCKET|- EVENTS MAX_EVENTS exit|wait|late [logging]

SOCKET ``-``: no socket_path, the handler finds the socket from the environment alone. Installs a
QerrorsHandler (service "unreachable-fixture") on the root logger, with ``logging`` also
``logging.basicConfig()``'s stderr handler; logs EVENTS errors and reports one OSError through
``report()``; prints the handler's stats as JSON on stdout, then
  exit: returns at once (exiting must not wait for a daemon that is down);
  wait: waits for three failed connection attempts first (at most 5 s);
  late: waits until everything was delivered (the test starts a server when it sees the notice
        on stderr), at most 15 s.
"""
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import qerrors_client  # noqa: E402

sock, events, max_events, mode = sys.argv[1:5]
if "logging" in sys.argv[5:]:
    logging.basicConfig()
h = qerrors_client.QerrorsHandler(socket_path=None if sock == "-" else sock,
                                  service="unreachable-fixture", max_events=int(max_events))
logging.getLogger().addHandler(h)
log = logging.getLogger("app")
for i in range(int(events)):
    log.error("held %d", i)
try:
    open(os.path.join(os.path.dirname(__file__), "no such dir", "f"))
except OSError as e:
    qerrors_client.report(e, {"step": "open"})
if mode == "wait":
    end = time.monotonic() + 5.0
    while h.stats()["connect_failures"] < 3 and time.monotonic() < end:
        time.sleep(0.01)
elif mode == "late":
    end = time.monotonic() + 15.0
    while time.monotonic() < end:
        st = h.stats()
        if st["connected"] and st["queued"] == 0:
            break
        time.sleep(0.01)
print(json.dumps(h.stats()))
