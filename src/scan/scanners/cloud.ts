/**
 * Cloud credentials by shape:
 *  - AWS access key ids: a four-letter prefix naming the principal type (AKIA long-term user key, ASIA STS
 *    session key, AGPA group, AIDA user, AROA role, ANPA/ANVA managed policy/version, AIPA instance profile, ABIA
 *    STS service bearer token, ACCA context-specific credential) and 16
 *    characters of RFC 4648 base32, as a whole word. The 40-character secret that usually follows has no shape of
 *    its own and is left to context (the corpus counts it as context of the key id; a key=secret rule for
 *    aws_secret_access_key would report it as password-assignment inside every planted aws snippet).
 *  - Google API keys: "AIza" and 35 characters of [A-Za-z0-9_-], as a whole token.
 *  - Azure storage account keys: the AccountKey= value of a connection string, 88 base64 characters ending "=="
 *    (64 random bytes). The feature is the 88 characters only. Bare keys outside a connection string have no
 *    anchor and are not looked for.
 */
import type { Scanner } from '../types.js';
import { emitInOrder, type Hit, isAlnum, isB64, strictBase64 } from './secret-common.js';

const AWS = /A(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA|BIA|CCA)[A-Z2-7]{16}/g;
const GCP = /AIza[A-Za-z0-9_-]{35}/y;
const AZURE = /[A-Za-z0-9+/]{86}==/y;
const ACCOUNT_KEY = 'AccountKey=';

const isToken = (c: number): boolean => isAlnum(c) || c === 45 || c === 95;

export const cloudScanner: Scanner = {
  name: 'cloud',
  kinds: ['aws-access-key', 'gcp-api-key', 'azure-storage-key'],
  description: 'cloud credentials: AWS access key ids, Google API keys, Azure storage account keys',
  scan(text, emit) {
    const hits: Hit[] = [];
    AWS.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = AWS.exec(text)) !== null) {
      const end = m.index + 20;
      if (isAlnum(text.charCodeAt(m.index - 1)) || isAlnum(text.charCodeAt(end))) {
        AWS.lastIndex = m.index + 1;
        continue;
      }
      hits.push({ kind: 'aws-access-key', start: m.index, end });
    }
    for (let i = text.indexOf('AIza'); i >= 0; i = text.indexOf('AIza', i + 4)) {
      if (isToken(text.charCodeAt(i - 1))) continue;
      GCP.lastIndex = i;
      if (GCP.exec(text) === null || isToken(text.charCodeAt(i + 39))) continue;
      hits.push({ kind: 'gcp-api-key', start: i, end: i + 39 });
    }
    for (let i = text.indexOf(ACCOUNT_KEY); i >= 0; i = text.indexOf(ACCOUNT_KEY, i + ACCOUNT_KEY.length)) {
      const at = i + ACCOUNT_KEY.length;
      AZURE.lastIndex = at;
      const k = AZURE.exec(text);
      if (k === null || isB64(text.charCodeAt(at + 88)) || text.charCodeAt(at + 88) === 61) continue;
      const key = strictBase64(k[0]);
      if (key === undefined || key.length !== 64) continue;
      hits.push({ kind: 'azure-storage-key', start: at, end: at + 88 });
    }
    emitInOrder(hits, emit);
  },
};
