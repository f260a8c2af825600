// Worker side of the E01 chunk pool: encodes one batch per message, in place, and sends the buffer back.
import { parentPort, workerData } from 'node:worker_threads';
import { encodeBatchInPlace, type BatchRequest, type BatchResult, type EncodeOptions } from './e01-compress.js';

const options = workerData as EncodeOptions;

parentPort!.on('message', (m: BatchRequest) => {
  const r = encodeBatchInPlace(Buffer.from(m.buf), m.lengths, options);
  const res: BatchResult = { id: m.id, buf: m.buf, lengths: r.lengths, compressed: r.compressed };
  parentPort!.postMessage(res, [m.buf]);
});
