import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MemdumpError } from '../core/errors.js';
import { fakeQemu, settledSeen } from '../../test/helpers/vm-fake.js';
import { QmpClient, closeFd, openPipe, qmpSocketPath } from './qmp-client.js';

type Handler = (cmd: { execute: string; arguments?: Record<string, unknown>; id?: string }, sock: Socket) => void;

/** A fake QMP monitor: greets, accepts qmp_capabilities, hands every other command to `handler`. */
async function fakeMonitor(t: { after: (fn: () => void) => void }, handler: Handler, greeting = '{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}'): Promise<{ path: string; server: Server; seen: string[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'qmp-fake-'));
  const path = join(dir, 'qmp.sock');
  const seen: string[] = [];
  const socks = new Set<Socket>();
  const server = createServer((s) => {
    socks.add(s);
    s.write(greeting + '\r\n');
    let buf = '';
    s.on('data', (d) => {
      buf += d.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const cmd = JSON.parse(line) as { execute: string; id?: string };
        seen.push(cmd.execute);
        if (cmd.execute === 'qmp_capabilities') s.write(JSON.stringify({ return: {}, id: cmd.id }) + '\r\n');
        else handler(cmd, s);
      }
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => {
    for (const s of socks) s.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { path, server, seen };
}

test('qmpSocketPath: unix: prefix, plain path, other transports refused', () => {
  assert.equal(qmpSocketPath('unix:/run/q.sock'), '/run/q.sock');
  assert.equal(qmpSocketPath('unix:/run/q.sock,server,nowait'), '/run/q.sock');
  assert.equal(qmpSocketPath('/run/q.sock'), '/run/q.sock');
  assert.throws(() => qmpSocketPath('tcp:localhost:4444'), (e: MemdumpError) => e.code === 'E_USAGE');
});

test('greeting, capabilities, command ids, replies matched by id', async (t) => {
  const m = await fakeMonitor(t, (cmd, s) => {
    // answer in reverse order of arrival for query-a/query-b to prove replies are matched by id, not order
    if (cmd.execute === 'query-a') setTimeout(() => s.write(JSON.stringify({ return: { a: 1 }, id: cmd.id }) + '\n'), 30);
    else s.write(JSON.stringify({ return: { echo: cmd.arguments ?? null }, id: cmd.id }) + '\n');
  });
  const c = await QmpClient.connect(`unix:${m.path}`);
  t.after(() => c.close());
  assert.deepEqual((c.greeting['version'] as { qemu: { major: number } }).qemu.major, 7);
  const [a, b] = await Promise.all([c.execute('query-a'), c.execute('query-b', { x: 'y' })]);
  assert.deepEqual(a, { a: 1 });
  assert.deepEqual(b, { echo: { x: 'y' } });
  assert.deepEqual(m.seen, ['qmp_capabilities', 'query-a', 'query-b']);
});

test('an error reply is E_SOURCE_READ with QEMU class and description', async (t) => {
  const m = await fakeMonitor(t, (cmd, s) => s.write(JSON.stringify({ error: { class: 'GenericError', desc: 'There is a dump in process, please wait.' }, id: cmd.id }) + '\n'));
  const c = await QmpClient.connect(m.path);
  t.after(() => c.close());
  await assert.rejects(c.execute('cont'), (e: MemdumpError) => e.code === 'E_SOURCE_READ' && e.details['qmpClass'] === 'GenericError' && /dump in process/.test(e.message));
});

test('events are buffered until asked for, in order, whether they come before or after the wait', async (t) => {
  const m = await fakeMonitor(t, (cmd, s) => {
    s.write(JSON.stringify({ event: 'STOP', data: {}, timestamp: { seconds: 1, microseconds: 2 } }) + '\n');
    s.write(JSON.stringify({ return: {}, id: cmd.id }) + '\n');
    setTimeout(() => s.write(JSON.stringify({ event: 'DUMP_COMPLETED', data: { result: { status: 'completed', completed: 5, total: 5 } } }) + '\n'), 20);
  });
  const c = await QmpClient.connect(m.path);
  t.after(() => c.close());
  await c.execute('stop');
  assert.deepEqual(c.bufferedEvents().map((e) => e.event), ['STOP']);
  const done = await c.waitEvent('DUMP_COMPLETED', 10_000);
  assert.equal((done?.data['result'] as { status: string }).status, 'completed');
  const stop = await c.waitEvent('STOP', 10_000);
  assert.deepEqual(stop?.timestamp, { seconds: 1, microseconds: 2 });
  assert.equal(c.bufferedEvents().length, 0);
  const ac = new AbortController();
  const none = c.waitEvent('NEVER', 600_000, ac.signal);
  ac.abort();
  assert.equal(await none, undefined);
});

test('a disconnect mid-command rejects it with E_SOURCE_READ; later commands fail at once', async (t) => {
  const m = await fakeMonitor(t, (_cmd, s) => s.destroy());
  const c = await QmpClient.connect(m.path);
  await assert.rejects(c.execute('dump-guest-memory', { paging: false }), (e: MemdumpError) => e.code === 'E_SOURCE_READ' && /connection/.test(e.message));
  assert.ok(c.closed);
  await assert.rejects(c.execute('cont'), (e: MemdumpError) => e.code === 'E_SOURCE_READ');
});

test('a command with no answer times out with E_SOURCE_READ and a late reply is dropped', async (t) => {
  let held: { id?: string; s: Socket } | undefined;
  const m = await fakeMonitor(t, (cmd, s) => {
    if (cmd.execute === 'slow') held = { ...(cmd.id ? { id: cmd.id } : {}), s };
    else {
      held?.s.write(JSON.stringify({ return: 'late', id: held.id }) + '\n');
      s.write(JSON.stringify({ return: 'fresh', id: cmd.id }) + '\n');
    }
  });
  const c = await QmpClient.connect(m.path);
  t.after(() => c.close());
  await assert.rejects(c.execute('slow', undefined, 50), (e: MemdumpError) => e.code === 'E_SOURCE_READ' && /no answer/.test(e.message));
  assert.equal(await c.execute('next'), 'fresh');
});

test('missing socket is E_NOT_FOUND, a stale socket file too; a non-QMP peer is E_SOURCE_READ', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'qmp-none-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await assert.rejects(QmpClient.connect(join(dir, 'absent.sock')), (e: MemdumpError) => e.code === 'E_NOT_FOUND' && /no QMP socket/.test(e.message));
  writeFileSync(join(dir, 'plain'), '');
  await assert.rejects(QmpClient.connect(join(dir, 'plain')), (e: MemdumpError) => e instanceof MemdumpError && ['E_NOT_FOUND', 'E_SOURCE_READ'].includes(e.code));

  const garbage = await fakeMonitor(t, () => undefined, 'SSH-2.0-OpenSSH_9.2');
  await assert.rejects(QmpClient.connect(garbage.path), (e: MemdumpError) => e.code === 'E_SOURCE_READ' && /not JSON/.test(e.message));
  const wrong = await fakeMonitor(t, () => undefined, '{"hello": 1}');
  await assert.rejects(QmpClient.connect(wrong.path), (e: MemdumpError) => e.code === 'E_SOURCE_READ' && /greeting/.test(e.message));
});

test('a peer that never greets is E_SOURCE_READ after the connect timeout', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'qmp-mute-'));
  const path = join(dir, 's');
  const socks: Socket[] = [];
  const server = createServer((s) => void socks.push(s));
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => {
    for (const s of socks) s.destroy();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await assert.rejects(QmpClient.connect(path, { timeoutMs: 50 }), (e: MemdumpError) => e.code === 'E_SOURCE_READ' && /no greeting/.test(e.message));
});

test('sendFd: the descriptor arrives with the getfd bytes (SCM_RIGHTS); the peer holds it under that name', async (t) => {
  const q = await fakeQemu(t, { running: false, stream: Buffer.alloc(0), verdict: 'completed' });
  const c = await QmpClient.connect(q.path);
  t.after(() => c.close());
  const { readFd, writeFd } = openPipe();
  try {
    await c.sendFd('evidence', writeFd);
  } finally {
    closeFd(writeFd);
    closeFd(readFd);
  }
  assert.deepEqual((await settledSeen(q)).filter((x) => x.cmd === 'getfd'), [{ cmd: 'getfd', fds: 1 }]);
  await c.execute('closefd', { fdname: 'evidence' });
  await assert.rejects(c.execute('closefd', { fdname: 'evidence' }), (e: MemdumpError) => e.code === 'E_SOURCE_READ' && /not found/.test(e.message));
  // a plain execute carries no descriptor: the peer refuses getfd
  await assert.rejects(c.execute('getfd', { fdname: 'none' }), (e: MemdumpError) => /SCM_RIGHTS/.test(e.message));
});
