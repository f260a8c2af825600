import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export interface AnalystKeys {
  /** age identity file (age-keygen) and its age1… recipient. */
  identity: string;
  recipient: string;
  /** Ed25519 signing key and its public half (openssl genpkey), and another key's public half. */
  sign: string;
  signPub: string;
  otherPub: string;
}

/** The analyst's keys, made by the reference tools themselves (age-keygen, openssl): the oracles make the inputs. */
export function analystKeys(dir: string): AnalystKeys {
  const identity = join(dir, 'analyst.key');
  execFileSync('age-keygen', ['-o', identity], { stdio: 'pipe' });
  const recipient = execFileSync('age-keygen', ['-y', identity]).toString().trim();
  const ed25519 = (name: string) => {
    const key = join(dir, `${name}.pem`);
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', key]);
    execFileSync('openssl', ['pkey', '-in', key, '-pubout', '-out', join(dir, `${name}.pub`)]);
    return { key, pub: join(dir, `${name}.pub`) };
  };
  const sign = ed25519('sign');
  return { identity, recipient, sign: sign.key, signPub: sign.pub, otherPub: ed25519('other').pub };
}
