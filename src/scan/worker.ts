/**
 * A scan worker thread: windows in, finished feature lines out. Everything per byte happens here (text views,
 * scanners, decoding, YARA) so the main thread only reads input and appends lines; lines come back already
 * formatted, with the window's offsets turned into addresses.
 */
import { parentPort } from 'node:worker_threads';
import { MemdumpError } from '../core/errors.js';
import { escapeFeature, formatAddress } from './format.js';
import { selectScanners } from './scanners/index.js';
import type { FeatureKind } from './types.js';
import { scanWindow, type WindowStats } from './window.js';
import { CONDITION_ONLY, compileYara, type YaraRules } from './yara.js';
import type { WorkerInit, WorkerJob, WorkerResult } from './worker-protocol.js';

let config: { scanners: ReturnType<typeof selectScanners>; maxDepth: number; maxDecoded: number; maxDecodedPerWindow: number } | undefined;
let yara: YaraRules | undefined;

/** The window-relative first component of `rel` made absolute; Number arithmetic while it is exact (BigInt per line is slow). */
function address(base: bigint, rel: string, addressing: WorkerJob['addressing']): string {
  const dash = rel.indexOf('-');
  const head = dash < 0 ? rel : rel.slice(0, dash);
  const tail = dash < 0 ? '' : rel.slice(dash);
  if (base < SAFE_BASE) {
    const a = Number(base) + Number(head);
    return (addressing === 'file' ? a.toString(10) : `0x${a.toString(16)}`) + tail;
  }
  return formatAddress(base + BigInt(head), addressing) + tail;
}
const SAFE_BASE = BigInt(Number.MAX_SAFE_INTEGER) - (1n << 32n);

function run(job: WorkerJob): WorkerResult {
  if (!config) throw new Error('scan worker used before init');
  const buf = Buffer.from(job.buf, 0, job.length);
  const base = BigInt(job.base);
  const { hits, stats } = scanWindow(buf, job.ownFrom, job.ownTo, config, Number(base % 4096n));
  const kinds: FeatureKind[] = [];
  const lines: string[] = [];
  const features: string[] = [];
  for (const h of hits) {
    const feature = escapeFeature(h.feature);
    kinds.push(h.kind);
    features.push(feature);
    lines.push(`${address(base, h.rel, job.addressing)}\t${feature}\t${h.context}\n`);
  }
  const yaraOut = (yara?.scan(buf, job.ownFrom, job.ownTo) ?? []).map((m) => ({
    rule: m.rule,
    conditionOnly: m.pattern === CONDITION_ONLY,
    line: `${formatAddress(base + BigInt(m.offset), job.addressing)}\t${m.rule}\t${m.pattern}\t${m.length}\t${escapeFeature(job.label)}\t${escapeFeature(m.data.toString('latin1'))}\n`,
  }));
  return { id: job.id, kinds, lines, features, yara: yaraOut, stats: stats satisfies WindowStats, buf: job.buf };
}

parentPort?.on('message', (msg: { init: WorkerInit } | { job: WorkerJob }) => {
  try {
    if ('init' in msg) {
      const i = msg.init;
      config = { scanners: i.scanners.length === 0 ? [] : selectScanners(i.scanners.join(',')), maxDepth: i.maxDepth, maxDecoded: i.maxDecoded, maxDecodedPerWindow: i.maxDecodedPerWindow };
      yara = i.yara ? compileYara(i.yara.source, i.yara.origin) : undefined;
      parentPort?.postMessage({ ready: true });
      return;
    }
    const r = run(msg.job);
    parentPort?.postMessage({ result: r }, [r.buf]);
  } catch (e) {
    const err = e instanceof MemdumpError ? { code: e.code, message: e.message } : { code: 'E_INTERNAL', message: (e as Error)?.stack ?? String(e) };
    parentPort?.postMessage({ error: err, id: 'job' in msg ? msg.job.id : -1 });
  }
});
