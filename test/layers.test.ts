/**
 * The shipped code stands alone: nothing under src/ reaches a file the package does not
 * ship (bench/, test/, ...), checked on the built files, static and dynamic imports alike.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { filesEndingWith } from './helpers/files.js';

const distSrc = fileURLToPath(new URL('../src', import.meta.url));
const root = fileURLToPath(new URL('../..', import.meta.url));
/** What the package ships: its `files` and package.json. */
const shipped = [...(JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { files: string[] }).files, 'package.json'].map((f) => resolve(root, f));

/** Relative specifiers of `import ... from '…'`, `export ... from '…'`, `import('…')` and `new URL('…', import.meta.url)`. */
export function relativeImports(code: string): string[] {
  const out: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\bnew URL\(\s*)(['"])(\.{1,2}\/[^'"]*)\1/g;
  for (let m = re.exec(code); m !== null; m = re.exec(code)) out.push(m[2]!);
  return out;
}

test('the import scanner sees static, dynamic and URL imports', () => {
  assert.deepEqual(relativeImports("import { a } from './a.js';\nexport * from '../b.js';\nawait import('./c.js');\nimport './d.js';\nnew URL('./peer.js', import.meta.url)"),
    ['./a.js', '../b.js', './c.js', './d.js', './peer.js']);
});

test('no file under dist/src reaches a file the package does not ship (bench/, test/)', () => {
  const files = filesEndingWith(distSrc, '.js');
  assert.ok(files.length > 20, `found the built sources (${files.length})`);
  const outside: string[] = [];
  for (const file of files) {
    for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec);
      if (!shipped.some((s) => target === s || target.startsWith(s + sep))) outside.push(`${relative(distSrc, file)} -> ${spec}`);
    }
  }
  assert.deepEqual(outside, []);
});
