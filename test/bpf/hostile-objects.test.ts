/**
 * Resource bombs: objects up to 1 MiB built to make a loader spend far more than their
 * size (shared relocation bytes, shared names, shared code, call sites among thousands of
 * functions, loops of tiny blocks). Each is loaded in a child process with a 256 MB heap;
 * it must be loaded or refused with EINVAL naming the limit.
 *
 * No assertion is on elapsed time (the machine is shared): the work is bounded by counts
 * (the verifier's instructions processed, the program's size); the child's 20 s timeout is
 * a hang guard only, far above the few hundred milliseconds these take.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SHAPES, type ShapeName } from '../../bench/hostile-elf.js';
import { KcmError, loadBpf } from '../../src/index.js';
import { MAX_NAME_BYTES, readElf } from '../../src/bpf/elf-reader.js';
import { MAX_INSNS } from '../../src/bpf/linker.js';

const child = join(dirname(fileURLToPath(import.meta.url)), 'load-object-child.js');
const SIZES = [16 * 1024, 100 * 1024, 1024 * 1024];

interface Verdict {
  shape: string;
  bytes: number;
  verdict: string;
  message?: string;
  insns?: number;
  processed?: number;
}

function loadInChild(shape: ShapeName, sizes: readonly number[]): Verdict[] {
  const res = spawnSync(process.execPath, ['--max-old-space-size=256', child, shape, ...sizes.map(String)], { encoding: 'utf8', timeout: 20_000 });
  assert.equal(res.signal, null, `${shape}: the child was stopped (${res.signal}): it hung`);
  assert.equal(res.status, 0, `${shape}: the child failed: ${res.stderr.slice(0, 2000)}`);
  const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as Verdict);
  assert.equal(lines.length, sizes.length);
  for (const v of lines) assert.ok(v.bytes <= 1024 * 1024 + 4096, `${shape}: built ${v.bytes} bytes`);
  return lines;
}

function refusedNaming(v: Verdict, limit: RegExp): void {
  assert.equal(v.verdict, 'EINVAL', `${v.shape} ${v.bytes} B: ${JSON.stringify(v)}`);
  assert.match(v.message!, limit);
}

test('[F-1] many REL headers sharing one block of relocations are refused as overlapping sections', () => {
  for (const v of loadInChild('rel-sharing', SIZES)) refusedNaming(v, /sections \d+ and \d+ overlap in the file/);
});

test('[F-1] many code sections sharing one blob of instructions are refused as overlapping sections', () => {
  for (const v of loadInChild('code-sharing', SIZES)) refusedNaming(v, /sections \d+ and \d+ overlap in the file/);
});

test('[F-1] names sharing one long string cost their bytes once; distinct long names are bounded in total', () => {
  // Every symbol and section named by one 4095-byte string: decoded once, cached by offset.
  for (const v of loadInChild('name-sharing-same', SIZES)) assert.equal(v.verdict, 'loaded', JSON.stringify(v));
  // Each at its own offset into it: refused once the names exceed the total allowed.
  const big = loadInChild('name-sharing-suffixes', [SIZES[1]!, SIZES[2]!]);
  for (const v of big) refusedNaming(v, new RegExp(`names total more than ${MAX_NAME_BYTES} bytes`));
  // One object decoded in-process: the same string object serves every symbol.
  const elf = readElf(SHAPES['name-sharing-same'](SIZES[0]!));
  const named = elf.symbols.filter((s) => s.name.length === 4095);
  assert.ok(named.length > 100);
});

test('[F-1] call sites among thousands of function symbols: linked with one index, bounded by the program size', () => {
  const verdicts = loadInChild('linker-calls', SIZES);
  assert.equal(verdicts[0]!.verdict, 'loaded', JSON.stringify(verdicts[0]));
  assert.equal(verdicts[1]!.verdict, 'loaded', JSON.stringify(verdicts[1]));
  // Calls do not multiply the verifier's work: each instruction is processed once.
  for (const v of verdicts.slice(0, 2)) assert.equal(v.processed, v.insns);
  refusedNaming(verdicts[2]!, new RegExp(`exceeds ${MAX_INSNS} instructions`));
});

test('[F-1] a loop of one-instruction blocks is walked a bounded number of times', () => {
  const verdicts = loadInChild('verifier-loop', SIZES);
  for (const v of verdicts) {
    if (v.verdict === 'loaded') {
      // Lowest block first, copy-on-write stack slots: the loop is walked twice, not once
      // per register or slot whose value changes.
      assert.ok(v.processed! <= 3 * v.insns!, JSON.stringify(v));
    } else refusedNaming(v, new RegExp(`exceeds ${MAX_INSNS} instructions`));
  }
  assert.equal(verdicts[0]!.verdict, 'loaded');
});

test('[F-1] the largest straight-line program loads; larger ones are refused naming the limit', () => {
  const verdicts = loadInChild('straight-line', SIZES);
  assert.equal(verdicts[1]!.verdict, 'loaded');
  refusedNaming(verdicts[2]!, new RegExp(`exceeds ${MAX_INSNS} instructions`));
});

test('[F-1] overlapping sections are refused in-process too, before anything is decoded', () => {
  assert.throws(
    () => loadBpf(SHAPES['rel-sharing'](64 * 1024)),
    (e: unknown) => e instanceof KcmError && e.code === 'EINVAL' && /overlap in the file/.test(e.message),
  );
});
