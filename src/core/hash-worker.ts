// Worker side of the parallel hasher: one worker per digest, fed slices of a shared ring buffer.
import { createHash, type Hash } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

interface Init {
  algorithm: string;
  ring: SharedArrayBuffer;
  /** 0 = no window hashes in this worker. */
  windowSize: number;
}
type Msg = { kind: 'data'; offset: number; length: number; seq: number } | { kind: 'finish' };

const { algorithm, ring, windowSize } = workerData as Init;
const view = Buffer.from(ring);
const full = createHash(algorithm);
let win: Hash | undefined = windowSize > 0 ? createHash(algorithm) : undefined;
let winFill = 0;
const windows: string[] = [];

function feedWindow(b: Buffer): void {
  let off = 0;
  while (off < b.length && win) {
    const n = Math.min(windowSize - winFill, b.length - off);
    win.update(b.subarray(off, off + n));
    winFill += n;
    off += n;
    if (winFill === windowSize) {
      windows.push(win.digest('hex'));
      win = createHash(algorithm);
      winFill = 0;
    }
  }
}

parentPort!.on('message', (m: Msg) => {
  if (m.kind === 'data') {
    const b = view.subarray(m.offset, m.offset + m.length);
    full.update(b);
    if (windowSize > 0) feedWindow(b);
    parentPort!.postMessage({ kind: 'ack', seq: m.seq });
  } else {
    if (win && winFill > 0) windows.push(win.digest('hex'));
    parentPort!.postMessage({ kind: 'done', digest: full.digest('hex'), windows });
  }
});
