import type { Command } from 'commander';
import { escapeControl } from '../core/escape.js';
import type { FormatName } from '../formats/types.js';
import { verify } from '../pipeline/verify.js';
import { type GlobalOptions, parseSize, progressReporter } from './common.js';
import { trustedKeyText } from './delivery-options.js';

export function registerVerify(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  program
    .command('verify')
    .description('recompute the hashes and window hashes of a file (or segment set) and compare them with its report; E01 files also against the digests stored inside')
    .argument('<file>')
    .option('--report <path>', 'the report to check against (default FILE.report.json)')
    .option('--digests <list>', 'without a report: digests to compute', 'md5,sha1,sha256')
    .option('--hash-window <size>', 'without a report: window size', '64M')
    .option('--input-format <name>', 'format used to name the physical address of a bad window')
    .option('--trusted-key <pem-or-keyid>', 'require the report to be signed (REPORT.json.sig) by this Ed25519 public key (PEM file or sha256:… key id); repeatable', (v: string, p: string[]) => [...p, v], [] as string[])
    .addHelpText('after', '\nExamples:\n  memdump verify host.lime\n  memdump verify host.E01                  # every segment, the report, and the MD5/SHA-1 stored in the E01\n  memdump verify --json copy-of-host.lime --report host.lime.report.json\n  memdump verify host.lime.age --trusted-key analyst-sign.pub   # ciphertext as stored + the report\'s signature')
    .action(async (file: string, o: { report?: string; digests: string; hashWindow: string; inputFormat?: string; trustedKey: string[] }) => {
      const g = globals();
      const progress = progressReporter(g, 'verify');
      const r = await verify(file, {
        ...(o.report ? { report: o.report } : {}),
        digests: o.digests,
        windowSize: parseSize(o.hashWindow, '--hash-window'),
        ...(o.inputFormat ? { inputFormat: o.inputFormat as FormatName } : {}),
        ...(o.trustedKey.length ? { trustedKeys: o.trustedKey.map(trustedKeyText) } : {}),
        ...(progress ? { onProgress: progress } : {}),
      });
      if (g.json) process.stdout.write(JSON.stringify(r) + '\n');
      else {
        const against = r.report ? ` against ${escapeControl(r.report)}` : r.e01 ? ' against the digests stored in the E01 (no report found)' : ' (no report found: hashes shown, nothing compared)';
        const out = [`${r.verdict}: ${escapeControl(r.file)}${against}`];
        if (r.files.length > 1) out.push(`  ${r.files.length} segment files hashed as one stream: ${r.files.map((f) => escapeControl(f)).join(', ')}`);
        if (r.reportStatus && r.reportStatus !== 'COMPLETE') out.push(`  the report says the acquisition was ${r.reportStatus}`);
        out.push(`  length  ${r.length.actual}${r.length.ok ? '' : ` (report: ${r.length.expected})`}`);
        for (const [k, c] of Object.entries(r.digests)) out.push(`  ${k.padEnd(7)} ${c.actual}${c.ok ? (c.expected ? '  ok' : '') : `  MISMATCH (report: ${c.expected})`}`);
        if (r.stored) out.push(`  stored as ${r.stored.layers.join(' + ')}: SHA-256 of the file as written ${r.stored.ok ? 'ok' : 'MISMATCH'}; the container hashes are checked by memdump decrypt`);
        else out.push(`  windows ${r.windows.count} × ${r.windows.size} bytes, ${r.windows.bad.length} bad`);
        if (r.signature) out.push(r.signature.ok ? `  signature ok: ${r.signature.keyId}${r.signature.trusted ? ' (trusted key)' : ' (integrity only: no --trusted-key given)'}` : `  signature FAILED: ${escapeControl(r.signature.error ?? '')}`);
        if (r.e01) {
          const e = r.e01;
          const line = (k: 'md5' | 'sha1') => {
            const got = e.computed?.[k];
            const want = [e.stored[k] && `E01 ${e.stored[k] === got ? 'ok' : `MISMATCH (stored ${e.stored[k]})`}`, e.report?.[k] && `report ${e.report[k] === got ? 'ok' : `MISMATCH (report ${e.report[k]})`}`].filter(Boolean).join(', ');
            out.push(`  media ${k.padEnd(4)} ${got ?? '—'}  ${want}`);
          };
          line('md5');
          line('sha1');
          if (e.error) out.push(`  media could not be read whole: ${escapeControl(e.error)}`);
          for (const p of e.problems) out.push(`  warning: ${escapeControl(p)}`);
        }
        if (r.firstBadWindow) {
          const w = r.firstBadWindow;
          out.push(`  first bad window #${w.index}: file offsets ${w.offset}-${w.end}${w.physicalAddress ? `, physical memory from ${w.physicalAddress}` : ''}`);
        }
        process.stdout.write(out.join('\n') + '\n');
      }
      if (r.verdict === 'MISMATCH') setExit(11);
    });
}
