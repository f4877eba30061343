import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { KcmError, loadBpf } from '../../src/index.js';
import { readElf, SHT_PROGBITS, STT_FUNC } from '../../src/bpf/elf-reader.js';

const fixtures = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'test', 'fixtures', 'bpf');
const objects = readdirSync(fixtures).filter((f) => f.endsWith('.o')).sort().map((f) => readFileSync(join(fixtures, f)));
const tagged = readFileSync(join(fixtures, 'tagged.o'));

/** Loading must either give a working parser or a clean EINVAL. */
function loadsCleanly(bytes: Uint8Array): void {
  let parser: ((d: Buffer) => number) | undefined;
  try {
    parser = loadBpf(bytes);
  } catch (e) {
    if (e instanceof KcmError && e.code === 'EINVAL') return;
    throw e;
  }
  for (const data of [Buffer.alloc(0), Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9]), Buffer.alloc(64, 0xff)]) {
    assert.equal(typeof parser(data), 'number');
  }
}

test('reads sections, symbols and relocations of a clang object', () => {
  const elf = readElf(tagged);
  const names = elf.sections.map((s) => s.name);
  assert.ok(names.includes('socket_kcm') && names.includes('.text') && names.includes('.rodata'));
  const prog = elf.sections.find((s) => s.name === 'socket_kcm')!;
  assert.equal(prog.type, SHT_PROGBITS);
  assert.equal(prog.size % 8, 0);
  const funcs = elf.symbols.filter((s) => s.type === STT_FUNC).map((s) => s.name).sort();
  assert.deepEqual(funcs, ['frame_length', 'tagged_parser']);
  const relocs = elf.relocations.get(prog.index)!;
  assert.deepEqual(relocs.map((r) => r.type).sort((a, b) => a - b), [1, 10]);
});

test('refuses what is not an eBPF relocatable object', () => {
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(0), /shorter than an ELF header/],
    [Buffer.from('not an elf object at all, just some text that is long enough to pass the size'), /no ELF magic/],
  ];
  const be = Buffer.from(tagged);
  be[5] = 2;
  cases.push([be, /big-endian/]);
  const x86 = Buffer.from(tagged);
  x86.writeUInt16LE(62, 18);
  cases.push([x86, /machine 62 is not BPF/]);
  const exec = Buffer.from(tagged);
  exec.writeUInt16LE(2, 16);
  cases.push([exec, /not a relocatable object/]);
  const manySections = Buffer.from(tagged);
  manySections.writeUInt16LE(0xffff, 60);
  cases.push([manySections, /section headers run past the end/]);
  const farOffset = Buffer.from(tagged);
  farOffset.writeUInt32LE(0xfffffff0, 40);
  cases.push([farOffset, /section headers run past the end/]);
  cases.push([tagged.subarray(0, tagged.length - 10), /run past the end|out of range|past the end/]);
  for (const [bytes, pattern] of cases) {
    assert.throws(() => loadBpf(bytes), (e: unknown) => e instanceof KcmError && e.code === 'EINVAL' && pattern.test(e.message), String(pattern));
  }
});

test('refuses a section that claims more bytes than the file holds', () => {
  const elf = readElf(tagged);
  const bytes = Buffer.from(tagged);
  const shoff = Number(bytes.readBigUInt64LE(40));
  const idx = elf.sections.find((s) => s.name === '.rodata')!.index;
  bytes.writeBigUInt64LE(0xffffffffn, shoff + idx * 64 + 32);
  assert.throws(() => loadBpf(bytes), (e: unknown) => e instanceof KcmError && e.code === 'EINVAL' && /section \d+ runs past the end/.test(e.message));
});

test('fuzz: mutated objects load cleanly or fail with EINVAL, in bounded time', () => {
  const started = Date.now();
  fc.assert(
    fc.property(
      fc.nat(objects.length - 1),
      fc.array(fc.tuple(fc.nat(4095), fc.nat(255)), { minLength: 1, maxLength: 8 }),
      fc.option(fc.nat(4095), { nil: undefined }),
      (which, edits, cut) => {
        const bytes = Buffer.from(objects[which]!);
        for (const [at, value] of edits) bytes[at % bytes.length] = value;
        loadsCleanly(cut === undefined ? bytes : bytes.subarray(0, cut % (bytes.length + 1)));
      },
    ),
    { numRuns: 3000 },
  );
  assert.ok(Date.now() - started < 30_000);
});

test('fuzz: mutated instructions of a program section', () => {
  const elf = readElf(tagged);
  const prog = elf.sections.find((s) => s.name === 'socket_kcm')!;
  const base = tagged.indexOf(Buffer.from(prog.data));
  assert.ok(base > 0);
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(prog.size - 1), fc.nat(255)), { minLength: 1, maxLength: 4 }), (edits) => {
      const bytes = Buffer.from(tagged);
      for (const [at, value] of edits) bytes[base + at] = value;
      loadsCleanly(bytes);
    }),
    { numRuns: 3000 },
  );
});

test('fuzz: random bytes behind a valid ELF header', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 0, maxLength: 2048 }), (tail) => {
      const bytes = Buffer.concat([tagged.subarray(0, 64), tail]);
      loadsCleanly(bytes);
      loadsCleanly(tail);
    }),
    { numRuns: 1000 },
  );
});
