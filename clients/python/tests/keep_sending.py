"""Used by tests/it/formats.rs: an "app" logging an error every 20 ms through QerrorsHandler
while the daemon is down, starts, stops and starts again. Exits when STOPFILE exists and prints
the handler's stats as JSON.   python3 keep_sending.py SOCKET STOPFILE
SOCKET ``-``: no socket_path, the handler finds the socket from the environment alone."""
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from qerrors_client import QerrorsHandler  # noqa: E402

sock_path, stop_file = sys.argv[1], sys.argv[2]
h = QerrorsHandler(socket_path=None if sock_path == "-" else sock_path, service="keep-sending")
log = logging.getLogger("keep")
log.addHandler(h)
i = 0
while not os.path.exists(stop_file):
    log.error("tick %d", i)
    i += 1
    time.sleep(0.02)
h.close(timeout=5.0)
print(json.dumps(dict(h.stats(), ticks=i)))
