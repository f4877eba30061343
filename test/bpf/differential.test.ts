/**
 * Differential tests: random valid programs give the same r0 from the interpreter (BigInt
 * semantics) and from the compiled function (int32 pairs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { loadRaw } from '../../src/bpf/raw-mode.js';
import type { Insn } from '../../src/bpf/opcodes.js';
import * as A from './asm.js';

const ALU_OPS = [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xa0, 0xb0, 0xc0];
const JMP_OPS = [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0xa0, 0xb0, 0xc0, 0xd0];
const SIZES: A.Size[] = ['b', 'h', 'w', 'dw'];
const ATOMIC_OPS = [0x00, 0x01, 0x40, 0x41, 0x50, 0x51, 0xa0, 0xa1, 0xe1, 0xf1];

const interesting64 = fc.oneof(
  fc.constantFrom(0n, 1n, 2n, 7n, 31n, 32n, 63n, 64n, (1n << 63n), (1n << 64n) - 1n, (1n << 32n) - 1n, 1n << 32n, 1n << 31n, (1n << 31n) - 1n, BigInt.asUintN(64, -(1n << 31n))),
  fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  fc.bigInt({ min: 0n, max: 300n }),
);
const interesting32 = fc.oneof(
  fc.constantFrom(0, 1, -1, 2, 7, 16, 31, 32, 48, 63, 64, -2147483648, 2147483647, 0x7fff, -0x8000, 255),
  fc.integer({ min: -2147483648, max: 2147483647 }),
);

/** One random instruction spec; turned into instructions with a known count of remaining slots. */
const spec = fc.record({
  kind: fc.nat(99),
  op: fc.nat(64),
  dst: fc.nat(9),
  src: fc.nat(9),
  imm: interesting32,
  slot: fc.nat(7),
  size: fc.nat(3),
  skip: fc.nat(6),
});

type Spec = typeof spec extends fc.Arbitrary<infer T> ? T : never;

function build(init: bigint[], specs: Spec[]): Insn[] {
  const out: Insn[] = [];
  for (let r = 0; r <= 9; r++) out.push(...A.lddw(r, init[r]!));
  for (let k = 1; k <= 8; k++) out.push(...A.lddw(1, init[k % init.length]! ^ BigInt(k * 0x1234567)), A.stx('dw', 10, 1, -8 * k));
  out.push(...A.lddw(1, init[1]!));
  const body: Insn[][] = specs.map((s, i) => {
    const remaining = specs.length - i - 1;
    const x = s.op % 2 === 1;
    if (s.kind < 45) {
      const op = ALU_OPS[s.op % ALU_OPS.length]!;
      const wide = s.kind % 2 === 0;
      const off = (op === 0x30 || op === 0x90) && s.kind % 3 === 0 ? 1 : 0;
      if (op === 0x80) return [wide ? A.alu64(op, s.dst, 0) : A.alu32(op, s.dst, 0)];
      // Immediates the kernel refuses (a zero divisor, a shift past the width) are not generated.
      let imm = s.imm;
      if ((op === 0x30 || op === 0x90) && imm === 0) imm = 3;
      if (op === 0x60 || op === 0x70 || op === 0xc0) imm &= wide ? 63 : 31;
      if (wide) return [x ? A.alu64r(op, s.dst, s.src, off) : A.alu64(op, s.dst, imm, off)];
      return [x ? A.alu32r(op, s.dst, s.src, off) : A.alu32(op, s.dst, imm, off)];
    }
    if (s.kind < 50) {
      const widths = [8, 16, 32];
      const w = widths[s.op % 3]!;
      if (s.kind % 2 === 0) return [A.alu64r(0xb0, s.dst, s.src, w)];
      return [A.alu32r(0xb0, s.dst, s.src, w === 32 ? 16 : w)];
    }
    if (s.kind < 55) {
      const imm = [16, 32, 64][s.op % 3]!;
      const code = [0xd4, 0xdc, 0xd7][s.size % 3]!;
      return [A.insn(code, s.dst, 0, 0, imm)];
    }
    if (s.kind < 75) {
      if (remaining === 0) return [A.mov64r(s.dst, s.src)];
      const op = JMP_OPS[s.op % JMP_OPS.length]!;
      const off = s.skip % (remaining + 1);
      const wide = s.kind % 2 === 0;
      if (wide) return [x ? A.jmpr(op, s.dst, s.src, off) : A.jmp(op, s.dst, s.imm, off)];
      return [x ? A.jmp32r(op, s.dst, s.src, off) : A.jmp32(op, s.dst, s.imm, off)];
    }
    const size = SIZES[s.size]!;
    const bytes = size === 'b' ? 1 : size === 'h' ? 2 : size === 'w' ? 4 : 8;
    const off = -8 * (s.slot + 1) + ((s.skip * bytes) % 8);
    if (s.kind < 83) return [A.ldx(size, s.dst, 10, off)];
    if (s.kind < 87) return [size === 'dw' ? A.ldx(size, s.dst, 10, off) : A.ldxs(size, s.dst, 10, off)];
    if (s.kind < 93) return [A.stx(size, 10, s.src, off)];
    if (s.kind < 96) return [A.st(size, 10, off, s.imm)];
    const asize = s.size % 2 === 0 ? 'w' : 'dw';
    return [A.atomic(asize, 10, s.src, -8 * (s.slot + 1), ATOMIC_OPS[s.op % ATOMIC_OPS.length]!)];
  });
  // Jumps count slots, so lay out with each spec taking exactly one slot.
  for (const b of body) out.push(...b);
  // Fold every register and the stack into r0.
  for (let r = 1; r <= 9; r++) out.push(A.alu64(0x20, 0, 0x1000193), A.alu64r(0xa0, 0, r));
  for (let k = 1; k <= 8; k++) out.push(A.ldx('dw', 1, 10, -8 * k), A.alu64(0x20, 0, 31), A.alu64r(0x00, 0, 1));
  out.push(A.exit());
  return out;
}

test('random programs: the compiled function and the interpreter give the same r0', () => {
  fc.assert(
    fc.property(fc.array(interesting64, { minLength: 10, maxLength: 10 }), fc.array(spec, { minLength: 1, maxLength: 40 }), (init, specs) => {
      const prog = loadRaw(A.program(build(init, specs)));
      const mem = new Uint8Array(16);
      const compiled = prog.run(mem);
      const interpreted = prog.interpret(mem);
      assert.deepEqual(compiled, interpreted);
      assert.equal(compiled.status, 'exit');
    }),
    { numRuns: 400 },
  );
});

test('random ALU chains on extreme values agree operation by operation', () => {
  fc.assert(
    fc.property(interesting64, interesting64, fc.nat(ALU_OPS.length * 2 - 1), fc.boolean(), (a, b, k, signed) => {
      const op = ALU_OPS[k % ALU_OPS.length]!;
      const off = signed && (op === 0x30 || op === 0x90) ? 1 : 0;
      const wide = k >= ALU_OPS.length;
      const insn = op === 0x80 ? (wide ? A.alu64(op, 1, 0) : A.alu32(op, 1, 0)) : wide ? A.alu64r(op, 1, 2, off) : A.alu32r(op, 1, 2, off);
      const prog = loadRaw(A.program(A.lddw(1, a), A.lddw(2, b), insn, A.mov64r(0, 1), A.exit()));
      assert.deepEqual(prog.run(new Uint8Array(0)), prog.interpret(new Uint8Array(0)));
    }),
    { numRuns: 2000 },
  );
});
