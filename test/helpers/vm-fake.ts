import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A scripted QEMU monitor for the paths a real QEMU will not take on request (a dump it reports failed after
 * writing everything, a writer that stalls, a monitor that hangs up, QEMU exiting mid-dump). It is Python because
 * Node cannot receive SCM_RIGHTS descriptors, and the descriptor passing is what is under test: `getfd` takes the
 * descriptor that arrived with the command bytes, and `dump-guest-memory` with `fd:NAME` writes into it. Like
 * QEMU 7.2 it pauses a running guest for the dump (STOP), reports DUMP_COMPLETED, then resumes it (RESUME); the
 * event timestamps are fixed so the pause it reports is exactly 250 ms.
 */
const FAKE = String.raw`
import json, os, select, socket, sys, threading, time
cfg = json.loads(sys.argv[1])
stream = open(cfg['stream'], 'rb').read()
st = {'running': cfg['running'], 'fds': {}, 'dump': 'none', 'brokenPipe': False}
def out(**k):
    print(json.dumps(k), flush=True)
def event(send, name, data=None, t=1000.0):
    send({'event': name, 'data': data or {}, 'timestamp': {'seconds': int(t), 'microseconds': int(round((t % 1) * 1e6))}})
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(cfg['path'])
srv.listen(4)
def dump(send, c, fd, resume):
    err = None
    try:
        n = cfg.get('stallAfter', -1)
        body = stream if n < 0 else stream[:n]
        view = memoryview(body)
        while len(view):
            w = os.write(fd, view[:65536])
            view = view[w:]
        if n >= 0:
            p = select.poll()
            p.register(fd, select.POLLERR)
            p.poll()
            os.write(fd, b'x')
        if cfg.get('exitMidDump'):
            os.unlink(cfg['path'])
            out(exit=True)
            os._exit(0)
    except OSError as e:
        err = 'dump: failed to save memory: ' + os.strerror(e.errno)
        st['brokenPipe'] = True
    if err is None and cfg['verdict'] == 'failed':
        err = 'dump: failed to save memory: Input/output error'
    st['dump'] = 'failed' if err else 'completed'
    os.close(fd)
    ev = {'result': {'status': st['dump'], 'completed': len(stream), 'total': len(stream)}}
    if err:
        ev['error'] = err
    try:
        event(send, 'DUMP_COMPLETED', ev, 1000.2)
        if resume:
            st['running'] = True
            event(send, 'RESUME', None, 1000.25)
    except OSError:
        if resume:
            st['running'] = True
    out(state=st['running'], dump=st['dump'], brokenPipe=st['brokenPipe'])
def serve(c):
    lock = threading.Lock()
    def send(m):
        with lock:
            c.sendall((json.dumps(m) + '\n').encode())
    send({'QMP': {'version': {'qemu': {'major': 9, 'minor': 9, 'micro': 9}, 'package': 'fake'}, 'capabilities': []}})
    buf = b''
    while True:
        try:
            data, fds, _f, _a = socket.recv_fds(c, 65536, 4)
        except OSError:
            return
        if not data:
            return
        buf += data
        fds = list(fds)
        while b'\n' in buf:
            line, buf = buf.split(b'\n', 1)
            cmd = json.loads(line)
            ex = cmd['execute']
            out(cmd=ex, fds=len(fds))
            ok = lambda r=None: send({'return': {} if r is None else r, 'id': cmd.get('id')})
            bad = lambda d: send({'error': {'class': 'GenericError', 'desc': d}, 'id': cmd.get('id')})
            a = cmd.get('arguments') or {}
            if ex == 'qmp_capabilities': ok()
            elif ex == 'query-status': ok({'running': st['running'], 'status': 'running' if st['running'] else 'paused'})
            elif ex == 'query-name': ok({'name': 'fake'})
            elif ex == 'query-uuid': ok({'UUID': cfg.get('uuid', '11111111-2222-3333-4444-555555555555')})
            elif ex == 'query-version': ok({'qemu': {'major': 9, 'minor': 9, 'micro': 9}, 'package': 'fake'})
            elif ex == 'query-memory-size-summary': ok({'base-memory': 1 << 20})
            elif ex == 'query-dump-guest-memory-capability': ok({'formats': ['elf']})
            elif ex == 'query-dump': ok({'status': 'active' if cfg.get('priorDumpActive') else st['dump'], 'completed': 0, 'total': 0})
            elif ex == 'human-monitor-command': bad('not here')
            elif ex == 'getfd':
                if not fds: bad('No file descriptor supplied via SCM_RIGHTS')
                else:
                    st['fds'][a['fdname']] = fds.pop(0)
                    ok()
            elif ex == 'closefd':
                fd = st['fds'].pop(a['fdname'], None)
                if fd is None: bad('File descriptor named %s not found' % a['fdname'])
                else:
                    os.close(fd)
                    ok()
            elif ex == 'dump-guest-memory':
                proto = a.get('protocol', '')
                fd = st['fds'].pop(proto[3:], None) if proto.startswith('fd:') else None
                if fd is None:
                    bad('File descriptor named %s not found' % proto[3:])
                    continue
                resume = st['running']
                st['dump'] = 'active'
                if resume:
                    st['running'] = False
                    event(send, 'STOP', None, 1000.0)
                ok()
                if cfg.get('hangUpAfterDump'):
                    # hang up before the dump's events: they are lost with the connection
                    time.sleep(0.05)
                    c.shutdown(socket.SHUT_RDWR)
                    c.close()
                    threading.Thread(target=dump, args=(send, c, fd, resume), daemon=True).start()
                    return
                threading.Thread(target=dump, args=(send, c, fd, resume), daemon=True).start()
            else:
                send({'error': {'class': 'CommandNotFound', 'desc': 'The command %s has not been found' % ex}, 'id': cmd.get('id')})
out(ready=True)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
`;

export interface FakeScript {
  running: boolean;
  /** What the fake writes into the descriptor it was given. */
  stream: Buffer;
  verdict: 'completed' | 'failed';
  priorDumpActive?: boolean;
  /** Write this many bytes, then nothing until the reader goes away. */
  stallAfter?: number;
  /** Close the monitor connection right after answering dump-guest-memory (the dump goes on). */
  hangUpAfterDump?: boolean;
  /** Exit (socket file removed) once the stream is written, before any verdict. */
  exitMidDump?: boolean;
  uuid?: string;
}

export interface FakeQemu {
  path: string;
  /** Commands received, in order, with how many descriptors arrived with the bytes that carried them. */
  seen: { cmd: string; fds: number }[];
  state: { running: boolean; dump: string; brokenPipe: boolean; exited: boolean };
  child: ChildProcess;
}

export async function fakeQemu(t: { after: (fn: () => void) => void }, script: FakeScript): Promise<FakeQemu> {
  const dir = mkdtempSync(join(tmpdir(), 'fake-qemu-'));
  const path = join(dir, 'qmp.sock');
  const streamFile = join(dir, 'stream');
  writeFileSync(streamFile, script.stream);
  const cfg = { ...script, stream: streamFile, path };
  const child = spawn('python3', ['-c', FAKE, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const fake: FakeQemu = { path, seen: [], state: { running: script.running, dump: 'none', brokenPipe: false, exited: false }, child };
  let buf = '';
  let ready: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    for (let nl; (nl = buf.indexOf('\n')) >= 0; ) {
      const m = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
      buf = buf.slice(nl + 1);
      if (m['ready']) ready();
      if (typeof m['cmd'] === 'string') fake.seen.push({ cmd: m['cmd'], fds: Number(m['fds']) });
      if (typeof m['state'] === 'boolean') Object.assign(fake.state, { running: m['state'], dump: m['dump'], brokenPipe: m['brokenPipe'] });
      if (m['exit']) fake.state.exited = true;
    }
  });
  child.on('exit', () => ready());
  t.after(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await isReady;
  if (!existsSync(path)) throw new Error('the fake QEMU did not start (python3 with socket.recv_fds, 3.9+, is needed)');
  return fake;
}

/** Wait (bounded by the test's timeout) until `cond` holds: the fake reports asynchronously. */
export async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await new Promise((r) => setTimeout(r, 20));
}

/**
 * The fake reports each command on its stdout, a different stream from the monitor socket the client reads its
 * replies on: wait until the list has stopped growing before asserting on it.
 */
export async function settledSeen(q: FakeQemu, quietMs = 200, maxMs = 10_000): Promise<FakeQemu['seen']> {
  const start = Date.now();
  let n = -1;
  let since = start;
  while (Date.now() - start < maxMs) {
    if (q.seen.length !== n) {
      n = q.seen.length;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return q.seen;
}
