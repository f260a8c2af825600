/**
 * Every scanner, in the order their features are found within one position (the order of FEATURE_KINDS files is
 * independent of this). Adding a scanner = one file + its test + one line here.
 */
import { MemdumpError } from '../../core/errors.js';
import type { FeatureKind, Scanner } from '../types.js';
import { bannerScanner } from './banner.js';
import { basicAuthScanner } from './basic-auth.js';
import { ccnScanner } from './ccn.js';
import { cloudScanner } from './cloud.js';
import { domainScanner } from './domain.js';
import { emailScanner } from './email.js';
import { historyScanner } from './history.js';
import { ipv4Scanner } from './ipv4.js';
import { ipv6Scanner } from './ipv6.js';
import { jwtScanner } from './jwt.js';
import { macScanner } from './mac.js';
import { passwordScanner } from './password.js';
import { pemScanner } from './pem.js';
import { phoneScanner } from './phone.js';
import { sshScanner } from './ssh.js';
import { urlScanner } from './url.js';

export const SCANNERS: readonly Scanner[] = [
  emailScanner,
  urlScanner,
  domainScanner,
  ipv4Scanner,
  ipv6Scanner,
  macScanner,
  ccnScanner,
  phoneScanner,
  jwtScanner,
  pemScanner,
  sshScanner,
  cloudScanner,
  passwordScanner,
  basicAuthScanner,
  historyScanner,
  bannerScanner,
];

export const SCANNER_NAMES = SCANNERS.map((s) => s.name);

/** Scanners by name ("all", or a comma list; "-name" removes one from the set so far). */
export function selectScanners(spec: string | undefined): Scanner[] {
  if (spec === undefined || spec === 'all') return [...SCANNERS];
  const items = spec.split(',').map((s) => s.trim()).filter((s) => s !== '');
  // "-ccn,-phone" means everything but those
  const chosen = new Set<Scanner>(items[0]?.startsWith('-') ? SCANNERS : []);
  for (const raw of items) {
    const remove = raw.startsWith('-');
    const name = remove ? raw.slice(1) : raw;
    const list = name === 'all' ? SCANNERS : SCANNERS.filter((s) => s.name === name || s.kinds.includes(name as FeatureKind));
    if (list.length === 0) throw new MemdumpError('E_USAGE', `unknown scanner ${JSON.stringify(name)}: choose from ${SCANNER_NAMES.join(', ')} (or a feature kind)`);
    for (const s of list) {
      if (remove) chosen.delete(s);
      else chosen.add(s);
    }
  }
  return SCANNERS.filter((s) => chosen.has(s));
}
