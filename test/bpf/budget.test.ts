/**
 * The run budget bounds time, not instructions: helpers pay by the bytes they touch, so a
 * loop of large copies or long formats stops after a bounded amount of work, and
 * bpf_trace_printk refuses what the kernel refuses. Work is counted (in a .data counter the
 * program keeps across runs), not timed: the CPU time is measured by bench/bpf-runaway.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RUN_BUDGET, loadBytesCost, printkCost } from '../../src/bpf/budget.js';
import { compileParser } from '../../src/bpf/compiler.js';
import { Interpreter } from '../../src/bpf/interpreter.js';
import { rawProgram, type LinkedProgram } from '../../src/bpf/linker.js';
import type { Insn } from '../../src/bpf/opcodes.js';
import { tracePrintk } from '../../src/bpf/runtime.js';
import { verify } from '../../src/bpf/verifier.js';
import * as A from './asm.js';

/** `lddw dst, &region[offset]`. */
const mapValue = (dst: number, region: number, offset: number): Insn[] => [A.insn(0x18, dst, 2, 0, region), A.insn(0, 0, 0, 0, offset)];

function engines(insns: (Insn | Insn[])[], regions: LinkedProgram['regions']): ((d: Buffer) => number)[] {
  const prog: LinkedProgram = { ...rawProgram(A.program(...insns)), regions };
  const analysis = verify(prog, 'parser');
  const interpreter = new Interpreter(prog, analysis);
  return [compileParser(prog, analysis), (d) => interpreter.runParser(d)];
}

/**
 * A program that, on a message starting 'R', reports how many loop iterations the previous
 * run made (a counter in region 0); otherwise it loops forever on `work`, counting.
 */
function counting(work: Insn[]): Insn[] {
  const loop: Insn[] = [...work, A.mov64(8, 1), A.atomic('dw', 7, 8, 0, 0x00), A.jmp(0x55, 0, 0x7fffffff, -(work.length + 3))];
  return [
    ...mapValue(7, 0, 0), // 0-1: r7 = &counter
    A.mov64r(6, 1), // 2
    A.ldabs('b', 0), // 3
    A.jmp(0x15, 0, 0x52, loop.length + 2), // 4: 'R' reports
    A.st('dw', 7, 0, 0), // 5: the counter restarts
    ...loop,
    A.exit(),
    A.ldx('dw', 0, 7, 0),
    A.exit(),
  ];
}

test('a loop of 1 MiB bpf_skb_load_bytes on a 1 MiB message stops with -ELOOP after a bounded number of copies', () => {
  const work = [A.mov64r(1, 6), A.mov64(2, 0), ...mapValue(3, 1, 0), A.mov64(4, 1 << 20), A.call(26)];
  const regions = [
    { name: '.data', bytes: new Uint8Array(8), writable: true },
    { name: '.bss', bytes: new Uint8Array(1 << 20), writable: true },
  ];
  const message = Buffer.alloc(1 << 20, 0x41);
  for (const run of engines(counting(work), regions)) {
    assert.equal(run(message), -40);
    const copies = run(Buffer.from('R'));
    assert.ok(copies >= 1 && copies <= Math.ceil(RUN_BUDGET / loadBytesCost(1 << 20)), `${copies} copies of 1 MiB`);
  }
});

test('a loop of bpf_trace_printk over a 4 KiB format stops after a bounded number of calls', () => {
  const format = new Uint8Array(4096).fill(0x61);
  format.set(Buffer.from('%d %u %x'));
  format[4095] = 0;
  const work = [...mapValue(1, 1, 0), A.mov64(2, 4096), A.mov64(3, 1), A.mov64(4, 2), A.mov64(5, 3), A.call(6)];
  const regions = [
    { name: '.data', bytes: new Uint8Array(8), writable: true },
    { name: '.rodata', bytes: format, writable: false },
  ];
  for (const run of engines(counting(work), regions)) {
    assert.equal(run(Buffer.from('x')), -40);
    const calls = run(Buffer.from('R'));
    assert.ok(calls >= 1 && calls <= Math.ceil(RUN_BUDGET / printkCost(4096)), `${calls} calls`);
  }
});

test('bpf_trace_printk refuses what the kernel refuses: no NUL within the size, more than 3 conversions', () => {
  const b = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'latin1'));
  assert.equal(tracePrintk(b('n=%d\0'), [5n]), 3);
  assert.equal(tracePrintk(b('no terminator %d'), [5n]), -22);
  assert.equal(tracePrintk(b('%d %d %d %d\0'), [1n, 2n, 3n]), -22);
  assert.equal(tracePrintk(b('%d %d %d %%\0'), [1n, 2n, 3n]), 7);
  assert.equal(tracePrintk(b('%s\0'), [0n]), -22);
  // The result reaches r0 sign-extended, compiled and interpreted alike.
  const fmt = { name: '.rodata', bytes: b('%s\0'), writable: false };
  for (const run of engines([...mapValue(1, 0, 0), A.mov64(2, 3), A.mov64(3, 0), A.call(6), A.exit()], [fmt])) assert.equal(run(Buffer.alloc(0)), -22);
});
