'use strict';
// Unit tests: `npm test` (`node --test test/client.test.js`) (also run by `cargo test`, tests/it/formats.rs).
// The "daemon" here is a plain Unix-socket server that records lines.
const test = require('node:test');
const assert = require('node:assert');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const {
  Client,
  toEvent,
  qerrors,
  configure,
  resolveSocket,
  socketCandidates,
  daemonDefaultSocket,
} = require('..');

const tmpDirs = [];
function tmpDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qerrors-node-'));
  tmpDirs.push(dir);
  return dir;
}
/** Every server a test started: closed at the end even when a test failed half-way, so a failure
 * never keeps the process alive. */
const servers = [];
test.after(async () => {
  await Promise.all(servers.map((s) => s.close()));
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

function tmpSock() {
  return path.join(tmpDir(), 'q.sock');
}

/** A line-collecting server; `close()` drops every connection (a daemon restart). */
function server(sockPath) {
  const lines = [];
  const conns = new Set();
  const srv = net.createServer((c) => {
    conns.add(c);
    let buf = '';
    c.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) !== -1) {
        lines.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
      }
    });
    c.on('close', () => conns.delete(c));
    c.on('error', () => {});
  });
  return new Promise((resolve) => {
    srv.listen(sockPath, () => {
      const handle = {
        lines,
        close: () =>
          new Promise((r) => {
            for (const c of conns) c.destroy();
            if (srv.listening) srv.close(() => r());
            else r();
          }),
      };
      servers.push(handle);
      resolve(handle);
    });
  });
}

async function waitFor(cond, ms = 20000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('toEvent lifts message, name, stack and code', () => {
  const err = new TypeError('x is undefined');
  err.code = 'E_X';
  const ev = toEvent(err, { order: 42 }, { service: 'svc' });
  assert.strictEqual(ev.message, 'x is undefined');
  assert.strictEqual(ev.name, 'TypeError');
  assert.match(ev.stack, /^TypeError: x is undefined\n\s+at /);
  assert.strictEqual(ev.code, 'E_X');
  assert.strictEqual(ev.level, 'error');
  assert.strictEqual(ev.service, 'svc');
  assert.deepStrictEqual(ev.context, { order: 42 });
  assert.ok(typeof ev.ts === 'number');
});

test('toEvent takes anything without throwing', () => {
  assert.strictEqual(toEvent('plain text').message, 'plain text');
  assert.strictEqual(toEvent(42).message, '42');
  assert.strictEqual(toEvent(undefined).message, 'undefined');
  assert.strictEqual(toEvent(new Error('')).message, 'Error');
  assert.deepStrictEqual(toEvent(new Error('m'), 'ctx').context, { value: 'ctx' });
});

test('cyclic and BigInt context is serialized, not thrown', async () => {
  const sock = tmpSock();
  const srv = await server(sock);
  const c = new Client({ socket: sock });
  const ctx = { n: 10n };
  ctx.self = ctx;
  assert.strictEqual(c.send(toEvent(new Error('cyc'), ctx)), true);
  await waitFor(() => srv.lines.length === 1);
  assert.deepStrictEqual(srv.lines[0].context, { n: '10', self: '[Circular]' });
  await c.close();
  await srv.close();
});

test('daemon down: the buffer is bounded and drops are counted, nothing throws', async () => {
  const c = new Client({ socket: tmpSock(), maxEvents: 100 });
  for (let i = 0; i < 1000; i++) c.send({ message: `e${i}` });
  const st = c.stats();
  assert.strictEqual(st.queued, 100);
  assert.strictEqual(st.dropped, 900);
  // byte bound too
  const b = new Client({ socket: tmpSock(), maxBytes: 1000 });
  for (let i = 0; i < 100; i++) b.send({ message: 'x'.repeat(100) });
  assert.ok(b.stats().queuedBytes <= 1000);
  assert.strictEqual(b.stats().queued + b.stats().dropped, 100);
  // a line longer than the daemon accepts is dropped at once
  assert.strictEqual(b.send({ message: 'y'.repeat(300 * 1024) }), false);
  await c.close(50);
  await b.close(50);
});

test('buffered events are delivered once the daemon comes up, and after it restarts', async () => {
  const sock = tmpSock();
  const c = new Client({ socket: sock });
  for (let i = 0; i < 5; i++) c.send({ message: `early ${i}` });
  await new Promise((r) => setTimeout(r, 200));
  let srv = await server(sock);
  await waitFor(() => srv.lines.length === 5);
  assert.deepStrictEqual(srv.lines.map((l) => l.message), [0, 1, 2, 3, 4].map((i) => `early ${i}`));
  // restart: the old connection dies, a new server takes the path
  await srv.close();
  fs.rmSync(sock, { force: true });
  srv = await server(sock);
  await waitFor(() => {
    c.send({ message: 'after restart' });
    return srv.lines.some((l) => l.message === 'after restart');
  });
  assert.ok(c.stats().connects >= 2);
  await c.close();
  await srv.close();
});

test('destination() forwards logger lines, split or joined, as is', async () => {
  const sock = tmpSock();
  const srv = await server(sock);
  const c = new Client({ socket: sock });
  const dest = c.destination();
  dest.write('{"level":50,"msg":"one"}\n{"level":40,');
  dest.write('"msg":"two"}\n');
  dest.write(Buffer.from('{"level":30,"msg":"three"}\n'));
  await waitFor(() => srv.lines.length === 3);
  assert.deepStrictEqual(srv.lines.map((l) => l.msg), ['one', 'two', 'three']);
  await c.close();
  await srv.close();
});

test('qerrors() is the drop-in call and passes the error to next()', async () => {
  const sock = tmpSock();
  const srv = await server(sock);
  const c = configure({ socket: sock, service: 'shop' });
  let passed = null;
  const err = new RangeError('out of stock');
  qerrors(err, { sku: 'A1' }, {}, {}, (e) => {
    passed = e;
  });
  assert.strictEqual(passed, err);
  qerrors('a string');
  await waitFor(() => srv.lines.length === 2);
  assert.strictEqual(srv.lines[0].name, 'RangeError');
  assert.strictEqual(srv.lines[0].service, 'shop');
  assert.deepStrictEqual(srv.lines[0].context, { sku: 'A1' });
  assert.strictEqual(srv.lines[1].message, 'a string');
  await c.close();
  await srv.close();
});

// The socket rule (README "Sending errors from your app"; the same in qerrorsd, qerrorsctl and
// the Python handler). `/tmp` and `/run` are stood in for by temp dirs: a real daemon on this
// machine may own /tmp/qerrors-<euid>.

/**
 * The user the rule tests play: this process's euid, or 1000 when running as root (the rule
 * differs for root). The `/tmp/qerrors-<uid>` candidate counts only in a directory of that uid's.
 */
const ME = process.geteuid();
const U = ME === 0 ? 1000 : ME;
const QD = `qerrors-${U}`;

/** Makes `<tmp>/qerrors-<U>` as the daemon of user U would: U's own, mode 0700. */
function userTmp(tmp) {
  const dir = path.join(tmp, QD);
  fs.mkdirSync(dir, { mode: 0o700 });
  if (ME === 0) fs.chownSync(dir, U, U);
  return dir;
}

/** Temp stand-ins for $XDG_RUNTIME_DIR, /tmp and /run, and the rule's options for user U. */
function lookIn(uid = U) {
  const base = tmpDir();
  const xdg = path.join(base, 'xdg');
  const tmp = path.join(base, 'tmp');
  const run = path.join(base, 'run');
  for (const d of [xdg, tmp, run]) fs.mkdirSync(d);
  return { xdg, tmp, run, opts: (env) => ({ env, uid, tmpDir: tmp, runDir: run }) };
}

test('socket rule: the candidates in order, $XDG_RUNTIME_DIR only when set and non-empty', () => {
  const { xdg, tmp, run, opts } = lookIn();
  const rest = [path.join(tmp, QD, 'qerrors.sock'), path.join(run, 'qerrors.sock')];
  assert.deepStrictEqual(socketCandidates(opts({})), rest);
  assert.deepStrictEqual(socketCandidates(opts({ XDG_RUNTIME_DIR: '' })), rest);
  assert.deepStrictEqual(socketCandidates(opts({ XDG_RUNTIME_DIR: xdg })), [
    path.join(xdg, 'qerrors.sock'),
    ...rest,
  ]);
  // the real /tmp and /run by default
  assert.deepStrictEqual(socketCandidates({ env: {}, uid: 1000 }), [
    '/tmp/qerrors-1000/qerrors.sock',
    '/run/qerrors.sock',
  ]);
});

test('socket rule: no socket anywhere -> the daemon default of this identity', () => {
  const { xdg, tmp, run, opts } = lookIn();
  const tmpSockPath = path.join(tmp, QD, 'qerrors.sock');
  assert.deepStrictEqual(resolveSocket(opts({ XDG_RUNTIME_DIR: xdg })), {
    path: path.join(xdg, 'qerrors.sock'),
    from: 'default',
    tried: [path.join(xdg, 'qerrors.sock'), tmpSockPath, path.join(run, 'qerrors.sock')],
  });
  assert.strictEqual(resolveSocket(opts({})).path, tmpSockPath);
  // XDG_RUNTIME_DIR relative, or not a directory: the daemon would not use it
  assert.strictEqual(resolveSocket(opts({ XDG_RUNTIME_DIR: 'relative/dir' })).path, tmpSockPath);
  const gone = path.join(xdg, 'gone');
  assert.strictEqual(resolveSocket(opts({ XDG_RUNTIME_DIR: gone })).path, tmpSockPath);
  // root: /run/qerrors.sock, whatever XDG_RUNTIME_DIR says
  const root = lookIn(0);
  assert.strictEqual(
    resolveSocket(root.opts({ XDG_RUNTIME_DIR: root.xdg })).path,
    path.join(root.run, 'qerrors.sock'),
  );
  assert.strictEqual(daemonDefaultSocket({ env: {}, uid: 0 }), '/run/qerrors.sock');
  assert.strictEqual(daemonDefaultSocket({ env: {}, uid: 1000 }), '/tmp/qerrors-1000/qerrors.sock');
});

test('socket rule: the first candidate that is a socket wins', async () => {
  const { xdg, tmp, run, opts } = lookIn();
  const env = { XDG_RUNTIME_DIR: xdg };
  // only /run has a daemon (a root daemon): a user's client finds it
  const atRun = await server(path.join(run, 'qerrors.sock'));
  assert.deepStrictEqual(
    [resolveSocket(opts(env)).path, resolveSocket(opts(env)).from],
    [path.join(run, 'qerrors.sock'), 'candidate'],
  );
  // a daemon without XDG_RUNTIME_DIR (/tmp/qerrors-<euid>) comes before /run
  userTmp(tmp);
  const atTmp = await server(path.join(tmp, QD, 'qerrors.sock'));
  assert.strictEqual(resolveSocket(opts(env)).path, path.join(tmp, QD, 'qerrors.sock'));
  // a regular file is not a socket
  fs.writeFileSync(path.join(xdg, 'qerrors.sock'), 'not a socket');
  assert.strictEqual(resolveSocket(opts(env)).path, path.join(tmp, QD, 'qerrors.sock'));
  fs.rmSync(path.join(xdg, 'qerrors.sock'));
  const atXdg = await server(path.join(xdg, 'qerrors.sock'));
  assert.strictEqual(resolveSocket(opts(env)).path, path.join(xdg, 'qerrors.sock'));
  // ... unless XDG_RUNTIME_DIR is unset in this process
  assert.strictEqual(resolveSocket(opts({})).path, path.join(tmp, QD, 'qerrors.sock'));
  await Promise.all([atRun.close(), atTmp.close(), atXdg.close()]);
});

test('socket rule: a /tmp/qerrors-<uid> that is not the user\'s own is never used', async () => {
  const { tmp, run, opts } = lookIn();
  // made by someone else (this process, not user U), or writable by others
  const dir = path.join(tmp, QD);
  fs.mkdirSync(dir, { mode: 0o700 });
  if (ME !== 0) fs.chmodSync(dir, 0o777);
  const squat = await server(path.join(dir, 'qerrors.sock'));
  if (ME !== 0) fs.chmodSync(dir, 0o777); // umask may have narrowed mkdir's mode
  const atRun = await server(path.join(run, 'qerrors.sock'));
  assert.strictEqual(resolveSocket(opts({})).path, path.join(run, 'qerrors.sock'));
  await Promise.all([squat.close(), atRun.close()]);
});

test('socket rule: a dead daemon\'s socket file does not hide a live daemon after it', async () => {
  const { xdg, run, opts } = lookIn();
  // a socket file nobody listens on, first in the list: what `kill -9` of a daemon leaves
  // (bound by a process that exits without unlinking it)
  require('node:child_process').execFileSync('python3', [
    '-c',
    'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
    path.join(xdg, 'qerrors.sock'),
  ]);
  const live = await server(path.join(run, 'qerrors.sock'));
  assert.ok(fs.statSync(path.join(xdg, 'qerrors.sock')).isSocket());
  const c = new Client({ resolve: opts({ XDG_RUNTIME_DIR: xdg }) });
  c.send({ message: 'past the dead one' });
  await waitFor(() => live.lines.length === 1);
  assert.strictEqual(live.lines[0].message, 'past the dead one');
  assert.strictEqual(c.stats().socket, path.join(run, 'qerrors.sock'));
  await c.close();
  await live.close();
});

test('environment: QERRORS_INGEST_SOCKET, then QERRORS_SOCKET, win; the socket option over both', async () => {
  const { xdg, opts } = lookIn();
  const atXdg = await server(path.join(xdg, 'qerrors.sock'));
  const both = {
    XDG_RUNTIME_DIR: xdg,
    QERRORS_INGEST_SOCKET: '/new.sock',
    QERRORS_SOCKET: '/old.sock',
  };
  assert.deepStrictEqual(resolveSocket(opts(both)), {
    path: '/new.sock',
    from: 'QERRORS_INGEST_SOCKET',
    tried: ['/new.sock'],
  });
  assert.strictEqual(resolveSocket(opts({ ...both, QERRORS_INGEST_SOCKET: '' })).path, '/old.sock');
  const legacyOnly = { ...both, QERRORS_INGEST_SOCKET: undefined };
  assert.strictEqual(resolveSocket(opts(legacyOnly)).from, 'QERRORS_SOCKET');
  const empty = { XDG_RUNTIME_DIR: xdg, QERRORS_INGEST_SOCKET: '', QERRORS_SOCKET: '' };
  assert.strictEqual(
    resolveSocket(opts(empty)).path,
    path.join(xdg, 'qerrors.sock'),
  );
  const c = new Client({ socket: '/option.sock', resolve: opts(both) });
  assert.strictEqual(c.stats().socket, '/option.sock');
  await c.close(0);
  await atXdg.close();
});

test('without a socket option each attempt looks again: a daemon started later is found', async () => {
  const { xdg, tmp, opts } = lookIn();
  const c = new Client({ resolve: opts({ XDG_RUNTIME_DIR: xdg }) });
  for (let i = 0; i < 3; i++) c.send({ message: `late ${i}` });
  await waitFor(() => c.stats().connectFailures >= 2);
  let st = c.stats();
  assert.strictEqual(st.socket, path.join(xdg, 'qerrors.sock')); // the default: XDG is a dir
  assert.deepStrictEqual([st.sent, st.queued, st.dropped, st.connected], [0, 3, 0, false]);
  // the daemon starts without XDG_RUNTIME_DIR, at /tmp/qerrors-<euid>
  userTmp(tmp);
  const srv = await server(path.join(tmp, QD, 'qerrors.sock'));
  await waitFor(() => srv.lines.length === 3);
  assert.deepStrictEqual(srv.lines.map((l) => l.message), ['late 0', 'late 1', 'late 2']);
  st = c.stats();
  assert.strictEqual(st.socket, path.join(tmp, QD, 'qerrors.sock'));
  assert.deepStrictEqual([st.sent, st.queued, st.connected], [3, 0, true]);
  await c.close();
  await srv.close();
});

test('close() counts what it could not deliver as dropped', async () => {
  const c = new Client({ socket: tmpSock() });
  for (let i = 0; i < 4; i++) c.send({ message: `e${i}` });
  const st = await c.close(2000);
  assert.deepStrictEqual([st.queued, st.queuedBytes, st.dropped, st.sent], [0, 0, 4, 0]);
  assert.strictEqual(c.send({ message: 'after close' }), false);
  assert.strictEqual(c.stats().dropped, 5);
});

test('flush() gives up at once when the daemon cannot be reached', async () => {
  const c = new Client({ socket: tmpSock() });
  c.send({ message: 'x' });
  await waitFor(() => c.stats().connectFailures >= 1);
  const start = Date.now();
  await c.flush(5000);
  assert.ok(Date.now() - start < 1000, `flush took ${Date.now() - start} ms`);
  await c.close(0);
});

// Whole processes: the notices are once per process and the exit notice comes at exit.

const FIXTURE = path.join(__dirname, 'fixtures', 'unreachable.js');

/** A child's environment: this one's without QERRORS_* and XDG_RUNTIME_DIR, plus `extra`. */
function childEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('QERRORS_') && k !== 'XDG_RUNTIME_DIR') env[k] = v;
  }
  return { ...env, ...extra };
}

/** Runs the fixture; `onStderr(text so far)` is called as stderr arrives. */
function runFixture(args, env, onStderr = () => {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FIXTURE, ...args], { env: childEnv(env) });
    let stdout = '';
    let stderr = '';
    const kill = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      onStderr(stderr);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(kill);
      resolve({ code, stdout, stderr, stats: stdout.trim() ? JSON.parse(stdout) : null });
    });
  });
}

const lines = (text, re) => text.split('\n').filter((l) => re.test(l));

test('daemon down: one notice for many failed sends, held/dropped counted, exit notice', async () => {
  const sock = tmpSock();
  const r = await runFixture([sock, '50', '10', 'down'], {});
  assert.strictEqual(r.code, 0, r.stderr);
  assert.deepStrictEqual(
    [r.stats.sent, r.stats.queued, r.stats.dropped, r.stats.connected, r.stats.socket],
    [0, 10, 40, false, sock],
  );
  assert.ok(r.stats.connectFailures >= 3, `several failed attempts: ${JSON.stringify(r.stats)}`);
  const warned = lines(r.stderr, /cannot reach/);
  assert.strictEqual(warned.length, 1, r.stderr);
  assert.match(warned[0], /^qerrors: cannot reach the qerrors daemon: ENOENT at /);
  assert.ok(warned[0].includes(sock), warned[0]);
  assert.match(warned[0], /Holding 10 event\(s\) and retrying in the background; 40 dropped so/);
  const exit = lines(r.stderr, /^qerrors: exiting/);
  assert.strictEqual(exit.length, 1, r.stderr);
  assert.match(exit[0], /10 event\(s\) still held .*not connected.* and 40 dropped/);
  assert.strictEqual(lines(r.stderr, /^qerrors: /).length, 2, r.stderr);
});

// QERRORS_INGEST_SOCKET beats QERRORS_SOCKET in a real process too.
test('daemon starting late: the notice, then delivery, and no exit notice', async () => {
  const sock = tmpSock();
  let srv = null;
  let starting = null;
  const r = await runFixture(
    ['-', '5', '100', 'late'],
    { QERRORS_INGEST_SOCKET: sock, QERRORS_SOCKET: tmpSock() },
    (err) => {
      if (!starting && err.includes('cannot reach')) starting = server(sock).then((s) => (srv = s));
    },
  );
  await starting;
  assert.strictEqual(r.code, 0, r.stderr);
  const { sent, queued, dropped, socket } = r.stats;
  assert.deepStrictEqual([sent, queued, dropped, socket], [5, 0, 0, sock]);
  await waitFor(() => srv.lines.length === 5);
  assert.strictEqual(srv.lines[0].service, 'unreachable-fixture');
  assert.strictEqual(lines(r.stderr, /cannot reach/).length, 1, r.stderr);
  assert.match(r.stderr, /from QERRORS_INGEST_SOCKET/);
  assert.match(r.stderr, /^qerrors: connected to the qerrors daemon at .*; delivering 5 held event/m);
  assert.strictEqual(lines(r.stderr, /exiting/).length, 0, r.stderr);
  await srv.close();
});

test('nothing but the environment: a daemon at $XDG_RUNTIME_DIR/qerrors.sock', async () => {
  const xdg = tmpDir();
  const srv = await server(path.join(xdg, 'qerrors.sock'));
  const r = await runFixture(['-', '2', '100', 'late'], { XDG_RUNTIME_DIR: xdg });
  assert.strictEqual(r.code, 0, r.stderr);
  assert.strictEqual(r.stats.socket, path.join(xdg, 'qerrors.sock'));
  await waitFor(() => srv.lines.length === 2);
  assert.strictEqual(r.stderr, '');
  await srv.close();
});
