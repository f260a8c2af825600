import {
  type AgeIdentity,
  CHUNK_SIZE,
  NONCE_SIZE,
  type Stanza,
  TAG_SIZE,
  VERSION_LINE,
  b64decode,
  decryptError,
  openChunk,
  payloadKey,
  unwrapFileKey,
  verifyHeaderMac,
} from './age.js';

/**
 * Streaming age v1 decryption. The header is parsed line by line as bytes arrive, under fixed caps, so a hostile
 * file can make us hold at most MAX_HEADER_BYTES of header and one sealed chunk of payload.
 */

/** Longest header line: plugin and post-quantum stanzas carry ~1.5 KB arguments; nothing legitimate nears this. */
export const MAX_LINE_BYTES = 8192;
export const MAX_STANZAS = 1024;
export const MAX_HEADER_BYTES = 1 << 20;
const SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE;
const ARG = /^[\x21-\x7e]+$/;
const NEWLINE = Buffer.from('\n');
const VERSION_PREFIX = 'age-encryption.org/';

export interface ParsedHeader {
  readonly stanzas: readonly Stanza[];
  /** Header bytes up to and including "---": what the MAC covers. */
  readonly macInput: Buffer;
  readonly mac: Buffer;
}

/**
 * Incremental header parser. push() returns the number of bytes of `buf` that belonged to the header once the
 * MAC line is complete (the rest is payload), or undefined while more is needed.
 */
export class HeaderParser {
  private readonly raw: Buffer[] = [];
  private rawBytes = 0;
  private line: Buffer[] = [];
  private lineBytes = 0;
  private state: 'version' | 'stanza' | 'body' | 'done' = 'version';
  private args: string[] = [];
  private body = '';
  private readonly stanzas: Stanza[] = [];
  private result: ParsedHeader | undefined;

  get header(): ParsedHeader | undefined {
    return this.result;
  }

  push(buf: Buffer): number | undefined {
    let off = 0;
    while (off < buf.length && this.state !== 'done') {
      const nl = buf.indexOf(0x0a, off);
      const end = nl < 0 ? buf.length : nl;
      if (this.lineBytes + (end - off) > MAX_LINE_BYTES) throw decryptError(`age header line longer than ${MAX_LINE_BYTES} bytes (not an age file, or damaged)`);
      if (this.rawBytes + (end - off) + 1 > MAX_HEADER_BYTES) throw decryptError(`age header longer than ${MAX_HEADER_BYTES} bytes`);
      // copied: the caller may reuse its buffer once push() returns
      const piece = Buffer.from(buf.subarray(off, end));
      this.line.push(piece);
      this.lineBytes += piece.length;
      if (this.state === 'version' && this.lineBytes > 0) this.earlyVersionCheck();
      this.raw.push(piece);
      this.rawBytes += piece.length;
      if (nl < 0) return undefined;
      this.raw.push(NEWLINE);
      this.rawBytes += 1;
      off = nl + 1;
      const text = Buffer.concat(this.line).toString('latin1');
      this.line = [];
      this.lineBytes = 0;
      this.onLine(text);
    }
    return this.state === 'done' ? off : undefined;
  }

  /** Fail on the first bytes of something that is not age at all, instead of waiting for a newline. */
  private earlyVersionCheck(): void {
    const head = Buffer.concat(this.line).subarray(0, VERSION_PREFIX.length).toString('latin1');
    if (!VERSION_PREFIX.startsWith(head)) {
      if (head.startsWith('-----BEGIN'.slice(0, head.length)) && head.length >= 5) {
        throw decryptError('armored (PEM) age files are not supported: decode with `age -d` or strip the armor first');
      }
      throw decryptError('not an age v1 file (the header does not start with "age-encryption.org/v1")');
    }
  }

  private onLine(text: string): void {
    switch (this.state) {
      case 'version':
        if (text !== VERSION_LINE) throw decryptError(`unsupported age version line (only ${VERSION_LINE} is supported)`);
        this.state = 'stanza';
        return;
      case 'stanza':
        if (text.startsWith('-> ')) {
          if (this.stanzas.length >= MAX_STANZAS) throw decryptError(`age header has more than ${MAX_STANZAS} recipient stanzas`);
          const args = text.slice(3).split(' ');
          if (!args.every((a) => ARG.test(a))) throw decryptError('malformed recipient stanza in the age header');
          this.args = args;
          this.body = '';
          this.state = 'body';
          return;
        }
        if (text.startsWith('---')) return this.onMac(text);
        throw decryptError('malformed age header (expected a recipient stanza or the MAC line)');
      case 'body': {
        if (text.length > 64) throw decryptError('malformed age header (stanza body line longer than 64 columns)');
        this.body += text;
        if (text.length === 64) return;
        const body = b64decode(this.body);
        if (!body) throw decryptError('malformed age header (stanza body is not canonical base64)');
        this.stanzas.push({ args: this.args, body });
        this.state = 'stanza';
        return;
      }
      case 'done':
        return;
    }
  }

  private onMac(text: string): void {
    if (this.stanzas.length === 0) throw decryptError('malformed age header (no recipient stanza)');
    const mac = text.startsWith('--- ') && text.length === 4 + 43 ? b64decode(text.slice(4)) : undefined;
    if (!mac || mac.length !== 32) throw decryptError('malformed age header (bad MAC line)');
    const all = Buffer.concat(this.raw);
    // the MAC covers everything up to "---", not the space, the MAC or the newline after it
    const macInput = all.subarray(0, all.length - text.length - 1 + 3);
    this.result = { stanzas: this.stanzas, macInput, mac };
    this.state = 'done';
  }
}

/** The file key, after checking every identity against every stanza and the header MAC against it. */
function fileKeyFor(header: ParsedHeader, identities: readonly AgeIdentity[]): Buffer {
  if (header.stanzas.some((s) => s.args[0] === 'scrypt')) {
    throw decryptError('passphrase-encrypted (scrypt) age files are not supported: decrypt with `age -d`');
  }
  for (const id of identities) {
    for (const s of header.stanzas) {
      const key = unwrapFileKey(s, id);
      if (!key) continue;
      if (!verifyHeaderMac(key, header.macInput, header.mac)) throw decryptError('age header MAC mismatch: the header was altered');
      return key;
    }
  }
  const x = header.stanzas.filter((s) => s.args[0] === 'X25519').length;
  throw decryptError(`no identity matches any of the ${header.stanzas.length} recipient stanza(s) (${x} X25519)`, { stanzas: header.stanzas.length });
}

export async function decryptAge(
  input: AsyncIterable<Buffer>,
  identities: readonly AgeIdentity[],
  out: (plain: Buffer) => Promise<void>,
): Promise<{ plaintextBytes: bigint }> {
  const parser = new HeaderParser();
  let fileKey: Buffer | undefined;
  let key: Buffer | undefined; // payload key, once the nonce is in
  const nonce = Buffer.alloc(NONCE_SIZE);
  let nonceFill = 0;
  const sealed = Buffer.allocUnsafe(SEALED_CHUNK);
  let fill = 0;
  let counter = 0;
  let plaintextBytes = 0n;

  const openFull = async (key: Buffer, chunk: Buffer): Promise<void> => {
    let plain = openChunk(key, counter, false, chunk);
    if (!plain) {
      plain = openChunk(key, counter, true, chunk);
      throw decryptError(
        plain ? `age payload has data after the last chunk (chunk ${counter})` : `age payload chunk ${counter} failed authentication (altered)`,
        { chunk: counter },
      );
    }
    counter++;
    fill = 0;
    plaintextBytes += BigInt(plain.length);
    await out(plain);
  };

  for await (const piece of input) {
    let off = 0;
    if (!fileKey) {
      const used = parser.push(piece);
      if (used === undefined) continue;
      off = used;
      const header = parser.header;
      if (!header) throw decryptError('age header incomplete');
      fileKey = fileKeyFor(header, identities);
    }
    if (nonceFill < NONCE_SIZE) {
      const n = Math.min(NONCE_SIZE - nonceFill, piece.length - off);
      piece.copy(nonce, nonceFill, off, off + n);
      nonceFill += n;
      off += n;
      if (nonceFill < NONCE_SIZE) continue;
      key = payloadKey(fileKey, nonce);
    }
    while (key && off < piece.length) {
      if (fill === SEALED_CHUNK) await openFull(key, sealed);
      // whole chunks with more bytes behind them open in place, without the copy
      if (fill === 0 && piece.length - off > SEALED_CHUNK) {
        await openFull(key, piece.subarray(off, off + SEALED_CHUNK));
        off += SEALED_CHUNK;
        continue;
      }
      const n = Math.min(SEALED_CHUNK - fill, piece.length - off);
      piece.copy(sealed, fill, off, off + n);
      fill += n;
      off += n;
    }
  }

  if (!fileKey) throw decryptError('age file truncated inside the header');
  if (!key) throw decryptError('age file truncated: payload nonce missing');
  if (fill < TAG_SIZE) throw decryptError(fill === 0 ? 'age file truncated: no payload chunk' : `age file truncated inside chunk ${counter}`, { chunk: counter });
  const last = sealed.subarray(0, fill);
  const plain = openChunk(key, counter, true, last);
  if (!plain) {
    const msg = openChunk(key, counter, false, last) ? `age file truncated: missing last chunk (the stream ends after chunk ${counter}, which is not flagged last)` : `age payload chunk ${counter} failed authentication (altered or truncated)`;
    throw decryptError(msg, { chunk: counter });
  }
  if (plain.length === 0 && counter > 0) throw decryptError('age payload ends with an empty last chunk after data (not a valid age file)');
  plaintextBytes += BigInt(plain.length);
  if (plain.length > 0) await out(plain);
  return { plaintextBytes };
}
