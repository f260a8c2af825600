import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { ContentHasher } from '../../src/core/content-hash.js';
import { openImage } from '../../src/formats/registry.js';
import type { FormatName } from '../../src/formats/types.js';
import { contentHash } from '../../src/pipeline/info.js';
import { ImageSource } from '../../src/sources/image.js';
import { sparseImage } from '../fixtures/generate.js';
import { tempDir } from '../helpers/cli.js';
import { writeWith } from '../helpers/job.js';
import { MemorySource } from '../helpers/memory-source.js';
import { createHash } from 'node:crypto';

const FORMATS: FormatName[] = ['lime', 'padded', 'raw', 'elf', 'avml'];
const NOTE = { name: 'VMCOREINFO', type: 0, desc: Buffer.from('OSRELEASE=6.1.0\n') };

function expectedContent(img: ReturnType<typeof sparseImage>): string {
  const h = new ContentHasher(img.runs);
  img.runs.forEach((r, i) => h.update(r.start, img.data[i]!));
  return h.digest();
}

test('read(write(x)) == x for every format, and the content hash survives any chain of conversions', async (t) => {
  const dir = tempDir(t);
  let n = 0;
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 1_000_000 }), fc.array(fc.constantFrom(...FORMATS), { minLength: 1, maxLength: 3 }), async (seed, chain) => {
      const x = sparseImage(seed, { maxRuns: 5, maxRunBytes: 150_000 });
      const want = expectedContent(x);
      let source: MemorySource | ImageSource = new MemorySource(x, [NOTE]);
      const opened = [];
      for (const f of chain) {
        const { path, result } = await writeWith(source, f, dir, `c${n++}.${f}`);
        assert.equal(result.report.status, 'COMPLETE');
        assert.equal(result.report.contentSha256, want, `content hash written by ${f}`);
        // the report's digest is of the file as it lies on disk
        assert.equal(result.report.hashes?.digests.sha256, createHash('sha256').update(readFileSync(path)).digest('hex'));
        const img = await openImage(path);
        opened.push(img);
        assert.equal(img.format, f);
        // runs may be split differently (AVML records) but cover exactly the same bytes
        assert.equal(await contentHash(img), want);
        for (let i = 0; i < x.runs.length; i++) assert.deepEqual(await img.read(x.runs[i]!.start, x.data[i]!.length), x.data[i], `run ${i} after ${f}`);
        if (f !== 'padded' || chain.length === 1) {
          // padded and raw keep notes in the sidecar; ELF in PT_NOTE; LiME and AVML have no place for them
          if (f === 'elf' || f === 'padded' || f === 'raw') assert.ok(img.notes.some((nt) => nt.name === 'VMCOREINFO') || !source.notes.length);
        }
        source = new ImageSource(img, path);
      }
      for (const i of opened) await i.close();
    }),
    { numRuns: 60 },
  );
});
