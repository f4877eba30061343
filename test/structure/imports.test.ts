import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { filesEndingWith } from '../helpers/files.js';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const distSrc = join(root, 'dist', 'src');

/** Relative specifiers of the run-time imports and re-exports of a built module (type-only ones are erased). */
export function runtimeImports(source: string): string[] {
  const out: string[] = [];
  const re = /^\s*(?:import|export)\s+(?:[^'";]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;
  for (let m = re.exec(source); m !== null; m = re.exec(source)) out.push(m[1]!);
  return out;
}

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const file of filesEndingWith(distSrc, '.js')) {
    const deps = runtimeImports(readFileSync(file, 'utf8')).map((s) => resolve(dirname(file), s));
    g.set(file, deps);
  }
  return g;
}

/** The first cycle found by a depth-first walk, as a list of files, or undefined. */
function findCycle(g: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, number>(); // 1 on the stack, 2 done
  const stack: string[] = [];
  const visit = (n: string): string[] | undefined => {
    state.set(n, 1);
    stack.push(n);
    for (const d of g.get(n) ?? []) {
      const s = state.get(d);
      if (s === 1) return [...stack.slice(stack.indexOf(d)), d];
      if (s === undefined) {
        const c = visit(d);
        if (c !== undefined) return c;
      }
    }
    stack.pop();
    state.set(n, 2);
    return undefined;
  };
  for (const n of g.keys()) {
    if (state.has(n)) continue;
    const c = visit(n);
    if (c !== undefined) return c;
  }
  return undefined;
}

test('the import walker sees run-time imports and re-exports, not comments or strings', () => {
  const src = [
    "import { a } from './a.js';",
    "import './side.js';",
    "export { b } from '../b.js';",
    "export * from './c.js';",
    "import * as net from 'node:net';",
    "const s = 'import x from \"./no.js\"';",
  ].join('\n');
  assert.deepEqual(runtimeImports(src), ['./a.js', './side.js', '../b.js', './c.js']);
  const g = new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]);
  assert.deepEqual(findCycle(g), ['a', 'b', 'c', 'a'], 'the walk finds a cycle');
  assert.equal(findCycle(new Map([['a', ['b']], ['b', []]])), undefined);
});

test('no run-time import cycle in dist/src', () => {
  const g = graph();
  assert.ok(g.size > 20, `the built modules (${g.size})`);
  const cycle = findCycle(g);
  assert.equal(cycle?.map((f) => relative(distSrc, f)).join(' -> '), undefined, 'a run-time import cycle');
});

test('run-time imports run one way: mux, parsers, bpf and errors never import the layers above them', () => {
  const below = ['mux', 'parsers', 'bpf'];
  const above = ['worker', 'helpers', 'stats', 'cli', 'index.js'];
  const bad: string[] = [];
  for (const [file, deps] of graph()) {
    const from = relative(distSrc, file);
    const layer = from.split('/')[0]!;
    const low = below.includes(layer) || from === 'errors.js' || from === 'diagnostics.js';
    if (!low) continue;
    for (const d of deps) {
      const to = relative(distSrc, d);
      if (above.includes(to.split('/')[0]!)) bad.push(`${from} -> ${to}`);
    }
  }
  assert.deepEqual(bad, []);
});
