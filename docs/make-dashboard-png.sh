#!/usr/bin/env bash
# Regenerates docs/dashboard.png: runs qerrorsd with its control server, feeds it a realistic
# mix of error events (several services and levels, an incident burst, a few malformed lines),
# opens the dashboard in headless Chromium partway through so its charts have live history, and
# takes a full-page screenshot at 1280 px wide.
#
#   docs/make-dashboard-png.sh                        # about 4 minutes
#   DURATION=90 OPEN_AFTER=30 docs/make-dashboard-png.sh
#
# Needs cargo, python3 (standard library only) and Chromium (`apt-get install chromium`).
# Everything runs on loopback; the daemon and browser are stopped on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/docs/dashboard.png}
duration=${DURATION:-240}    # seconds of generated traffic
open_after=${OPEN_AFTER:-60} # when the page is opened (earlier traffic is shown from history)
chromium=${CHROMIUM:-chromium}
target=${CARGO_TARGET_DIR:-$root/target}

cargo build --release --bins --manifest-path "$root/Cargo.toml"

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$target/release/qerrorsd" --socket "$work/q.sock" --log "$work/errors.log" \
    --control "127.0.0.1:$port" 2>"$work/daemon.err" &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/q.sock" ] && break; sleep 0.1; done
[ -S "$work/q.sock" ] || { cat "$work/daemon.err"; exit 1; }

cat >"$work/gen.py" <<'EOF'
# A day-in-the-life mix: steady traffic that swells and ebbs, and a database incident.
import json, math, random, socket, sys, time

sock_path, duration = sys.argv[1], float(sys.argv[2])
random.seed(7)
KINDS = [  # weight, service (or services to pick from), level, name, message
    (30, "checkout", "error", "TypeError", "Cannot read properties of undefined (reading 'id')"),
    (12, "billing", "warn", "CardDeclined", "card declined for order {n}: insufficient funds"),
    (10, ["search", "catalog"], "error", "TimeoutError", "upstream search-index timed out after 3000ms"),
    (8, "auth-api", "warn", "TokenExpiredError", "jwt expired at {n}"),
    (6, ["worker", "billing", "checkout", "auth-api"], "error", "ECONNREFUSED",
     "connect ECONNREFUSED 10.0.3.7:5432"),
    (2, "worker", "fatal", "PoolExhausted", "database pool exhausted: 50 of 50 connections busy"),
    (14, "catalog", "info", "CacheMiss", "cache miss for key product:{n}"),
    (10, "catalog", "debug", "SlowQuery", "query took {n}ms: SELECT * FROM products WHERE sku = ?"),
    (4, "gateway", "trace", "Retry", "retrying GET /api/cart (attempt {a})"),
    (3, "checkout", "error", "RangeError", "Invalid array length"),
]
weights = [k[0] for k in KINDS]
s = socket.socket(socket.AF_UNIX)
s.connect(sock_path)
t0 = time.time()
incident = (duration * 0.55, duration * 0.62)
while (el := time.time() - t0) < duration:
    in_incident = incident[0] < el < incident[1]
    rate = 14 if in_incident else 3 + 2.5 * (1 + math.sin(el / 15))
    k = random.choices(KINDS, weights)[0]
    if in_incident and random.random() < 0.7:
        k = KINDS[4] if random.random() < 0.8 else KINDS[5]
    service = random.choice(k[1]) if isinstance(k[1], list) else k[1]
    ev = {"service": service, "level": k[2], "name": k[3],
          "message": k[4].format(n=random.randint(1000, 99999), a=random.randint(1, 5)),
          "context": {"request_id": "%08x" % random.getrandbits(32)}}
    s.sendall((json.dumps(ev) + "\n").encode())
    if random.random() < 0.004:
        s.sendall(b'{"message": truncated\n')
    time.sleep(random.expovariate(rate))
s.close()
EOF

cat >"$work/shot.py" <<'EOF'
# Opens URL in headless Chromium, waits in real time, then saves a full-page PNG, over the
# DevTools protocol (a minimal WebSocket client: standard library only).
import base64, json, os, socket, struct, subprocess, sys, time, urllib.parse, urllib.request

chromium, url, out, wait_s, width, profile = sys.argv[1:7]
proc = subprocess.Popen(
    [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
     "--disable-background-networking", "--disable-component-update", "--disable-sync",
     "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={width},800",
     "--remote-debugging-port=0", "about:blank"],
    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    port_file = os.path.join(profile, "DevToolsActivePort")
    for _ in range(300):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.1)
    port = int(open(port_file).read().split()[0])
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
    ws_url = urllib.parse.urlparse(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"])

    sock = socket.create_connection((ws_url.hostname, ws_url.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {ws_url.path} HTTP/1.1\r\nHost: {ws_url.netloc}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert b" 101 " in head.split(b"\r\n")[0], head

    def exact(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError("devtools connection closed")
            buf += chunk
        return buf

    def send(text):
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        hdr = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else
                               bytes([0x80 | 126]) + struct.pack(">H", n) if n < 65536 else
                               bytes([0x80 | 127]) + struct.pack(">Q", n))
        sock.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def recv():
        msg = b""
        while True:
            b0, b1 = exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", exact(8))[0]
            payload = exact(n)
            if b0 & 0x0F in (0x9, 0xA):  # ping/pong
                continue
            msg += payload
            if b0 & 0x80:
                return json.loads(msg)

    ids = iter(range(1, 1 << 30))
    def call(method, **params):
        i = next(ids)
        send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            m = recv()
            if m.get("id") == i:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m["result"]

    call("Page.navigate", url=url)
    time.sleep(float(wait_s))
    size = call("Page.getLayoutMetrics")["cssContentSize"]
    height = int(size["height"]) + 1
    call("Emulation.setDeviceMetricsOverride", width=int(width), height=height,
         deviceScaleFactor=1, mobile=False)
    time.sleep(1.5)  # a poll and a redraw at the new size
    png = call("Page.captureScreenshot", format="png")["data"]
    with open(out, "wb") as f:
        f.write(base64.b64decode(png))
    print(f"{out}: {int(width)}x{height}")
finally:
    proc.terminate()
    proc.wait(timeout=30)
EOF

python3 "$work/gen.py" "$work/q.sock" "$duration" &
pids+=($!)
sleep "$open_after"
# Screenshot while traffic still flows (the "now" end of the charts is live).
wait_s=$((duration - open_after - 15))
[ "$wait_s" -ge 5 ] || wait_s=5
# The page takes the control token from the fragment (no server sees it).
python3 "$work/shot.py" "$chromium" "http://127.0.0.1:$port/#token=$(cat "$work/q-control.token")" \
    "$out" "$wait_s" 1280 "$work/profile"
