/**
 * Per-instruction tests in raw mode: each program runs compiled and interpreted and must
 * give the r0 that RFC 9669 defines.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadRaw } from '../../src/bpf/raw-mode.js';
import type { Insn } from '../../src/bpf/opcodes.js';
import * as A from './asm.js';

const ADD = 0x00, SUB = 0x10, MUL = 0x20, DIV = 0x30, OR = 0x40, AND = 0x50, LSH = 0x60, RSH = 0x70, NEG = 0x80, MOD = 0x90, XOR = 0xa0, MOV = 0xb0, ARSH = 0xc0, END = 0xd0;
const JEQ = 0x10, JGT = 0x20, JGE = 0x30, JSET = 0x40, JNE = 0x50, JSGT = 0x60, JSGE = 0x70, JLT = 0xa0, JLE = 0xb0, JSLT = 0xc0, JSLE = 0xd0;
const INT64_MIN = 1n << 63n;
const M64 = (1n << 64n) - 1n;

/** Runs `body` (then `exit`) both ways on `mem` and returns r0. */
function r0(body: (Insn | Insn[])[], mem: Uint8Array = new Uint8Array(16)): bigint {
  const prog = loadRaw(A.program(...body, A.exit()));
  const a = prog.run(mem.slice());
  const b = prog.interpret(mem.slice());
  assert.deepEqual(a, b, 'compiled and interpreted runs differ');
  assert.equal(a.status, 'exit');
  return a.r0;
}

/** r1 = a, r2 = b (64-bit), then `ops`, result in r0 = r1. */
function binop(a: bigint, b: bigint, ...ops: Insn[]): bigint {
  return r0([A.lddw(1, a), A.lddw(2, b), ...ops, A.mov64r(0, 1)]);
}

test('ALU64 add, sub and mul wrap at 64 bits', () => {
  assert.equal(binop(M64, 1n, A.alu64r(ADD, 1, 2)), 0n);
  assert.equal(binop(0xffffffffn, 1n, A.alu64r(ADD, 1, 2)), 0x100000000n);
  assert.equal(binop(0n, 1n, A.alu64r(SUB, 1, 2)), M64);
  assert.equal(binop(0x100000000n, 1n, A.alu64r(SUB, 1, 2)), 0xffffffffn);
  assert.equal(binop(0x123456789abcdefn, 0xfedcba987654321n, A.alu64r(MUL, 1, 2)), (0x123456789abcdefn * 0xfedcba987654321n) & M64);
  assert.equal(binop(M64, M64, A.alu64r(MUL, 1, 2)), 1n);
  assert.equal(binop(5n, 0n, A.alu64(ADD, 1, -6)), M64);
  assert.equal(binop(3n, 0n, A.alu64(MUL, 1, -1)), M64 - 2n);
});

test('ALU64 division and modulo: by zero, signed, INT64_MIN / -1', () => {
  assert.equal(binop(100n, 0n, A.alu64r(DIV, 1, 2)), 0n);
  assert.equal(binop(100n, 0n, A.alu64r(MOD, 1, 2)), 100n);
  assert.equal(binop(M64, 0n, A.alu64r(MOD, 1, 2)), M64);
  assert.equal(binop(M64, 2n, A.alu64r(DIV, 1, 2)), M64 >> 1n);
  assert.equal(binop(M64, 10n, A.alu64r(MOD, 1, 2)), M64 % 10n);
  assert.equal(binop(0x1234567890n, 0x10n, A.alu64r(DIV, 1, 2)), 0x123456789n);
  assert.equal(binop(7n, 0n, A.alu64(DIV, 1, -1)), 0n, 'the immediate is sign-extended, then unsigned');
  assert.equal(binop(INT64_MIN, M64, A.alu64r(DIV, 1, 2, 1)), INT64_MIN);
  assert.equal(binop(INT64_MIN, M64, A.alu64r(MOD, 1, 2, 1)), 0n);
  assert.equal(binop(BigInt.asUintN(64, -7n), 2n, A.alu64r(DIV, 1, 2, 1)), BigInt.asUintN(64, -3n));
  assert.equal(binop(BigInt.asUintN(64, -7n), 2n, A.alu64r(MOD, 1, 2, 1)), BigInt.asUintN(64, -1n));
  assert.equal(binop(7n, BigInt.asUintN(64, -2n), A.alu64r(MOD, 1, 2, 1)), 1n);
  assert.equal(binop(BigInt.asUintN(64, -(1n << 40n)), 3n, A.alu64r(DIV, 1, 2, 1)), BigInt.asUintN(64, -(1n << 40n) / 3n));
  assert.equal(binop(5n, 0n, A.alu64r(DIV, 1, 2, 1)), 0n);
  assert.equal(binop(5n, 0n, A.alu64r(MOD, 1, 2, 1)), 5n);
});

test('ALU64 shifts mask the count to 63', () => {
  assert.equal(binop(1n, 63n, A.alu64r(LSH, 1, 2)), INT64_MIN);
  assert.equal(binop(1n, 64n, A.alu64r(LSH, 1, 2)), 1n);
  assert.equal(binop(INT64_MIN, 63n, A.alu64r(RSH, 1, 2)), 1n);
  assert.equal(binop(INT64_MIN, 63n, A.alu64r(ARSH, 1, 2)), M64);
  assert.equal(binop(INT64_MIN, 0n, A.alu64(ARSH, 1, 4)), 0xf8n << 56n);
  assert.equal(binop(0xdeadbeefn, 0n, A.alu64(LSH, 1, 32)), 0xdeadbeef00000000n);
  assert.equal(binop(0xdeadbeef00000000n, 0n, A.alu64(RSH, 1, 36)), 0xdeadbeen);
  assert.equal(binop(0x8000000000000000n, 0n, A.alu64(ARSH, 1, 36)), BigInt.asUintN(64, -(1n << 27n)));
  assert.equal(binop(0x00000001ffffffffn, 0n, A.alu64(LSH, 1, 4)), 0x1ffffffff0n);
  assert.equal(binop(5n, 0n, A.alu64(LSH, 1, 0)), 5n);
});

test('ALU64 bitwise, neg, mov and movsx', () => {
  assert.equal(binop(0xff00ff00ff00ff00n, 0x0ff00ff00ff00ff0n, A.alu64r(AND, 1, 2)), 0x0f000f000f000f00n);
  assert.equal(binop(0xff00000000000000n, 0x1n, A.alu64r(OR, 1, 2)), 0xff00000000000001n);
  assert.equal(binop(M64, 0x1n, A.alu64r(XOR, 1, 2)), M64 - 1n);
  assert.equal(binop(0x1234n, 0n, A.alu64(AND, 1, -16)), 0x1230n);
  assert.equal(binop(1n, 0n, A.alu64(NEG, 1, 0)), M64);
  assert.equal(binop(INT64_MIN, 0n, A.alu64(NEG, 1, 0)), INT64_MIN);
  assert.equal(binop(0x100000000n, 0n, A.alu64(NEG, 1, 0)), BigInt.asUintN(64, -0x100000000n));
  assert.equal(binop(0n, 0n, A.alu64(MOV, 1, -2)), M64 - 1n);
  assert.equal(binop(0n, 0x80n, A.alu64r(MOV, 1, 2, 8)), BigInt.asUintN(64, -128n));
  assert.equal(binop(0n, 0x7fffn, A.alu64r(MOV, 1, 2, 16)), 0x7fffn);
  assert.equal(binop(0n, 0x80000000n, A.alu64r(MOV, 1, 2, 32)), BigInt.asUintN(64, -(1n << 31n)));
});

test('ALU32 operations use the low halves and zero the upper half', () => {
  assert.equal(binop(0xffffffffffffffffn, 1n, A.alu32r(ADD, 1, 2)), 0n);
  assert.equal(binop(0xaaaaaaaa00000005n, 0n, A.alu32(ADD, 1, 1)), 6n);
  assert.equal(binop(0xaaaaaaaa00000005n, 0n, A.alu32(MOV, 1, -1)), 0xffffffffn);
  assert.equal(binop(0x1_0000_0003n, 0x5n, A.alu32r(MUL, 1, 2)), 15n);
  assert.equal(binop(0xffffffffn, 0xffffffffn, A.alu32r(MUL, 1, 2)), 1n);
  assert.equal(binop(7n, 0n, A.alu32r(DIV, 1, 2)), 0n);
  assert.equal(binop(0xffff_0000_0007n, 0n, A.alu32r(MOD, 1, 2)), 7n);
  assert.equal(binop(0x80000000n, 0xffffffffn, A.alu32r(DIV, 1, 2, 1)), 0x80000000n);
  assert.equal(binop(0x80000000n, 0xffffffffn, A.alu32r(MOD, 1, 2, 1)), 0n);
  assert.equal(binop(0xfffffff9n, 2n, A.alu32r(DIV, 1, 2, 1)), 0xfffffffdn);
  assert.equal(binop(0xfffffff9n, 2n, A.alu32r(MOD, 1, 2, 1)), 0xffffffffn);
  assert.equal(binop(0xfffffff9n, 2n, A.alu32r(DIV, 1, 2)), 0x7ffffffcn);
  assert.equal(binop(1n, 31n, A.alu32r(LSH, 1, 2)), 0x80000000n);
  assert.equal(binop(1n, 32n, A.alu32r(LSH, 1, 2)), 1n);
  assert.equal(binop(0x80000000n, 31n, A.alu32r(ARSH, 1, 2)), 0xffffffffn);
  assert.equal(binop(0xf8n, 48n, A.alu32(LSH, 1, 28), A.alu32r(ARSH, 1, 2)), 0xffff8000n);
  assert.equal(binop(0x1_8000_0000n, 0n, A.alu32(RSH, 1, 31)), 1n);
  assert.equal(binop(0x1_0000_0001n, 0n, A.alu32(NEG, 1, 0)), 0xffffffffn);
  assert.equal(binop(0n, 0xff80n, A.alu32r(MOV, 1, 2, 8)), 0xffffff80n);
  assert.equal(binop(0n, 0x1_8000n, A.alu32r(MOV, 1, 2, 16)), 0xffff8000n);
  assert.equal(binop(0xffff_ffff_0000_0001n, 0n, A.alu32r(MOV, 1, 1)), 1n);
});

test('byte swaps: le, be and bswap', () => {
  const v = 0x0102030405060708n;
  assert.equal(binop(v, 0n, A.insn(0xd4, 1, 0, 0, 16)), 0x0708n);
  assert.equal(binop(v, 0n, A.insn(0xd4, 1, 0, 0, 32)), 0x05060708n);
  assert.equal(binop(v, 0n, A.insn(0xd4, 1, 0, 0, 64)), v);
  assert.equal(binop(v, 0n, A.insn(0xdc, 1, 0, 0, 16)), 0x0807n);
  assert.equal(binop(v, 0n, A.insn(0xdc, 1, 0, 0, 32)), 0x08070605n);
  assert.equal(binop(v, 0n, A.insn(0xdc, 1, 0, 0, 64)), 0x0807060504030201n);
  assert.equal(binop(v, 0n, A.insn(0xd7, 1, 0, 0, 16)), 0x0807n);
  assert.equal(binop(v, 0n, A.insn(0xd7, 1, 0, 0, 32)), 0x08070605n);
  assert.equal(binop(v, 0n, A.insn(0xd7, 1, 0, 0, 64)), 0x0807060504030201n);
  void END;
});

test('every jump condition, 64 and 32 bits, signed and unsigned', () => {
  const cases: [number, bigint, bigint, boolean, boolean][] = [
    // op, a, b, taken (64), taken (32)
    [JEQ, 5n, 5n, true, true],
    [JEQ, 0x1_0000_0005n, 5n, false, true],
    [JNE, 0x1_0000_0005n, 5n, true, false],
    [JGT, M64, 1n, true, true],
    [JGT, 0x1_0000_0000n, 0xffffffffn, true, false],
    [JGE, 3n, 3n, true, true],
    [JLT, 1n, M64, true, true],
    [JLE, 0x2_0000_0001n, 0x1_0000_0002n, false, true],
    [JSGT, 1n, M64, true, true],
    [JSGT, 0x8000_0000n, 1n, true, false],
    [JSGE, M64, M64, true, true],
    [JSLT, M64, 0n, true, true],
    [JSLT, 0x7fff_ffffn, 0x8000_0000n, true, false],
    [JSLE, INT64_MIN, 0n, true, true],
    [JSET, 0x1_0000_0000n, 0x1_0000_0000n, true, false],
    [JSET, 6n, 3n, true, true],
    [JSET, 4n, 3n, false, false],
  ];
  for (const [op, a, b, t64, t32] of cases) {
    const prog = (j: Insn): bigint => r0([A.lddw(1, a), A.lddw(2, b), A.mov64(0, 1), j, A.mov64(0, 0)]);
    assert.equal(prog(A.jmpr(op, 1, 2, 1)), t64 ? 1n : 0n, `jmp 0x${op.toString(16)} ${a} ${b}`);
    assert.equal(prog(A.jmp32r(op, 1, 2, 1)), t32 ? 1n : 0n, `jmp32 0x${op.toString(16)} ${a} ${b}`);
  }
  // Immediates are sign-extended to 64 bits for JMP.
  assert.equal(r0([A.lddw(1, M64), A.mov64(0, 1), A.jmp(JEQ, 1, -1, 1), A.mov64(0, 0)]), 1n);
  assert.equal(r0([A.lddw(1, 0xffffffffn), A.mov64(0, 1), A.jmp(JEQ, 1, -1, 1), A.mov64(0, 0)]), 0n);
  assert.equal(r0([A.lddw(1, 0xffffffffn), A.mov64(0, 1), A.jmp32(JEQ, 1, -1, 1), A.mov64(0, 0)]), 1n);
  assert.equal(r0([A.mov64(1, -1), A.mov64(0, 1), A.jmp(JSLT, 1, 0, 1), A.mov64(0, 0)]), 1n);
  // (The skipped instruction is reachable another way: the kernel refuses dead code.)
  assert.equal(r0([A.ldx('b', 2, 1, 0), A.mov64(0, 3), A.jmp(JNE, 2, 0, 1), A.insn(0x06, 0, 0, 0, 1), A.mov64(0, 4)]), 3n, 'gotol');
});

test('lddw loads 64 bits', () => {
  assert.equal(r0([A.lddw(0, 0x1122334455667788n)]), 0x1122334455667788n);
  assert.equal(r0([A.lddw(0, M64)]), M64);
});

test('loads and stores of every size through r1 and the stack, sign-extending loads', () => {
  const mem = Uint8Array.from([0xaa, 0xbb, 0xcc, 0xdd, 0x11, 0x22, 0x33, 0x84, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(r0([A.ldx('b', 0, 1, 0)], mem), 0xaan);
  assert.equal(r0([A.ldx('h', 0, 1, 0)], mem), 0xbbaan);
  assert.equal(r0([A.ldx('w', 0, 1, 0)], mem), 0xddccbbaan);
  assert.equal(r0([A.ldx('dw', 0, 1, 0)], mem), 0x84332211ddccbbaan);
  assert.equal(r0([A.ldxs('b', 0, 1, 0)], mem), BigInt.asUintN(64, -0x56n));
  assert.equal(r0([A.ldxs('h', 0, 1, 0)], mem), BigInt.asUintN(64, -0x4456n));
  assert.equal(r0([A.ldxs('w', 0, 1, 4)], mem), BigInt.asUintN(64, BigInt.asIntN(32, 0x84332211n)));
  assert.equal(r0([A.st('dw', 1, 8, -2), A.ldx('dw', 0, 1, 8)], mem), M64 - 1n);
  assert.equal(r0([A.st('b', 1, 8, 0x1ff), A.ldx('dw', 0, 1, 8)], mem), 0xffn);
  assert.equal(r0([A.lddw(2, 0x0102030405060708n), A.stx('h', 1, 2, 9), A.ldx('dw', 0, 1, 8)], mem), 0x070800n);
  assert.equal(r0([A.lddw(2, 0x0102030405060708n), A.stx('w', 10, 2, -4), A.ldx('w', 0, 10, -4)]), 0x05060708n);
  assert.equal(r0([A.lddw(2, 0x0102030405060708n), A.stx('dw', 10, 2, -512), A.ldx('dw', 0, 10, -512)]), 0x0102030405060708n);
  assert.equal(r0([A.mov64r(0, 2)], new Uint8Array(37)), 37n, 'r2 is the memory length');
});

test('atomic operations, with and without fetch', () => {
  const run = (size: 'w' | 'dw', op: number, init: bigint, src: bigint): [bigint, bigint, bigint] => {
    const mem = r0([A.lddw(2, init), A.stx('dw', 10, 2, -8), A.lddw(3, src), A.lddw(0, 0x5555n), A.atomic(size, 10, 3, -8, op), A.ldx('dw', 4, 10, -8), A.mov64r(0, 4)]);
    const fetched = r0([A.lddw(2, init), A.stx('dw', 10, 2, -8), A.lddw(3, src), A.lddw(0, 0x5555n), A.atomic(size, 10, 3, -8, op), A.mov64r(0, 3)]);
    const r0v = r0([A.lddw(2, init), A.stx('dw', 10, 2, -8), A.lddw(3, src), A.lddw(0, 0x5555n), A.atomic(size, 10, 3, -8, op)]);
    return [mem, fetched, r0v];
  };
  assert.deepEqual(run('dw', 0x00, 0xffffffffn, 1n), [0x100000000n, 1n, 0x5555n]);
  assert.deepEqual(run('dw', 0x01, 0xffffffffn, 1n), [0x100000000n, 0xffffffffn, 0x5555n]);
  assert.deepEqual(run('w', 0x01, 0x1_ffffffffn, 1n), [0x1_00000000n, 0xffffffffn, 0x5555n]);
  assert.deepEqual(run('dw', 0x41, 0xf0n, 0x0fn), [0xffn, 0xf0n, 0x5555n]);
  assert.deepEqual(run('dw', 0x51, 0xf0n, 0x3cn), [0x30n, 0xf0n, 0x5555n]);
  assert.deepEqual(run('w', 0xa1, 0xf0n, 0x3cn), [0xccn, 0xf0n, 0x5555n]);
  assert.deepEqual(run('dw', 0xe1, 0x1234n, 0x99n), [0x99n, 0x1234n, 0x5555n]);
  assert.deepEqual(run('dw', 0xf1, 0x5555n, 0x99n), [0x99n, 0x99n, 0x5555n]);
  assert.deepEqual(run('dw', 0xf1, 0x5556n, 0x99n), [0x5556n, 0x99n, 0x5556n]);
  assert.deepEqual(run('w', 0xf1, 0xaaaa_0000_5555n, 0x99n), [0xaaaa_0000_0099n, 0x99n, 0x5555n]);
});

test('bpf-to-bpf calls pass r1-r5, preserve r6-r9 and give each frame its own stack', () => {
  const prog = [
    A.mov64(1, 1), A.mov64(2, 2), A.mov64(3, 3), A.mov64(4, 4), A.mov64(5, 5),
    A.mov64(6, 6), A.mov64(7, 7), A.mov64(8, 8), A.mov64(9, 9),
    A.st('dw', 10, -8, 0x44332211),
    A.callLocal(8),
    A.jmp(JNE, 6, 6, 5), A.jmp(JNE, 9, 9, 4),
    A.ldx('dw', 1, 10, -8), A.jmp(JNE, 1, 0x44332211, 2),
    A.alu64(ADD, 0, 1000),
    A.exit(),
    A.mov64(0, -1),
    A.exit(),
    // callee: r0 = r1 + ... + r5, scribbles r6-r9 and its own stack
    A.mov64r(0, 1), A.alu64r(ADD, 0, 2), A.alu64r(ADD, 0, 3), A.alu64r(ADD, 0, 4), A.alu64r(ADD, 0, 5),
    A.st('dw', 10, -8, 0x7777), A.mov64(6, 0), A.mov64(9, 0),
  ];
  assert.equal(r0(prog), 1015n);
});

test('packet loads read the memory block big-endian in raw mode; out of range ends with 0', () => {
  const mem = Uint8Array.from([1, 2, 3, 4, 5]);
  assert.equal(r0([A.mov64r(6, 1), A.ldabs('w', 1)], mem), 0x02030405n);
  assert.equal(r0([A.mov64r(6, 1), A.ldabs('h', 3)], mem), 0x0405n);
  assert.equal(r0([A.mov64r(6, 1), A.mov64(7, 2), A.ldind('b', 7, 2)], mem), 5n);
  assert.equal(r0([A.mov64r(6, 1), A.ldabs('w', 2), A.alu64(ADD, 0, 1)], mem), 0n);
  assert.equal(r0([A.mov64r(6, 1), A.mov64(7, -1), A.ldind('b', 7, 0), A.alu64(ADD, 0, 1)], mem), 0n);
});

test('raw mode: out-of-bounds accesses through r1 fault; runaway loops stop', () => {
  const oob = loadRaw(A.program(A.ldx('w', 0, 1, 2), A.exit()));
  assert.deepEqual(oob.run(new Uint8Array(5)), { status: 'fault', r0: 0n });
  assert.deepEqual(oob.interpret(new Uint8Array(5)), { status: 'fault', r0: 0n });
  assert.deepEqual(oob.run(new Uint8Array(6)), { status: 'exit', r0: 0n });
  const loop = loadRaw(A.program(A.mov64(0, 0), A.alu64(ADD, 0, 1), A.jmp(JNE, 0, 0, -2), A.exit()));
  assert.equal(loop.run(new Uint8Array(0)).status, 'loop');
  assert.equal(loop.interpret(new Uint8Array(0)).status, 'loop');
});
