/**
 * Runs do not share what they should not: the stack starts zeroed on every run (F-7 extends
 * cb's rule to it), and the interpreter finds memory exactly as the compiled code does, so
 * the two agree and neither throws on any verified program.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compileParser } from '../../src/bpf/compiler.js';
import { Interpreter } from '../../src/bpf/interpreter.js';
import { rawProgram, type LinkedProgram } from '../../src/bpf/linker.js';
import type { Insn } from '../../src/bpf/opcodes.js';
import { CTX_BASE, STACK_BASE, STACK_SIZE } from '../../src/bpf/runtime.js';
import { verify } from '../../src/bpf/verifier.js';
import * as A from './asm.js';

function both(insns: (Insn | Insn[])[], regions: LinkedProgram['regions'] = []): [(d: Buffer) => number, (d: Buffer) => number] {
  const prog: LinkedProgram = { ...rawProgram(A.program(...insns)), regions };
  const analysis = verify(prog, 'parser');
  const interpreter = new Interpreter(prog, analysis);
  return [compileParser(prog, analysis), (d) => interpreter.runParser(d)];
}

test('[F-7] no byte of one message reaches the result of another run through the stack ("SECR")', () => {
  // A message starting 'W' copies its bytes 1..4 to the stack; any other message returns
  // the stack word it never wrote.
  const [compiled, interpreted] = both([
    A.mov64r(6, 1),
    A.ldabs('b', 0),
    A.jmp(0x55, 0, 0x57, 8),
    A.mov64r(1, 6),
    A.mov64(2, 1),
    A.mov64r(3, 10),
    A.alu64(0x00, 3, -8),
    A.mov64(4, 4),
    A.call(26),
    A.mov64(0, 0),
    A.exit(),
    A.ldx('w', 0, 10, -8),
    A.exit(),
  ]);
  for (const run of [compiled, interpreted]) {
    assert.equal(run(Buffer.from('WSECR')), 0);
    assert.equal(run(Buffer.from('R')), 0, 'the second run saw the first message');
  }
});

test('[F-7] a callee frame starts zeroed on every run too', () => {
  // main: if byte 0 == 'W' store 0x5345_4352 in the callee's frame via the callee; else read it.
  const [compiled, interpreted] = both([
    A.mov64r(6, 1),
    A.ldabs('b', 0),
    A.mov64r(1, 0),
    A.callLocal(1),
    A.exit(),
    // callee(r1): if r1 == 'W' { *(u32 *)(r10 - 4) = 0x53454352; return 0 } return *(u32 *)(r10 - 4)
    A.jmp(0x55, 1, 0x57, 3),
    A.st('w', 10, -4, 0x53454352),
    A.mov64(0, 0),
    A.exit(),
    A.ldx('w', 0, 10, -4),
    A.exit(),
  ]);
  for (const run of [compiled, interpreted]) {
    assert.equal(run(Buffer.from('W')), 0);
    assert.equal(run(Buffer.from('R')), 0);
  }
});

test('the interpreter finds memory as the compiled code does: a stack pointer steered onto cb[4] faults in both', () => {
  // r2 = r10 + load_word(0); r0 = *(u32 *)(r2 + 0): the message picks the address.
  const [compiled, interpreted] = both([A.mov64r(6, 1), A.ldabs('w', 0), A.mov64r(2, 10), A.alu64r(0x00, 2, 0), A.ldx('w', 0, 2, 0), A.exit()]);
  const onCb4 = CTX_BASE + 48 + 16 - (STACK_BASE + STACK_SIZE);
  const msg = Buffer.alloc(4);
  msg.writeInt32BE(onCb4);
  assert.equal(compiled(msg), -14);
  assert.equal(interpreted(msg), -14);
  msg.writeInt32BE(-4);
  assert.equal(compiled(msg), interpreted(msg));
});

test('fuzz: pointers steered by message bytes into and across regions agree compiled and interpreted, and never throw', () => {
  const rodata = { name: '.rodata', bytes: Uint8Array.from({ length: 64 }, (_, i) => i * 7), writable: false };
  const data = { name: '.data', bytes: new Uint8Array(32), writable: true };
  const bases: Insn[][] = [[A.mov64r(2, 10)], A.lddw(2, 0n).map((x, i) => (i === 0 ? { ...x, src: 2, imm: 0 } : { ...x, imm: 8 })), A.lddw(2, 0n).map((x, i) => (i === 0 ? { ...x, src: 2, imm: 1 } : x))];
  fc.assert(
    fc.property(fc.nat(bases.length - 1), fc.nat(3), fc.integer({ min: -600, max: 600 }), fc.boolean(), fc.uint8Array({ minLength: 0, maxLength: 12 }), (which, size, off, write, msg) => {
      const sz = (['b', 'h', 'w', 'dw'] as const)[size]!;
      const access = write && which !== 1 ? A.stx(sz, 2, 8, off) : A.ldx(sz, 0, 2, off);
      const [compiled, interpreted] = both(
        [A.mov64r(6, 1), A.ldabs('h', 0), A.alu64(0x00, 0, -0x8000), A.mov64r(8, 0), ...bases[which]!, A.alu64r(0x00, 2, 8), access, A.mov64(0, 1), A.ldx('dw', 3, 10, -8), A.alu64r(0x00, 0, 3), A.exit()],
        [rodata, data],
      );
      const m = Buffer.from(msg);
      for (let k = 0; k < 3; k++) assert.equal(compiled(m), interpreted(m));
    }),
    { numRuns: 600 },
  );
});
