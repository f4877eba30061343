/** A small instruction builder for tests: each function returns one or two slots. */
import {
  BPF_ALU,
  BPF_ALU64,
  BPF_ATOMIC,
  BPF_CALL,
  BPF_EXIT,
  BPF_JMP,
  BPF_JMP32,
  BPF_K,
  BPF_LD,
  BPF_LDX,
  BPF_MEM,
  BPF_MEMSX,
  BPF_ST,
  BPF_STX,
  BPF_X,
  encodeInsns,
  type Insn,
} from '../../src/bpf/opcodes.js';

export type Size = 'b' | 'h' | 'w' | 'dw';
const SIZE: Record<Size, number> = { w: 0x00, h: 0x08, b: 0x10, dw: 0x18 };

export function insn(code: number, dst = 0, src = 0, off = 0, imm = 0): Insn {
  return { code, dst, src, off, imm: imm | 0 };
}

export const alu64 = (op: number, dst: number, imm: number, off = 0): Insn => insn(BPF_ALU64 | BPF_K | op, dst, 0, off, imm);
export const alu64r = (op: number, dst: number, src: number, off = 0): Insn => insn(BPF_ALU64 | BPF_X | op, dst, src, off, 0);
export const alu32 = (op: number, dst: number, imm: number, off = 0): Insn => insn(BPF_ALU | BPF_K | op, dst, 0, off, imm);
export const alu32r = (op: number, dst: number, src: number, off = 0): Insn => insn(BPF_ALU | BPF_X | op, dst, src, off, 0);
export const mov64 = (dst: number, imm: number): Insn => alu64(0xb0, dst, imm);
export const mov64r = (dst: number, src: number): Insn => alu64r(0xb0, dst, src);
export const jmp = (op: number, dst: number, imm: number, off: number): Insn => insn(BPF_JMP | BPF_K | op, dst, 0, off, imm);
export const jmpr = (op: number, dst: number, src: number, off: number): Insn => insn(BPF_JMP | BPF_X | op, dst, src, off, 0);
export const jmp32 = (op: number, dst: number, imm: number, off: number): Insn => insn(BPF_JMP32 | BPF_K | op, dst, 0, off, imm);
export const jmp32r = (op: number, dst: number, src: number, off: number): Insn => insn(BPF_JMP32 | BPF_X | op, dst, src, off, 0);
export const ja = (off: number): Insn => insn(BPF_JMP, 0, 0, off, 0);
export const exit = (): Insn => insn(BPF_JMP | BPF_EXIT);
export const call = (helper: number): Insn => insn(BPF_JMP | BPF_CALL, 0, 0, 0, helper);
export const callLocal = (rel: number): Insn => insn(BPF_JMP | BPF_CALL, 0, 1, 0, rel);
export const ldx = (size: Size, dst: number, src: number, off: number): Insn => insn(BPF_LDX | BPF_MEM | SIZE[size], dst, src, off, 0);
export const ldxs = (size: Size, dst: number, src: number, off: number): Insn => insn(BPF_LDX | BPF_MEMSX | SIZE[size], dst, src, off, 0);
export const stx = (size: Size, dst: number, src: number, off: number): Insn => insn(BPF_STX | BPF_MEM | SIZE[size], dst, src, off, 0);
export const st = (size: Size, dst: number, off: number, imm: number): Insn => insn(BPF_ST | BPF_MEM | SIZE[size], dst, 0, off, imm);
export const atomic = (size: 'w' | 'dw', dst: number, src: number, off: number, op: number): Insn => insn(BPF_STX | BPF_ATOMIC | SIZE[size], dst, src, off, op);
export const ldabs = (size: Size, imm: number): Insn => insn(BPF_LD | 0x20 | SIZE[size], 0, 0, 0, imm);
export const ldind = (size: Size, src: number, imm: number): Insn => insn(BPF_LD | 0x40 | SIZE[size], 0, src, 0, imm);

/** `lddw dst, value`: two slots. */
export function lddw(dst: number, value: bigint): Insn[] {
  const v = BigInt.asUintN(64, value);
  return [insn(0x18, dst, 0, 0, Number(v & 0xffffffffn) | 0), insn(0, 0, 0, 0, Number(v >> 32n) | 0)];
}

/** Program bytes from instructions (nested arrays are flattened). */
export function program(...parts: (Insn | Insn[])[]): Uint8Array {
  return encodeInsns(parts.flat());
}
