'use strict';
// Unit tests: `npm test` (`node --test test/client.test.js`) (also run by `cargo test`, tests/it/formats.rs).
// The "daemon" here is a plain Unix-socket server that records lines.
const test = require('node:test');
const assert = require('node:assert');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { Client, toEvent, qerrors, configure } = require('..');

function tmpSock() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qerrors-node-'));
  return path.join(dir, 'q.sock');
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
    srv.listen(sockPath, () =>
      resolve({
        lines,
        close: () =>
          new Promise((r) => {
            for (const c of conns) c.destroy();
            srv.close(() => r());
          }),
      }),
    );
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
