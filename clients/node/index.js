'use strict';
// qerrors client for Node.js: sends errors to the qerrors daemon over its Unix socket.
//
//   const { qerrors } = require('qerrors-client');
//   qerrors(err, { orderId: 42 });                      // the original library's call shape
//   const logger = pino(require('qerrors-client').destination());   // or winston / bunyan
//
// Standard library only. Never blocks and never throws into the app: events go into a bounded
// in-process buffer (events and bytes) that a single connection drains; when the daemon is down
// or restarting the client reconnects with backoff, and when the buffer is full new events are
// dropped and counted (`stats().dropped`). Delivery is at most once: lines the kernel accepted
// just before the daemon died are lost.
//
// Nothing is lost silently: the first time the daemon cannot be reached the process says so once
// on stderr (the socket tried, events held and dropped), and at exit it says how many events were
// still held or were dropped. Which socket: see `resolveSocket` (the rule qerrorsd, qerrorsctl
// and the Python handler share).

const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { Writable } = require('node:stream');

/** Default bounds of the in-process buffer. */
const DEFAULT_MAX_EVENTS = 1000;
const DEFAULT_MAX_BYTES = 1 << 20;
/** The daemon's default `ingest.max_line_bytes`: longer lines would be rejected anyway. */
const MAX_LINE_BYTES = 256 * 1024;
/** Reconnect backoff: doubles from the minimum up to the maximum. */
const RECONNECT_MIN_MS = 50;
const RECONNECT_MAX_MS = 2000;

/** The socket's file name in each directory the daemon may use. */
const SOCKET_NAME = 'qerrors.sock';
/** The environment variable naming the socket, and its deprecated alias (the new name wins). */
const SOCKET_ENV = 'QERRORS_INGEST_SOCKET';
const LEGACY_SOCKET_ENV = 'QERRORS_SOCKET';
/** Where a daemon without a runtime directory puts its socket (`<TMP_DIR>/qerrors-<euid>/`). */
const TMP_DIR = '/tmp';
/** Where a daemon run as root (or installed with systemd) puts its socket. */
const RUN_DIR = '/run';

function effectiveUid() {
  if (typeof process.geteuid === 'function') return process.geteuid();
  return typeof process.getuid === 'function' ? process.getuid() : -1;
}

/**
 * The socket named in the environment: `QERRORS_INGEST_SOCKET`, else the deprecated
 * `QERRORS_SOCKET`; `{ path, from }` or null. Empty values count as unset.
 */
function explicitSocket(env = process.env) {
  for (const name of [SOCKET_ENV, LEGACY_SOCKET_ENV]) {
    if (env[name]) return { path: env[name], from: name };
  }
  return null;
}

/**
 * Where a daemon may listen, in the order a client looks: `$XDG_RUNTIME_DIR/qerrors.sock` (when
 * set), `/tmp/qerrors-<euid>/qerrors.sock`, `/run/qerrors.sock`. The options exist for tests
 * (`env`, `uid`, and the directories standing in for /tmp and /run).
 */
function socketCandidates(options = {}) {
  const { env = process.env, uid = effectiveUid(), tmpDir = TMP_DIR, runDir = RUN_DIR } = options;
  const list = [];
  if (env.XDG_RUNTIME_DIR) list.push(path.join(env.XDG_RUNTIME_DIR, SOCKET_NAME));
  list.push(path.join(tmpDir, `qerrors-${uid}`, SOCKET_NAME));
  list.push(path.join(runDir, SOCKET_NAME));
  return list;
}

/**
 * Where a daemon of this identity binds when nothing is configured: `/run/qerrors.sock` for
 * euid 0, else `$XDG_RUNTIME_DIR/qerrors.sock` when that is an absolute path to a directory, else
 * `/tmp/qerrors-<euid>/qerrors.sock`.
 */
function daemonDefaultSocket(options = {}) {
  const { env = process.env, uid = effectiveUid(), tmpDir = TMP_DIR, runDir = RUN_DIR } = options;
  if (uid === 0) return path.join(runDir, SOCKET_NAME);
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && path.isAbsolute(xdg) && isDirectory(xdg)) return path.join(xdg, SOCKET_NAME);
  return path.join(tmpDir, `qerrors-${uid}`, SOCKET_NAME);
}

function isDirectory(p) {
  try {
    return fs.statSync(p).isDirectory();
  } catch (_) {
    return false;
  }
}

/**
 * Whether `dir` is a real directory (not a symlink) owned by `uid` that nobody else can write:
 * the `/tmp/qerrors-<euid>` candidate is used only then, since another user could have made it
 * first to receive this user's events (qerrorsd refuses such a directory the same way).
 */
function isPrivateDir(dir, uid) {
  try {
    const st = fs.lstatSync(dir);
    return st.isDirectory() && st.uid === uid && (st.mode & 0o022) === 0;
  } catch (_) {
    return false;
  }
}

function isSocket(p) {
  try {
    return fs.statSync(p).isSocket();
  } catch (_) {
    return false;
  }
}

/**
 * The socket rule shared with qerrorsd, qerrorsctl and the Python handler: the environment
 * (`explicitSocket`) wins; else the first of `socketCandidates` that exists and is a socket; else
 * the daemon default for this identity (`daemonDefaultSocket`), so a daemon started later is
 * found. Returns `{ path, from, tried }`: `from` is the variable's name, `'candidate'` or
 * `'default'`; `tried` the paths looked at.
 */
function resolveSocket(options = {}) {
  const explicit = explicitSocket(options.env ?? process.env);
  if (explicit) return { ...explicit, tried: [explicit.path] };
  const { uid = effectiveUid(), tmpDir = TMP_DIR, skip = new Set() } = options;
  const tried = socketCandidates(options);
  const userTmp = path.join(tmpDir, `qerrors-${uid}`);
  const usable = tried.filter(
    (p) => (path.dirname(p) !== userTmp || isPrivateDir(userTmp, uid)) && isSocket(p),
  );
  // `skip`: candidates that refused the last connection (a dead daemon's socket file), so a
  // live daemon further down the list is tried; when every one refused, the first again.
  const found = usable.find((p) => !skip.has(p)) ?? usable[0];
  if (found) return { path: found, from: 'candidate', tried };
  return { path: daemonDefaultSocket(options), from: 'default', tried };
}

/** The socket path the rule gives now (`resolveSocket(options).path`). */
function defaultSocket(options) {
  return resolveSocket(options).path;
}

// Process-wide notices: each said at most once per process, on stderr.
const notices = { unreachable: false, connected: false, exitHook: false };
/** Clients not closed yet (their buffers are what is still held at exit). */
const openClients = new Set();
/** Events dropped by every client of this process (buffer full, line too long, closed). */
let processDropped = 0;

function say(text) {
  try {
    // Synchronous for files, pipes and terminals on Linux, so it is also written at exit.
    process.stderr.write(`qerrors: ${text}\n`);
  } catch (_) {
    // stderr closed: nowhere left to say it
  }
}

function describeTarget(t) {
  const tried = t.tried.join(', ');
  if (t.from === 'candidate') return `${t.path} (the first socket found among ${tried})`;
  if (t.from === 'default') return `${t.path} (no socket at ${tried})`;
  return `${t.path} (from ${t.from})`;
}

function noteUnreachable(client, err) {
  if (notices.unreachable) return;
  notices.unreachable = true;
  const why = err && err.code ? `${err.code} at ` : 'at ';
  say(
    `cannot reach the qerrors daemon: ${why}${describeTarget(client._target)}. ` +
      `Holding ${client._queue.length} event(s) and retrying in the background; ` +
      `${client._stats.dropped} dropped so far (at most ${client.maxEvents} events / ` +
      `${client.maxBytes} bytes are held, the rest is dropped and counted in stats()). ` +
      `Start qerrorsd, or set ${SOCKET_ENV} to its socket. (Said once per process.)`,
  );
}

function noteConnected(client) {
  if (!notices.unreachable || notices.connected) return;
  notices.connected = true;
  say(
    `connected to the qerrors daemon at ${client.socketPath}; ` +
      `delivering ${client._queue.length} held event(s)`,
  );
}

/** At exit: what never reached the daemon, if anything. */
function onExit() {
  let held = 0;
  const where = [];
  for (const c of openClients) {
    if (c._queue.length === 0) continue;
    held += c._queue.length;
    const state = c._connected ? 'connected' : 'not connected';
    where.push(`${c._queue.length} for ${c.socketPath}, ${state}`);
  }
  if (held === 0 && processDropped === 0) return;
  const heldText =
    held > 0 ? `${held} event(s) still held (${where.join('; ')})` : '0 event(s) held';
  say(`exiting with ${heldText} and ${processDropped} dropped; none of them reached the daemon`);
}

function installExitHook() {
  if (notices.exitHook) return;
  notices.exitHook = true;
  process.on('exit', onExit);
}

/** JSON.stringify that survives cycles, BigInt and throwing getters. */
function safeStringify(value) {
  const seen = new WeakSet();
  try {
    return JSON.stringify(value, (_k, v) => {
      if (typeof v === 'bigint') return v.toString();
      if (typeof v === 'object' && v !== null) {
        if (seen.has(v)) return '[Circular]';
        seen.add(v);
      }
      return v;
    });
  } catch (_) {
    return undefined;
  }
}

/** Turns what the app caught (an Error or anything else) into a protocol event. */
function toEvent(err, context, options = {}) {
  const ev = { message: '', level: options.level || 'error' };
  if (err instanceof Error || (err && typeof err === 'object' && 'message' in err)) {
    ev.message = String(err.message ?? '');
    if (err.name) ev.name = String(err.name);
    if (typeof err.stack === 'string') ev.stack = err.stack;
    if (typeof err.code === 'string' || typeof err.code === 'number') ev.code = err.code;
  } else {
    ev.message = typeof err === 'string' ? err : safeStringify(err) ?? String(err);
  }
  if (!ev.message) ev.message = ev.name || 'Error';
  if (options.service) ev.service = options.service;
  ev.ts = Date.now();
  if (context !== undefined && context !== null) {
    ev.context = typeof context === 'object' && !Array.isArray(context) ? context : { value: context };
  }
  return ev;
}

class Client {
  /**
   * Options: `socket` (a path; else the environment, else the socket rule, looked up again on
   * every connection attempt), `service`, `maxEvents`, `maxBytes`; `resolve` (tests: `env`, `uid`,
   * `tmpDir`, `runDir` for `resolveSocket`).
   */
  constructor(options = {}) {
    this._explicit = options.socket
      ? { path: options.socket, from: 'the socket option', tried: [options.socket] }
      : null;
    this._resolveOptions = options.resolve || {};
    /** Candidates whose socket refused the last attempt (skipped until a connection works). */
    this._refused = new Set();
    this._target = this._resolveTarget();
    this.socketPath = this._target.path;
    this.maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.service = options.service;
    this._queue = [];
    this._queuedBytes = 0;
    this._sock = null;
    this._connected = false;
    this._writable = false;
    this._down = false; // the last connection attempt failed
    this._lastError = null;
    this._backoff = RECONNECT_MIN_MS;
    this._timer = null;
    this._closed = false;
    this._stats = { sent: 0, dropped: 0, connects: 0, disconnects: 0, connectFailures: 0 };
    openClients.add(this);
    installExitHook();
  }

  _resolveTarget() {
    return this._explicit || resolveSocket({ ...this._resolveOptions, skip: this._refused });
  }

  /**
   * Counters: events handed to the socket (`sent`), dropped (buffer full, too long, left at
   * `close`), held in the buffer (`queued`, `queuedBytes`), (re)connects, failed connection
   * attempts; whether it is `connected` and to which `socket`.
   */
  stats() {
    return {
      ...this._stats,
      queued: this._queue.length,
      queuedBytes: this._queuedBytes,
      connected: this._connected,
      socket: this.socketPath,
    };
  }

  /** Queues an event object (or one ready NDJSON line). Returns false when it was dropped. */
  send(event) {
    try {
      let line = typeof event === 'string' ? event : safeStringify(event);
      if (line === undefined) return this._drop();
      if (!line.endsWith('\n')) line += '\n';
      return this._enqueue(line);
    } catch (_) {
      return this._drop();
    }
  }

  _drop(n = 1) {
    this._stats.dropped += n;
    processDropped += n;
    return false;
  }

  _enqueue(line) {
    const bytes = Buffer.byteLength(line);
    if (this._closed || bytes > MAX_LINE_BYTES) return this._drop();
    if (this._queue.length >= this.maxEvents || this._queuedBytes + bytes > this.maxBytes) {
      return this._drop();
    }
    this._queue.push(line);
    this._queuedBytes += bytes;
    if (this._writable) this._flush();
    else this._ensureConnecting();
    return true;
  }

  _ensureConnecting() {
    if (this._sock || this._timer || this._closed) return;
    // Looked up on every attempt: a daemon started later at any candidate is found.
    this._target = this._resolveTarget();
    this.socketPath = this._target.path;
    let sock;
    try {
      sock = net.createConnection(this.socketPath);
    } catch (e) {
      this._connectFailed(e);
      this._scheduleReconnect();
      return;
    }
    this._sock = sock;
    this._lastError = null;
    sock.on('connect', () => {
      this._connected = true;
      this._writable = true;
      this._down = false;
      this._backoff = RECONNECT_MIN_MS;
      this._stats.connects += 1;
      this._refused.clear();
      noteConnected(this);
      this._flush();
    });
    sock.on('drain', () => {
      this._writable = true;
      this._flush();
    });
    // Replies (rejections) are not read by apps; discard them so the daemon never waits.
    sock.on('data', () => {});
    sock.on('error', (e) => {
      this._lastError = e;
    });
    sock.on('close', () => {
      if (this._connected) this._stats.disconnects += 1;
      else {
        if (this._target.from === 'candidate' && this._lastError?.code === 'ECONNREFUSED') {
          this._refused.add(this.socketPath);
        }
        this._connectFailed(this._lastError);
      }
      this._sock = null;
      this._connected = false;
      this._writable = false;
      if (!this._closed && this._queue.length > 0) this._scheduleReconnect();
      this._resolveIdle();
    });
    this._refState();
  }

  _connectFailed(err) {
    this._down = true;
    this._stats.connectFailures += 1;
    if (this._queue.length > 0) noteUnreachable(this, err);
  }

  _scheduleReconnect() {
    if (this._timer || this._closed) return;
    const delay = this._backoff;
    this._backoff = Math.min(this._backoff * 2, RECONNECT_MAX_MS);
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this._queue.length > 0) this._ensureConnecting();
    }, delay);
    // Waiting for the daemon never keeps the process alive.
    this._timer.unref();
  }

  _flush() {
    const sock = this._sock;
    while (sock && this._writable && this._queue.length > 0) {
      const line = this._queue.shift();
      this._queuedBytes -= Buffer.byteLength(line);
      this._stats.sent += 1;
      try {
        this._writable = sock.write(line);
      } catch (_) {
        this._writable = false;
      }
    }
    this._refState();
    if (this._queue.length === 0) this._resolveIdle();
  }

  /** The connection keeps the process alive only while it has something to deliver. */
  _refState() {
    const sock = this._sock;
    if (!sock) return;
    if (this._queue.length > 0 || sock.writableLength > 0) sock.ref();
    else sock.unref();
  }

  _resolveIdle() {
    if (this._queue.length > 0 && this._sock) return;
    const waiters = this._idleWaiters || [];
    this._idleWaiters = [];
    for (const w of waiters) w();
  }

  /**
   * Resolves once the buffer was handed to the socket, or at once when the last attempt to reach
   * the daemon failed, at the latest after `timeoutMs`. Never rejects.
   */
  flush(timeoutMs = 1000) {
    return new Promise((resolve) => {
      let finished = false;
      const done = () => {
        finished = true;
        clearTimeout(t);
        resolve(this.stats());
      };
      // Ref'd on purpose: whoever awaits flush() wants the process to wait (bounded).
      const t = setTimeout(done, timeoutMs);
      const check = () => {
        if (finished) return;
        const sock = this._sock;
        if (this._queue.length === 0 && (!sock || sock.writableLength === 0)) return done();
        if (this._queue.length > 0 && !sock && (this._down || !this._timer)) return done();
        setTimeout(check, 10);
      };
      check();
    });
  }

  /**
   * Flushes (bounded) and closes the connection. What is still held then is discarded and
   * counted as dropped. Resolves with the final stats.
   */
  async close(timeoutMs = 1000) {
    await this.flush(timeoutMs);
    if (!this._closed) {
      this._closed = true;
      if (this._timer) clearTimeout(this._timer);
      this._timer = null;
      if (this._sock) this._sock.end();
      if (this._queue.length > 0) this._drop(this._queue.length);
      this._queue = [];
      this._queuedBytes = 0;
      openClients.delete(this);
    }
    return this.stats();
  }

  /**
   * A writable stream for loggers that write NDJSON lines: pino (`pino(opts, stream)`), bunyan
   * (`streams: [{ stream }]`), winston (`new transports.Stream({ stream })`). Each line is
   * forwarded as is; the daemon recognizes these loggers' JSON. Never applies backpressure.
   */
  destination() {
    let carry = '';
    return new Writable({
      decodeStrings: false,
      write: (chunk, _enc, cb) => {
        try {
          let text = carry + (typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
          let nl;
          while ((nl = text.indexOf('\n')) !== -1) {
            const line = text.slice(0, nl + 1);
            text = text.slice(nl + 1);
            if (line.trim()) this._enqueue(line);
          }
          if (Buffer.byteLength(text) > MAX_LINE_BYTES) {
            this._drop();
            text = '';
          }
          carry = text;
        } catch (_) {
          // never throw into the logger
        }
        cb();
      },
      final: (cb) => {
        if (carry.trim()) this._enqueue(carry + '\n');
        carry = '';
        cb();
      },
    });
  }
}

let shared = null;
/** The process-wide client used by `qerrors()` and `destination()`. */
function client(options) {
  if (!shared) shared = new Client(options);
  return shared;
}

/**
 * Reports an error: `qerrors(err, context)`. Returns nothing and never throws. With the Express
 * error-middleware arguments `(err, context, req, res, next)` it also passes the error on with
 * `next(err)`, like the original library's handler position.
 */
function qerrors(err, context, req, res, next) {
  try {
    const c = client();
    c.send(toEvent(err, context, { service: c.service }));
  } catch (_) {
    // error reporting must never break the app
  }
  if (typeof next === 'function') {
    try {
      next(err);
    } catch (_) {
      // the app's own middleware threw; not ours to report twice
    }
  }
}

module.exports = {
  qerrors,
  Client,
  client,
  configure: (options) => {
    shared = new Client(options);
    return shared;
  },
  destination: (options) => (options ? new Client(options) : client()).destination(),
  toEvent,
  defaultSocket,
  resolveSocket,
  explicitSocket,
  socketCandidates,
  daemonDefaultSocket,
  SOCKET_ENV,
  LEGACY_SOCKET_ENV,
  DEFAULT_MAX_EVENTS,
  DEFAULT_MAX_BYTES,
  MAX_LINE_BYTES,
};
module.exports.default = qerrors;
