/**
 * The eBPF instruction encoding (RFC 9669): classes, operations, modes and sizes, and the
 * decoded form of one 8-byte instruction slot.
 */

/** Bytes in one instruction slot. */
export const INSN_SIZE = 8;

/** Instruction classes (the low 3 bits of the opcode). */
export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_JMP32 = 0x06;
export const BPF_ALU64 = 0x07;

/** Source operand: immediate or register (bit 3 of ALU and jump opcodes). */
export const BPF_K = 0x00;
export const BPF_X = 0x08;

/** ALU operations (the high 4 bits). */
export const BPF_ADD = 0x00;
export const BPF_SUB = 0x10;
export const BPF_MUL = 0x20;
export const BPF_DIV = 0x30;
export const BPF_OR = 0x40;
export const BPF_AND = 0x50;
export const BPF_LSH = 0x60;
export const BPF_RSH = 0x70;
export const BPF_NEG = 0x80;
export const BPF_MOD = 0x90;
export const BPF_XOR = 0xa0;
export const BPF_MOV = 0xb0;
export const BPF_ARSH = 0xc0;
export const BPF_END = 0xd0;

/** Jump operations (the high 4 bits). */
export const BPF_JA = 0x00;
export const BPF_JEQ = 0x10;
export const BPF_JGT = 0x20;
export const BPF_JGE = 0x30;
export const BPF_JSET = 0x40;
export const BPF_JNE = 0x50;
export const BPF_JSGT = 0x60;
export const BPF_JSGE = 0x70;
export const BPF_CALL = 0x80;
export const BPF_EXIT = 0x90;
export const BPF_JLT = 0xa0;
export const BPF_JLE = 0xb0;
export const BPF_JSLT = 0xc0;
export const BPF_JSLE = 0xd0;

/** Load and store modes (the high 3 bits). */
export const BPF_IMM = 0x00;
export const BPF_ABS = 0x20;
export const BPF_IND = 0x40;
export const BPF_MEM = 0x60;
export const BPF_MEMSX = 0x80;
export const BPF_ATOMIC = 0xc0;

/** Load and store sizes (bits 3-4). */
export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_DW = 0x18;

/** Atomic operations (the immediate of a BPF_ATOMIC store). */
export const BPF_FETCH = 0x01;
export const BPF_XCHG = 0xe0 | BPF_FETCH;
export const BPF_CMPXCHG = 0xf0 | BPF_FETCH;

/** `src` values of `call`: a helper, a function of the program, a kernel function. */
export const BPF_PSEUDO_CALL = 1;
export const BPF_PSEUDO_KFUNC_CALL = 2;

/** `src` values of `lddw`. */
export const BPF_PSEUDO_MAP_FD = 1;
/** A value of a data section: imm = region index, the second slot's imm = offset in it. */
export const BPF_PSEUDO_MAP_VALUE = 2;

/** Registers: r0 (return value), r1-r5 (arguments), r6-r9 (callee saved), r10 (frame pointer). */
export const REG_COUNT = 11;
export const FP = 10;

/** One decoded instruction slot. `imm` is the signed 32-bit immediate. */
export interface Insn {
  readonly code: number;
  readonly dst: number;
  readonly src: number;
  readonly off: number;
  readonly imm: number;
}

/** The class of an opcode. */
export function opClass(code: number): number {
  return code & 0x07;
}

/** Bytes moved by a load or store of the size in `code`. */
export function sizeBytes(code: number): 1 | 2 | 4 | 8 {
  switch (code & 0x18) {
    case BPF_B:
      return 1;
    case BPF_H:
      return 2;
    case BPF_W:
      return 4;
    default:
      return 8;
  }
}

/**
 * Decodes instruction slots from little-endian bytes. The caller checks that `bytes.length`
 * is a multiple of {@link INSN_SIZE}.
 */
export function decodeInsns(bytes: Uint8Array): Insn[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = Math.floor(bytes.byteLength / INSN_SIZE);
  const out: Insn[] = new Array<Insn>(count);
  for (let i = 0; i < count; i++) {
    const at = i * INSN_SIZE;
    const regs = view.getUint8(at + 1);
    out[i] = {
      code: view.getUint8(at),
      dst: regs & 0x0f,
      src: regs >> 4,
      off: view.getInt16(at + 2, true),
      imm: view.getInt32(at + 4, true),
    };
  }
  return out;
}

/** Encodes instructions back to bytes (used by tests and the disassembler's hex column). */
export function encodeInsns(insns: readonly Insn[]): Uint8Array {
  const out = new Uint8Array(insns.length * INSN_SIZE);
  const view = new DataView(out.buffer);
  for (let i = 0; i < insns.length; i++) {
    const insn = insns[i]!;
    const at = i * INSN_SIZE;
    view.setUint8(at, insn.code);
    view.setUint8(at + 1, ((insn.src & 0x0f) << 4) | (insn.dst & 0x0f));
    view.setInt16(at + 2, insn.off, true);
    view.setInt32(at + 4, insn.imm, true);
  }
  return out;
}

/** True for `lddw`, the only instruction that takes two slots. */
export function isLddw(code: number): boolean {
  return code === (BPF_LD | BPF_IMM | BPF_DW);
}

/** Helper function ids the engine implements, by number. */
export const HELPERS: ReadonlyMap<number, string> = new Map([
  [5, 'bpf_ktime_get_ns'],
  [6, 'bpf_trace_printk'],
  [7, 'bpf_get_prandom_u32'],
  [8, 'bpf_get_smp_processor_id'],
  [26, 'bpf_skb_load_bytes'],
  [68, 'bpf_skb_load_bytes_relative'],
]);
