import assert from 'node:assert/strict';

/**
 * A deliberately small VQL expression evaluator, enough for the LET statements with which the Velociraptor
 * artifact builds its execve() argv: string and list literals, variables, TRUE/FALSE, `+`, named-argument calls.
 * Anything outside the subset is an error, never a guess, so a change to the artifact that this cannot follow fails
 * the test instead of being evaluated wrongly.
 */
export type Value = string | boolean | Value[] | { [k: string]: Value };
/** Functions the caller provides (e.g. tempfile()); if() is built in because only one branch may run. */
export type VqlFunctions = Record<string, (a: Record<string, Value>) => Value>;
type Tok = { t: 'str' | 'id' | 'p'; v: string };

function tokenize(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) i++;
    else if (c === '"' || c === "'") {
      let v = '';
      i++;
      while (i < s.length && s[i] !== c) {
        if (s[i] === '\\' && c === '"') {
          const e = s[i + 1];
          v += e === 'n' ? '\n' : e === 'r' ? '\r' : e === 't' ? '\t' : (e ?? '');
          i += 2;
        } else v += s[i++];
      }
      if (s[i] !== c) throw new Error('unterminated string');
      i++;
      out.push({ t: 'str', v });
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(s.slice(i))![0];
      out.push({ t: 'id', v: m });
      i += m.length;
    } else if ('[](),=+'.includes(c)) {
      out.push({ t: 'p', v: c });
      i++;
    } else throw new Error(`unsupported VQL character ${JSON.stringify(c)} in ${s}`);
  }
  return out;
}

const truthy = (v: Value | undefined): boolean => (Array.isArray(v) ? v.length > 0 : typeof v === 'string' ? v !== '' : typeof v === 'boolean' ? v : v !== undefined);

type Node = { k: 'bool'; v: boolean } | { k: 'str'; v: string } | { k: 'var'; v: string } | { k: 'list'; items: Node[] } | { k: 'add'; a: Node; b: Node } | { k: 'call'; fn: string; args: Map<string, Node> };

export function parse(src: string): Node {
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const eat = (v: string) => {
    const t = toks[p++];
    if (!t || t.v !== v || t.t === 'str') throw new Error(`expected ${v} at token ${p} of ${src}`);
  };
  const sum = (): Node => {
    let a = atom();
    while (peek()?.t === 'p' && peek()!.v === '+') {
      p++;
      a = { k: 'add', a, b: atom() };
    }
    return a;
  };
  const atom = (): Node => {
    const t = toks[p++];
    if (!t) throw new Error(`unexpected end of ${src}`);
    if (t.t === 'str') return { k: 'str', v: t.v };
    if (t.t === 'p' && t.v === '[') {
      const items: Node[] = [];
      if (peek()?.v !== ']') {
        items.push(sum());
        while (peek()?.v === ',') (p++, items.push(sum()));
      }
      eat(']');
      return { k: 'list', items };
    }
    if (t.t === 'id' && peek()?.v === '(') {
      p++;
      const args = new Map<string, Node>();
      while (peek()?.v !== ')') {
        const k = toks[p++];
        if (k?.t !== 'id') throw new Error(`expected an argument name in ${src}`);
        eat('=');
        args.set(k.v, sum());
        if (peek()?.v === ',') p++;
      }
      eat(')');
      return { k: 'call', fn: t.v, args };
    }
    if (t.t === 'id') return t.v === 'TRUE' || t.v === 'FALSE' ? { k: 'bool', v: t.v === 'TRUE' } : { k: 'var', v: t.v };
    throw new Error(`unexpected ${t.v} in ${src}`);
  };
  const n = sum();
  if (p !== toks.length) throw new Error(`trailing tokens in ${src}`);
  return n;
}

/** VQL semantics for the subset: `+` joins strings or lists; if() evaluates only the branch it takes. */
export function evaluate(n: Node, scope: Map<string, Value>, fns: VqlFunctions): Value {
  switch (n.k) {
    case 'str':
    case 'bool':
      return n.v;
    case 'var':
      if (!scope.has(n.v)) throw new Error(`unknown variable ${n.v}`);
      return scope.get(n.v)!;
    case 'list':
      return n.items.map((x) => evaluate(x, scope, fns));
    case 'add': {
      const a = evaluate(n.a, scope, fns);
      const b = evaluate(n.b, scope, fns);
      if (typeof a === 'string' && typeof b === 'string') return a + b;
      if (Array.isArray(a) && Array.isArray(b)) return [...a, ...b];
      throw new Error(`+ of ${JSON.stringify(a)} and ${JSON.stringify(b)}`);
    }
    case 'call': {
      if (n.fn === 'if') {
        const branch = truthy(evaluate(n.args.get('condition')!, scope, fns)) ? n.args.get('then') : n.args.get('else');
        return branch ? evaluate(branch, scope, fns) : '';
      }
      const f = fns[n.fn];
      if (!f) throw new Error(`function ${n.fn}() is outside the evaluated subset`);
      const args: Record<string, Value> = {};
      for (const [k, v] of n.args) args[k] = evaluate(v, scope, fns);
      return f(args);
    }
  }
}

/** LET NAME <= EXPR statements (one per line, as the artifact writes them) and the final SELECT. */
export function statements(query: string): { lets: Array<{ name: string; expr: string }>; select: string } {
  const lines = query.split('\n');
  const lets: Array<{ name: string; expr: string }> = [];
  let i = 0;
  for (; i < lines.length && !/^SELECT\b/.test(lines[i]!); i++) {
    const l = lines[i]!;
    if (l.trim() === '') continue;
    const m = /^LET ([A-Za-z_][A-Za-z0-9_]*) <= (.+)$/.exec(l);
    assert.ok(m, `unexpected line in the query: ${l}`);
    lets.push({ name: m[1]!, expr: m[2]! });
  }
  return { lets, select: lines.slice(i).join('\n') };
}
