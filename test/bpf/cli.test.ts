import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeInsns } from '../../src/bpf/opcodes.js';
import * as A from './asm.js';

const here = dirname(fileURLToPath(import.meta.url));
const main = join(here, '..', '..', 'src', 'cli', 'main.js');
const fixtures = join(here, '..', '..', '..', 'test', 'fixtures', 'bpf');

function kcm(args: string[], input?: string): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync(process.execPath, [main, 'bpf', ...args], { input, encoding: 'utf8', timeout: 20_000 });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

/** Hex as conformance suites send it: two digits and two spaces per byte. */
function suiteHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => `${b.toString(16).padStart(2, '0')}  `).join('');
}

test('exec: program on stdin, memory in the first argument, r0 in hex on stdout', () => {
  const prog = encodeInsns([A.ldx('w', 0, 1, 0), A.alu64r(0x00, 0, 2), A.exit()]);
  const res = kcm(['exec', suiteHex(Uint8Array.from([1, 2, 3, 4, 5])), ''], `${suiteHex(prog)}\n`);
  assert.equal(res.stderr, '');
  assert.equal(res.stdout, '0x4030206\n');
  assert.equal(res.status, 0);
  const wide = kcm(['exec'], suiteHex(encodeInsns([...A.lddw(0, (1n << 64n) - 2n), A.exit()])));
  assert.equal(wide.stdout, '0xfffffffffffffffe\n');
});

test('exec: a refused program exits non-zero with the reason on stderr', () => {
  const res = kcm(['exec'], suiteHex(encodeInsns([A.exit()])));
  assert.equal(res.status, 1);
  assert.equal(res.stdout, '');
  assert.match(res.stderr, /instruction 0 'exit': r0 at exit is read before it is written/);
  const oob = kcm(['exec', '01 02'], suiteHex(encodeInsns([A.ldx('w', 0, 1, 0), A.exit()])));
  assert.equal(oob.status, 1);
  assert.match(oob.stderr, /out of bounds/);
});

test('exec --elf runs an object in raw mode; --interpret agrees', () => {
  const obj = readFileSync(join(fixtures, 'thrift.o'));
  const mem = suiteHex(Uint8Array.from([0, 0, 1, 0]));
  const a = kcm(['exec', mem, '--elf'], suiteHex(obj));
  const b = kcm(['exec', mem, '--elf', '--interpret'], suiteHex(obj));
  assert.equal(a.stdout, '0x104\n');
  assert.equal(b.stdout, a.stdout);
});

test('run prints the parser result: a length, need more or an errno', () => {
  const memcached = join(fixtures, 'memcached.o');
  assert.equal(kcm(['run', memcached, '--hex', '80 00 00 00 00 00 00 00 00 00 00 02']).stdout, 'length 26\n');
  assert.equal(kcm(['run', memcached, '--hex', '80']).stdout, 'need more (0)\n');
  assert.equal(kcm(['run', memcached, '--hex', '7f', '--interpret']).stdout, 'error -74 EBADMSG\n');
});

test('dump lists sections, llvm-objdump style disassembly and the verdict', () => {
  const res = kcm(['dump', join(fixtures, 'thrift.o')]);
  assert.equal(res.status, 0);
  assert.match(res.stdout, /socket_kcm/);
  assert.match(res.stdout, /0000000000000000 <thrift_parser>:/);
  assert.match(res.stdout, / {7}1:\t20 00 00 00 00 00 00 00\tr0 = \*\(u32 \*\)skb\[0\]/);
  assert.match(res.stdout, /verifier: accepted socket_kcm\/thrift_parser: 4 instructions/);
  const usage = kcm(['nope']);
  assert.equal(usage.status, 2);
});

test('run --interpret never crashes: a stack pointer steered onto cb[4] ends with EFAULT, as compiled', async () => {
  const { writeElf } = await import('../../bench/hostile-elf.js');
  const { mkdtempSync, rmSync, writeFileSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { CTX_BASE, STACK_BASE, STACK_SIZE } = await import('../../src/bpf/runtime.js');
  // r2 = r10 + load_word(0); return *(u32 *)(r2 + 0)
  const code = encodeInsns([A.mov64r(6, 1), A.ldabs('w', 0), A.mov64r(2, 10), A.alu64r(0x00, 2, 0), A.ldx('w', 0, 2, 0), A.exit()]);
  const dir = mkdtempSync(join(tmpdir(), 'kcm-steer-'));
  try {
    const path = join(dir, 'steer.o');
    writeFileSync(path, writeElf({ sections: [{ name: 'socket_kcm', type: 1, flags: 6, data: code }] }));
    const word = (CTX_BASE + 48 + 16 - (STACK_BASE + STACK_SIZE)) >>> 0;
    const hex = word.toString(16).padStart(8, '0');
    for (const extra of [[], ['--interpret']]) {
      const res = kcm(['run', path, '--hex', hex, ...extra]);
      assert.equal(res.stderr, '');
      assert.equal(res.stdout, 'error -14 EFAULT\n');
      assert.equal(res.status, 0);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
