/**
 * The layering ARCHITECTURE.md describes, checked on the source: which layer
 * may import which, no import cycles, and `src/index.ts` as the only public
 * door of the core.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Relative imports that exist at run time (type-only imports are erased). */
function runtimeImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\s+(type\s+)?[^;]*?from\s+'(\.[^']+)'/gms)) {
    if (m[1] !== undefined) continue;
    out.push(resolve(dirname(file), m[2]!.replace(/\.js$/, '.ts')));
  }
  return out;
}

const files = sources(SRC);
const layer = (f: string): string => {
  const r = relative(SRC, f);
  return r.includes('/') ? r.slice(0, r.indexOf('/')) : r.replace(/\.ts$/, '');
};

/** What each layer may import at run time (besides itself). */
const ALLOWED: Record<string, string[]> = {
  protocol: [],
  transport: ['protocol'],
  pubsub: ['protocol'],
  diagnostics: [],
  options: [],
  server: ['protocol', 'transport', 'pubsub', 'diagnostics', 'options'],
  client: ['protocol', 'transport', 'diagnostics', 'options'],
  index: ['protocol', 'transport', 'pubsub', 'server', 'client', 'diagnostics', 'options'],
};

describe('Architecture', () => {
  it('each core layer imports only the layers below it', () => {
    const wrong: string[] = [];
    for (const f of files) {
      const from = layer(f);
      const allowed = ALLOWED[from];
      if (allowed === undefined) continue; // cli, redis, channels, ...: checked below
      for (const dep of runtimeImports(f)) {
        const to = layer(dep);
        if (to !== from && !allowed.includes(to)) wrong.push(`${relative(SRC, f)} → ${relative(SRC, dep)}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('the layers outside the core reach it through src/index.ts (or the pubsub seam) only', () => {
    const wrong: string[] = [];
    for (const f of files) {
      if (ALLOWED[layer(f)] !== undefined) continue;
      for (const dep of runtimeImports(f)) {
        const to = layer(dep);
        if (to === layer(f) || to === 'index' || to === 'pubsub' || ALLOWED[to] === undefined) continue;
        wrong.push(`${relative(SRC, f)} → ${relative(SRC, dep)}`);
      }
    }
    assert.deepEqual(wrong, []);
  });

  it('there are no import cycles', () => {
    const graph = new Map(files.map((f) => [f, runtimeImports(f)]));
    const state = new Map<string, 'visiting' | 'done'>();
    const cycles: string[] = [];
    const visit = (f: string, path: string[]): void => {
      const s = state.get(f);
      if (s === 'done') return;
      if (s === 'visiting') {
        cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(' → '));
        return;
      }
      state.set(f, 'visiting');
      for (const d of graph.get(f) ?? []) visit(d, [...path, f]);
      state.set(f, 'done');
    };
    for (const f of files) visit(f, []);
    assert.deepEqual(cycles, []);
  });

  it('no source file is over 450 lines (one idea per file)', () => {
    const big = files.map((f) => [relative(SRC, f), readFileSync(f, 'utf8').split('\n').length] as const).filter(([, n]) => n > 450);
    assert.deepEqual(big, []);
  });

  it('the library never prints: no console calls outside the CLI', () => {
    // Code lines only: a doc comment's example may print.
    const code = (f: string): string => readFileSync(f, 'utf8').split('\n').filter((l) => !/^\s*(\*|\/\/)/.test(l)).join('\n');
    const printing = files.filter((f) => layer(f) !== 'cli' && /\bconsole\.(log|error|warn|info)\(/.test(code(f)));
    assert.deepEqual(printing.map((f) => relative(SRC, f)), []);
  });
});
