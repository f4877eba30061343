/**
 * Every behavioural rule of the KCM semantics is cited by a test name (names start with
 * the rule IDs they check: '[S-2][S-1] burst affinity ...'). The rule IDs are listed
 * here, taken from the specification's numbered rules (§1–§10; the B-* regressions and
 * X-* decisions are cited too but not counted), so this check needs nothing outside the
 * repository. It scans the compiled test files beside this one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RULES = `
  O-1 O-2 O-3 O-4 O-5 O-6 O-7 O-8 O-9
  A-1 A-2 A-3 A-4 A-5 A-6 A-7 A-8 A-9 A-10 A-11 A-12 A-13 A-14
  U-1 U-2 U-3 U-4 U-5 U-6
  T-1 T-2 T-3 T-4 T-5 T-6 T-7 T-8 T-9 T-10 T-11 T-12 T-13 T-14 T-15 T-16 T-17 T-18 T-19 T-20 T-21
  P-1 P-2 P-3 P-4 P-5 P-6 P-7 P-8 P-9 P-10
  S-1 S-2 S-3 S-4 S-5 S-6
  R-1 R-2 R-3 R-4 R-5 R-6 R-7 R-8 R-9 R-10 R-11
  D-1 D-2 D-3 D-4 D-5 D-6 D-7
  C-1 C-2
  E-1 E-2 E-3 E-4 E-5 E-6 E-7
  ST-1 ST-2 ST-3 ST-4 ST-5 ST-6 ST-7 ST-8
  F-1 F-2 F-3 F-4 F-5 F-6 F-7 F-8
`.trim().split(/\s+/);

/** At least this many rules must be cited; raise it, never lower it. */
const MINIMUM = 100;

const testRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const self = fileURLToPath(import.meta.url);

function testFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...testFiles(p));
    else if (/\.test\.[cm]?js$/.test(e.name) && p !== self) out.push(p);
  }
  return out;
}

/** The names given to test(), it() and describe() in a source text (string and template literals). */
export function testNames(source: string): string[] {
  const names: string[] = [];
  const call = /\b(?:test|it|describe|suite)\s*\(\s*(['"`])((?:\\.|(?!\1)[^\\])*)\1/g;
  for (const m of source.matchAll(call)) names.push(m[2]!);
  return names;
}

/** The rule IDs a test name cites, wherever they stand in it. */
export function citedRules(name: string): string[] {
  const known = new Set(RULES);
  return [...name.matchAll(/\b([A-Z]{1,2}-\d+)(?!\d)/g)].map((m) => m[1]!).filter((id) => known.has(id));
}

test('the rule list is the 109 numbered rules, each once', () => {
  assert.equal(RULES.length, 109);
  assert.equal(new Set(RULES).size, RULES.length);
  for (const id of RULES) assert.match(id, /^(O|A|U|T|P|S|R|D|C|E|ST|F)-\d+$/);
});

test('test names are found and their rule IDs read, wherever they stand', () => {
  const src = "test('[S-2][S-1] burst affinity', () => {});\n  test(`[T-1][T-1c] ${type}: eor`, x);\n"
    + "it(\"a worker's death [O-6]\", f); describe('[S-1 step 4] full'); test('[X-5] not a rule', f); notatest('[A-1]');";
  const names = testNames(src);
  assert.deepEqual(names, ['[S-2][S-1] burst affinity', '[T-1][T-1c] ${type}: eor', "a worker's death [O-6]", '[S-1 step 4] full', '[X-5] not a rule']);
  assert.deepEqual(names.flatMap(citedRules), ['S-2', 'S-1', 'T-1', 'T-1', 'O-6', 'S-1']);
  // A sub-rule cites its rule; an ID that is not a rule is not counted.
  assert.deepEqual(citedRules('[T-10c][ST-12][A-15][ST-2]'), ['T-10', 'ST-2']);
});

test(`at least ${MINIMUM} of the ${RULES.length} rules are cited by a test name`, () => {
  const files = testFiles(testRoot);
  assert.ok(files.length > 10, `test files found under ${testRoot}`);
  const cited = new Set<string>();
  for (const f of files) for (const name of testNames(readFileSync(f, 'utf8'))) for (const id of citedRules(name)) cited.add(id);
  const missing = RULES.filter((id) => !cited.has(id));
  assert.ok(cited.size >= MINIMUM, `${cited.size} of ${RULES.length} rules cited; missing: ${missing.join(' ')}`);
});
