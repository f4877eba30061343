/**
 * The reference meaning of every ALU and jump operation, on 64-bit values held as unsigned
 * BigInts (RFC 9669 §4, §5). The interpreter runs on these, the verifier folds constants
 * with them, and the compiled code is tested against them. Slow and obviously right.
 */
import {
  BPF_ADD,
  BPF_AND,
  BPF_ARSH,
  BPF_DIV,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_JLE,
  BPF_JLT,
  BPF_JNE,
  BPF_JSET,
  BPF_JSGE,
  BPF_JSGT,
  BPF_JSLE,
  BPF_JSLT,
  BPF_LSH,
  BPF_MOD,
  BPF_MOV,
  BPF_MUL,
  BPF_NEG,
  BPF_OR,
  BPF_RSH,
  BPF_SUB,
  BPF_XOR,
} from './opcodes.js';

export const MASK64 = (1n << 64n) - 1n;
export const MASK32 = (1n << 32n) - 1n;

/** The unsigned 64-bit value of a sign-extended 32-bit immediate. */
export function immToU64(imm: number): bigint {
  return BigInt.asUintN(64, BigInt(imm | 0));
}

function bswap(value: bigint, bits: number): bigint {
  let out = 0n;
  for (let i = 0; i < bits; i += 8) out = (out << 8n) | ((value >> BigInt(i)) & 0xffn);
  return out;
}

/**
 * A 64-bit ALU operation (`op` = the high nibble of the opcode); `off` selects the signed
 * division and modulo (1) and the sign-extending moves (8, 16, 32).
 */
export function alu64(op: number, dst: bigint, src: bigint, off: number): bigint {
  switch (op) {
    case BPF_ADD:
      return (dst + src) & MASK64;
    case BPF_SUB:
      return (dst - src) & MASK64;
    case BPF_MUL:
      return (dst * src) & MASK64;
    case BPF_DIV:
      if (src === 0n) return 0n;
      if (off === 1) return BigInt.asUintN(64, BigInt.asIntN(64, dst) / BigInt.asIntN(64, src));
      return dst / src;
    case BPF_MOD:
      if (src === 0n) return dst;
      if (off === 1) return BigInt.asUintN(64, BigInt.asIntN(64, dst) % BigInt.asIntN(64, src));
      return dst % src;
    case BPF_OR:
      return dst | src;
    case BPF_AND:
      return dst & src;
    case BPF_XOR:
      return dst ^ src;
    case BPF_LSH:
      return (dst << (src & 63n)) & MASK64;
    case BPF_RSH:
      return dst >> (src & 63n);
    case BPF_ARSH:
      return BigInt.asUintN(64, BigInt.asIntN(64, dst) >> (src & 63n));
    case BPF_NEG:
      return (-dst) & MASK64;
    case BPF_MOV:
      return off === 0 ? src : BigInt.asUintN(64, BigInt.asIntN(off, src));
    default:
      throw new Error(`alu64: unknown operation 0x${op.toString(16)}`);
  }
}

/** A 32-bit ALU operation: operands are the low halves, the result is zero-extended. */
export function alu32(op: number, dst: bigint, src: bigint, off: number): bigint {
  const d = dst & MASK32;
  const s = src & MASK32;
  switch (op) {
    case BPF_ADD:
      return (d + s) & MASK32;
    case BPF_SUB:
      return (d - s) & MASK32;
    case BPF_MUL:
      return (d * s) & MASK32;
    case BPF_DIV:
      if (s === 0n) return 0n;
      if (off === 1) return BigInt.asUintN(32, BigInt.asIntN(32, d) / BigInt.asIntN(32, s));
      return d / s;
    case BPF_MOD:
      if (s === 0n) return d;
      if (off === 1) return BigInt.asUintN(32, BigInt.asIntN(32, d) % BigInt.asIntN(32, s));
      return d % s;
    case BPF_OR:
      return d | s;
    case BPF_AND:
      return d & s;
    case BPF_XOR:
      return d ^ s;
    case BPF_LSH:
      return (d << (s & 31n)) & MASK32;
    case BPF_RSH:
      return d >> (s & 31n);
    case BPF_ARSH:
      return BigInt.asUintN(32, BigInt.asIntN(32, d) >> (s & 31n));
    case BPF_NEG:
      return (-d) & MASK32;
    case BPF_MOV:
      return off === 0 ? s : BigInt.asUintN(32, BigInt.asIntN(off, s));
    default:
      throw new Error(`alu32: unknown operation 0x${op.toString(16)}`);
  }
}

/**
 * Byte-order conversion: `toBe` (ALU class, source bit set) swaps on this little-endian
 * machine, `toLe` truncates; `bswap` (ALU64 class) always swaps.
 */
export function endian(value: bigint, bits: number, swap: boolean): bigint {
  const mask = bits === 64 ? MASK64 : (1n << BigInt(bits)) - 1n;
  const v = value & mask;
  return swap ? bswap(v, bits) : v;
}

/** Whether a conditional jump is taken; `wide` false compares the low 32 bits. */
export function jumpTaken(op: number, dst: bigint, src: bigint, wide: boolean): boolean {
  const bits = wide ? 64 : 32;
  const d = BigInt.asUintN(bits, dst);
  const s = BigInt.asUintN(bits, src);
  switch (op) {
    case BPF_JEQ:
      return d === s;
    case BPF_JNE:
      return d !== s;
    case BPF_JGT:
      return d > s;
    case BPF_JGE:
      return d >= s;
    case BPF_JLT:
      return d < s;
    case BPF_JLE:
      return d <= s;
    case BPF_JSET:
      return (d & s) !== 0n;
    case BPF_JSGT:
      return BigInt.asIntN(bits, d) > BigInt.asIntN(bits, s);
    case BPF_JSGE:
      return BigInt.asIntN(bits, d) >= BigInt.asIntN(bits, s);
    case BPF_JSLT:
      return BigInt.asIntN(bits, d) < BigInt.asIntN(bits, s);
    case BPF_JSLE:
      return BigInt.asIntN(bits, d) <= BigInt.asIntN(bits, s);
    default:
      throw new Error(`jump: unknown condition 0x${op.toString(16)}`);
  }
}
