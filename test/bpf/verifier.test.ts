import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KcmError } from '../../src/errors.js';
import { rawProgram, type LinkedProgram } from '../../src/bpf/linker.js';
import { encodeInsns, type Insn } from '../../src/bpf/opcodes.js';
import { verify, type Mode } from '../../src/bpf/verifier.js';
import * as A from './asm.js';

function refused(insns: (Insn | Insn[])[], pattern: RegExp, mode: Mode = 'parser', regions: LinkedProgram['regions'] = []): void {
  const prog: LinkedProgram = { ...rawProgram(A.program(...insns)), regions };
  assert.throws(
    () => verify(prog, mode),
    (e: unknown) => {
      assert.ok(e instanceof KcmError, String(e));
      assert.equal(e.code, 'EINVAL');
      assert.match(e.message, pattern);
      return true;
    },
  );
}

test('accepts a minimal program and reports loops', () => {
  const a = verify(rawProgram(A.program(A.mov64(0, 0), A.exit())), 'parser');
  assert.equal(a.hasLoops, false);
  const b = verify(rawProgram(A.program(A.mov64(0, 0), A.alu64(0, 0, 1), A.jmp(0xa0, 0, 10, -2), A.exit())), 'parser');
  assert.equal(b.hasLoops, true);
});

test('refusal messages name the instruction index, its disassembly and the reason', () => {
  refused([A.mov64(1, 0), A.exit()], /^bpf: verifier refused instruction 1 'exit': r0 at exit is read before it is written$/);
});

test('refuses unknown opcodes', () => {
  refused([A.mov64(0, 0), A.insn(0xe7), A.exit()], /instruction 1 '<invalid 0xe7>': unknown ALU operation 0xe0/);
  refused([A.insn(0xff), A.exit()], /instruction 0 .*unknown/);
  refused([A.insn(0x38), A.exit()], /instruction 0 .*unknown load opcode/);
});

test('refuses reserved fields that are not zero', () => {
  refused([A.mov64(0, 0), A.insn(0x95, 0, 0, 0, 1)], /instruction 1 'exit': reserved fields of exit must be zero/);
  refused([A.insn(0x07, 0, 3, 0, 1), A.exit()], /source register of an immediate operation must be zero/);
  refused([A.insn(0x0f, 0, 1, 0, 5), A.exit()], /immediate of a register operation must be zero/);
  refused([A.insn(0x07, 0, 0, 4, 1), A.exit()], /offset of an ALU operation must be zero/);
  refused([A.insn(0xd4, 0, 0, 0, 24), A.exit()], /byte swap width 24/);
  refused([A.insn(0x05, 0, 0, 1, 0), A.mov64(0, 0), A.exit()].map((x, i) => (i === 0 ? A.insn(0x05, 1, 0, 1, 0) : x)), /reserved fields of goto must be zero/);
});

test('refuses jumps out of range and into lddw', () => {
  refused([A.mov64(0, 0), A.ja(5), A.exit()], /instruction 1 'goto \+5': jump target 7 is outside the function/);
  refused([A.mov64(0, 0), A.ja(-3), A.exit()], /jump target -1 is outside/);
  refused([A.mov64(0, 0), A.ja(1), A.lddw(1, 5n), A.exit()], /jump target 3 is the middle of lddw/);
});

test('refuses falling off the end', () => {
  refused([A.mov64(0, 0)], /instruction 0 'r0 = 0': the program falls off the end/);
  refused([A.mov64(0, 0), A.jmp(0x10, 0, 0, -2)], /instruction 1 .*falls off the end/);
});

test('refuses reads of registers never written, and of r1-r5 after a call', () => {
  refused([A.mov64r(0, 7), A.exit()], /instruction 0 'r0 = r7': r7 is read before it is written/);
  refused([A.mov64(2, 1), A.call(7), A.mov64r(0, 2), A.exit()], /instruction 2 'r0 = r2': r2 is read before it is written/);
  refused([A.call(7), A.jmp(0x10, 0, 0, 1), A.mov64(7, 1), A.mov64r(0, 7), A.exit()], /r7 is read before it is written/);
  // A side that known values rule out is not followed, as in the kernel.
  verify(rawProgram(A.program(A.mov64(0, 1), A.jmp(0x10, 0, 0, 1), A.mov64(7, 1), A.mov64r(0, 7), A.exit())), 'parser');
});

test('refuses writes to r10', () => {
  refused([A.mov64(10, 0), A.mov64(0, 0), A.exit()], /instruction 0 'r10 = 0': the frame pointer r10 is read-only/);
  refused([A.ldx('dw', 10, 1, 0), A.mov64(0, 0), A.exit()], /frame pointer r10 is read-only/);
});

test('refuses stack accesses outside the 512-byte frame', () => {
  refused([A.st('w', 10, -516, 1), A.mov64(0, 0), A.exit()], /instruction 0 .*stack access at r10-516 of 4 bytes is outside the 512-byte frame/);
  refused([A.st('dw', 10, -4, 1), A.mov64(0, 0), A.exit()], /stack access at r10-4 of 8 bytes/);
  refused([A.mov64r(2, 10), A.alu64(0, 2, 8), A.ldx('b', 0, 2, -8), A.exit()], /stack access at r10\+0 of 1 bytes/);
});

test('refuses memory accesses through anything but a pointer', () => {
  refused([A.mov64(2, 100), A.ldx('w', 0, 2, 0), A.exit()], /instruction 1 .*r2 is not a pointer/);
  refused([A.lddw(2, 0x2000000n), A.ldx('w', 0, 2, 0), A.exit()], /r2 is not a pointer/);
  // A register that is the context on one path and the stack on another.
  refused([A.mov64r(2, 1), A.jmp(0x10, 1, 0, 1), A.mov64r(2, 10), A.ldx('w', 0, 2, -4), A.exit()], /r2 holds different kinds of pointer/);
});

test('refuses context accesses other than len and cb', () => {
  refused([A.st('w', 1, 0, 5), A.mov64(0, 0), A.exit()], /write to context offset 0: only skb->cb\[0..4\] is writable/);
  refused([A.ldx('w', 0, 1, 76), A.exit()], /direct packet access/);
  refused([A.ldx('w', 0, 1, 200), A.exit()], /invalid context access at offset 200/);
  refused([A.alu64(0, 1, 4), A.ldx('w', 0, 1, 0), A.exit()], /modified context pointer/);
  refused([A.atomic('w', 1, 2, 48, 0), A.mov64(0, 0), A.exit()], /r2 is read before|atomic operation on the context/);
});

test('refuses unknown helpers, kfuncs, callx and the skb helper in raw mode', () => {
  refused([A.call(9999), A.exit()], /instruction 0 'call 9999': unknown helper function 9999/);
  refused([A.call(1), A.exit()], /unknown helper function 1/);
  refused([A.insn(0x85, 0, 2, 0, 1), A.exit()], /kernel functions/);
  refused([A.insn(0x8d, 1, 0, 0, 0), A.exit()], /callx/);
  refused([A.call(26), A.exit()], /needs a socket buffer context/, 'raw');
  refused([A.mov64(1, 0), A.call(26), A.exit()], /r1 of bpf_skb_load_bytes must be the context/);
});

test('refuses maps, and writes to read-only data', () => {
  refused([A.insn(0x18, 1, 1, 0, 3), A.insn(0), A.mov64(0, 0), A.exit()], /maps are not supported/);
  const rodata = [{ name: '.rodata', bytes: new Uint8Array(8), writable: false }];
  refused([A.insn(0x18, 1, 2, 0, 0), A.insn(0, 0, 0, 0, 0), A.st('w', 1, 0, 1), A.mov64(0, 0), A.exit()], /write to read-only section .rodata/, 'parser', rodata);
  refused([A.insn(0x18, 1, 2, 0, 0), A.insn(0, 0, 0, 0, 0), A.ldx('w', 0, 1, 6), A.exit()], /outside .rodata/, 'parser', rodata);
});

test('refuses packet loads without the context in r6 (parser mode)', () => {
  refused([A.ldabs('w', 0), A.exit()], /instruction 0 'r0 = \*\(u32 \*\)skb\[0\]': packet loads need the context in r6/);
});

test('refuses recursion and calls nested deeper than 8 frames', () => {
  refused([A.callLocal(1), A.exit(), A.callLocal(-1), A.exit()], /recursive call/);
  // f0 -> f1 -> ... -> f8: nine frames.
  const chain: Insn[] = [];
  for (let i = 0; i < 9; i++) chain.push(A.callLocal(1), A.exit());
  chain.push(A.mov64(0, 0), A.exit());
  // Each function calls the next one (two slots later): rel = 1 skips its own exit.
  refused(chain, /calls nest deeper than 8 frames/);
  const ok: Insn[] = [];
  for (let i = 0; i < 7; i++) ok.push(A.callLocal(1), A.exit());
  ok.push(A.mov64(0, 0), A.exit());
  verify(rawProgram(A.program(ok)), 'parser');
});

test('refuses empty programs and more than 16384 instructions', () => {
  refused([], /the program is empty/);
  assert.throws(() => rawProgram(new Uint8Array(8 * 16_385)), /exceeds 16384 instructions/);
  assert.throws(() => rawProgram(new Uint8Array(12)), /not a whole number of 8-byte instructions/);
  void encodeInsns;
});

test('refuses what the kernel refuses: division by an immediate zero, immediate shifts past the width', () => {
  refused([A.mov64(0, 5), A.alu64(0x30, 0, 0), A.exit()], /instruction 1 .*division by an immediate zero/);
  refused([A.mov64(0, 5), A.alu32(0x90, 0, 0), A.exit()], /division by an immediate zero/);
  refused([A.mov64(0, 5), A.alu64(0x60, 0, 64), A.exit()], /shift by 64, outside 0\.\.63/);
  refused([A.mov64(0, 5), A.alu32(0xc0, 0, 32), A.exit()], /shift by 32, outside 0\.\.31/);
  refused([A.mov64(0, 5), A.alu32(0x70, 0, -1), A.exit()], /shift by -1/);
  verify(rawProgram(A.program(A.mov64(0, 5), A.alu64(0x60, 0, 63), A.alu32(0x70, 0, 31), A.alu64(0x30, 0, 2), A.exit())), 'parser');
});

test('refuses unreachable instructions, as the kernel refuses dead code', () => {
  refused([A.mov64(0, 0), A.exit(), A.mov64(0, 1), A.exit()], /instruction 2 'r0 = 1': the instruction is unreachable/);
  refused([A.mov64(0, 0), A.ja(1), A.mov64(0, 1), A.exit()], /instruction 2 .*unreachable/);
});

test('refuses arithmetic on pointers other than 64-bit + and -', () => {
  refused([A.mov64r(2, 10), A.alu64(0x50, 2, -8), A.mov64(0, 0), A.exit()], /instruction 1 'r2 &= -8': bitwise operation on the pointer r2/);
  refused([A.mov64r(2, 10), A.alu64(0x20, 2, 2), A.mov64(0, 0), A.exit()], /arithmetic other than \+ and - on the pointer r2/);
  refused([A.mov64r(2, 1), A.alu32(0x00, 2, 4), A.mov64(0, 0), A.exit()], /32-bit arithmetic on the pointer r2/);
  refused([A.mov64(2, 4), A.alu64r(0x10, 2, 10), A.mov64(0, 0), A.exit()], /scalar - pointer r10/);
  refused([A.mov64r(2, 10), A.alu64r(0x00, 2, 1), A.mov64(0, 0), A.exit()], /pointer \+ pointer/);
  // 64-bit + and - move a pointer; pointer - pointer is a number.
  verify(rawProgram(A.program(A.mov64r(2, 10), A.alu64(0x00, 2, -8), A.st('dw', 2, 0, 1), A.mov64r(0, 10), A.alu64r(0x10, 0, 2), A.exit())), 'parser');
});

test('refuses call chains whose frames together exceed 512 bytes', () => {
  // main uses 256 bytes, then calls f, which uses 272: 528 bytes together.
  refused(
    [A.st('dw', 10, -256, 0), A.callLocal(1), A.exit(), A.st('dw', 10, -272, 0), A.mov64(0, 0), A.exit()],
    /instruction 1 'call \+1': the frames of this chain of calls take 528 bytes of stack together, more than 512/,
  );
  verify(rawProgram(A.program(A.st('dw', 10, -256, 0), A.callLocal(1), A.exit(), A.st('dw', 10, -256, 0), A.mov64(0, 0), A.exit())), 'parser');
});
