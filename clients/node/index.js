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

/** Where the daemon listens, like `qerrorsctl` finds it. */
function defaultSocket() {
  if (process.env.QERRORS_SOCKET) return process.env.QERRORS_SOCKET;
  if (typeof process.getuid === 'function' && process.getuid() === 0) return '/run/qerrors.sock';
  if (process.env.XDG_RUNTIME_DIR) return path.join(process.env.XDG_RUNTIME_DIR, 'qerrors.sock');
  return '/run/qerrors.sock';
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
  constructor(options = {}) {
    this.socketPath = options.socket || defaultSocket();
    this.maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.service = options.service;
    this._queue = [];
    this._queuedBytes = 0;
    this._sock = null;
    this._connected = false;
    this._writable = false;
    this._backoff = RECONNECT_MIN_MS;
    this._timer = null;
    this._closed = false;
    this._stats = { sent: 0, dropped: 0, connects: 0, disconnects: 0 };
  }

  /** Counters: events handed to the socket, dropped (buffer full, too long), (re)connects. */
  stats() {
    return { ...this._stats, queued: this._queue.length, queuedBytes: this._queuedBytes };
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

  _drop() {
    this._stats.dropped += 1;
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
    let sock;
    try {
      sock = net.createConnection(this.socketPath);
    } catch (_) {
      this._scheduleReconnect();
      return;
    }
    this._sock = sock;
    sock.on('connect', () => {
      this._connected = true;
      this._writable = true;
      this._backoff = RECONNECT_MIN_MS;
      this._stats.connects += 1;
      this._flush();
    });
    sock.on('drain', () => {
      this._writable = true;
      this._flush();
    });
    // Replies (rejections) are not read by apps; discard them so the daemon never waits.
    sock.on('data', () => {});
    sock.on('error', () => {});
    sock.on('close', () => {
      if (this._connected) this._stats.disconnects += 1;
      this._sock = null;
      this._connected = false;
      this._writable = false;
      if (!this._closed && this._queue.length > 0) this._scheduleReconnect();
      this._resolveIdle();
    });
    this._refState();
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
   * Resolves once the buffer was handed to the socket (or the daemon is unreachable), at the
   * latest after `timeoutMs`. Never rejects.
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
        if (this._queue.length > 0 && !sock && !this._timer) return done();
        setTimeout(check, 10);
      };
      check();
    });
  }

  /** Flushes (bounded) and closes the connection. */
  async close(timeoutMs = 1000) {
    const st = await this.flush(timeoutMs);
    this._closed = true;
    if (this._timer) clearTimeout(this._timer);
    if (this._sock) this._sock.end();
    return st;
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
  DEFAULT_MAX_EVENTS,
  DEFAULT_MAX_BYTES,
  MAX_LINE_BYTES,
};
module.exports.default = qerrors;
