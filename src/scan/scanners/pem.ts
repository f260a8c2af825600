/**
 * PEM private keys and certificates (RFC 7468): "-----BEGIN <label>-----", base64 lines, "-----END <label>-----"
 * with the same label. Private-key labels: PRIVATE KEY (PKCS#8), ENCRYPTED PRIVATE KEY, and the traditional
 * RSA/EC/DSA PRIVATE KEY, which may carry Proc-Type/DEK-Info headers when encrypted with a passphrase. OPENSSH
 * PRIVATE KEY is not PEM-encoded DER and belongs to the ssh scanner.
 *
 * Validation: the body must be canonical base64 of one DER SEQUENCE that fills it exactly (all of PKCS#1, SEC1,
 * PKCS#8 and X.509 are), except behind DEK-Info headers, where the body is ciphertext and only the base64 and the
 * block structure are checked. An empty BEGIN/END pair is a template, not a key.
 *
 * TRUSTED CERTIFICATE (OpenSSL's X509_AUX form: the certificate's SEQUENCE followed by a SEQUENCE of trust
 * settings) is a pem-certificate too.
 *
 * The feature is the text from BEGIN through END exactly as found: "\n" or "\r\n" line ends, or escaped ones
 * (backslash-n, as in a JSON string: "-----BEGIN PRIVATE KEY-----\\nMC4C…\\n-----END PRIVATE KEY-----"), and any
 * common indent of the lines after BEGIN (a YAML block) — see readPemBlock. Only the base64 is checked.
 */
import type { FeatureKind, Scanner } from '../types.js';
import { MAX_FEATURE_LENGTH } from '../types.js';
import { derSequenceEnd, isDerSequence, readPemBlock, strictBase64 } from './secret-common.js';

const BEGIN = /-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY|(?:TRUSTED )?CERTIFICATE)-----/y;

export const pemScanner: Scanner = {
  name: 'pem',
  kinds: ['pem-private-key', 'pem-certificate'],
  description: 'PEM private keys (PKCS#8, encrypted PKCS#8, RSA/EC/DSA) and X.509 certificates (also TRUSTED, in JSON strings, indented), BEGIN through END',
  scan(text, emit) {
    for (let i = text.indexOf('-----BEGIN '); i >= 0; i = text.indexOf('-----BEGIN ', i + 11)) {
      BEGIN.lastIndex = i;
      const m = BEGIN.exec(text);
      if (m === null) continue;
      const label = m[1] ?? '';
      const block = readPemBlock(text, i + m[0].length, label, MAX_FEATURE_LENGTH - m[0].length);
      if (block === undefined) continue;
      const der = strictBase64(block.body);
      if (der === undefined) continue;
      const encrypted = block.headers;
      const cert = label.endsWith('CERTIFICATE');
      if (encrypted && (cert || label === 'PRIVATE KEY' || label === 'ENCRYPTED PRIVATE KEY')) continue;
      if (label === 'TRUSTED CERTIFICATE') {
        const c = derSequenceEnd(der, 0);
        if (c < 0 || (c !== der.length && derSequenceEnd(der, c) !== der.length)) continue;
      } else if (!encrypted && !isDerSequence(der)) continue;
      const kind: FeatureKind = cert ? 'pem-certificate' : 'pem-private-key';
      emit(kind, i, block.end);
      i = block.end - 11;
    }
  },
};
