import type { Command } from 'commander';
import { escapeControl } from '../core/escape.js';
import { type AgeIdentity, parseIdentities } from '../crypto/age.js';
import { unpack } from '../pipeline/unpack.js';
import type { GlobalOptions } from './common.js';
import { readText, trustedKeyText } from './delivery-options.js';

export function registerDecrypt(program: Command, globals: () => GlobalOptions, setExit: (n: number) => void): void {
  program
    .command('decrypt')
    .description('undo --recipient (age) and --compress on an evidence file, checking the container against its report\'s hashes on the way out')
    .argument('<input>', 'FILE.lime.age, FILE.lime.gz.age, FILE.lime.gz … (its report FILE….report.json is found beside it)')
    .argument('[output]', 'the container to write (default: INPUT without its layer suffixes), or - for standard output')
    .option('-i, --identity <file>', 'age identity file (age-keygen output); repeatable', (v: string, p: string[]) => [...p, v], [] as string[])
    .option('--report <path>', 'the report to check against (default INPUT.report.json)')
    .option('--trusted-key <pem-or-keyid>', 'also require the report to be signed by this Ed25519 public key; repeatable', (v: string, p: string[]) => [...p, v], [] as string[])
    .addHelpText(
      'after',
      `
Examples:
  memdump decrypt host.lime.age -i analyst.key            # → host.lime, MD5/SHA-1/SHA-256 checked against the report
  memdump decrypt host.lime.gz.age - -i analyst.key       # to standard output (the verdict goes to stderr)
  memdump decrypt host.lime.gz                            # compression only: no identity needed
The output is written 0600 as OUTPUT.partial and published only when the whole input decrypted; a file that fails
to decrypt (altered, truncated, wrong identity) exits 15 and leaves no output (run it again with the right -i).`,
    )
    .action(async (input: string, output: string | undefined, o: { identity: string[]; report?: string; trustedKey: string[] }) => {
      const g = globals();
      const identities: AgeIdentity[] = [];
      for (const f of o.identity) identities.push(...parseIdentities(readText(f, '--identity')));
      const trusted = o.trustedKey.map(trustedKeyText);
      const r = await unpack({ input, ...(output ? { output } : {}), identities, ...(o.report ? { report: o.report } : {}), ...(trusted.length ? { trustedKeys: trusted } : {}) });
      // stdout may carry the container itself
      const say = output === '-' ? process.stderr : process.stdout;
      if (g.json) say.write(JSON.stringify(r) + '\n');
      else {
        const lines = [`${r.verdict}: ${escapeControl(r.input)} → ${escapeControl(r.output)} (${r.layers.join(' + ')} undone, ${r.container.bytes} bytes)`];
        if (r.stored) lines.push(`  stored  sha256 ${r.stored.actual}${r.stored.ok ? '  ok' : `  MISMATCH (report: ${r.stored.expected})`}`);
        for (const [k, v] of Object.entries(r.container.digests)) {
          const c = r.container.checks[k];
          lines.push(`  ${k.padEnd(7)} ${v}${c?.expected ? (c.ok ? '  ok' : `  MISMATCH (report: ${c.expected})`) : ''}`);
        }
        if (r.container.badWindows.length) lines.push(`  ${r.container.badWindows.length} window hash(es) differ, first #${r.container.badWindows[0]}`);
        if (r.signature) lines.push(r.signature.ok ? `  report signature ok: ${r.signature.keyId}${r.signature.trusted ? ' (trusted key)' : ''}` : `  report signature FAILED: ${escapeControl(r.signature.error ?? '')}`);
        if (!r.report) lines.push('  no report found: nothing compared (the hashes above are of the container written)');
        say.write(lines.join('\n') + '\n');
      }
      if (r.verdict === 'MISMATCH') setExit(11);
    });
}
