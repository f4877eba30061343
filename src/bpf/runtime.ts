/**
 * What the interpreter and the compiled code share at run time: the address layout that
 * pointers live in, the execution budget, the context layout and the helper functions.
 *
 * Pointers are plain 64-bit values whose high half is 0 and whose low half falls in one
 * region of a private address space: the stack frames, the context, a data section or (raw
 * mode) the memory block. The verifier knows statically which region each access uses;
 * accesses whose offset it cannot prove are checked against that region at run time.
 */
import { debuglog } from 'node:util';

/** Bytes of stack per frame (the kernel's MAX_BPF_STACK). */
export const STACK_SIZE = 512;
/** Frames: the program plus 7 nested bpf-to-bpf calls (the kernel's MAX_CALL_FRAMES). */
export const MAX_FRAMES = 8;
/** Address of the lowest stack byte; frame `i` ends (its r10) at `STACK_BASE + (i + 1) * 512`. */
export const STACK_BASE = 0x0100_0000;
/** Address of the context (`struct __sk_buff`). */
export const CTX_BASE = 0x0200_0000;
/** Address of data region `i` (`.rodata`, `.data`, `.bss`): `DATA_BASE + i * DATA_STRIDE`. */
export const DATA_BASE = 0x0300_0000;
export const DATA_STRIDE = 0x0010_0000;
/** Address of the raw-mode memory block. */
export const MEM_BASE = 0x2000_0000;
/** The largest raw-mode memory block. */
export const MAX_MEM = 0x2000_0000;

/** Parser return values of runs that did not reach `exit` normally. */
export const RET_ELOOP = -40;
export const RET_EFAULT = -14;
export const RET_EINVAL = -22;

/** `struct __sk_buff` fields the engine knows. */
export const CTX_LEN = 0;
export const CTX_CB = 48;
export const CTX_CB_SIZE = 20;
export const CTX_DATA = 76;
export const CTX_DATA_END = 80;
/** u32 fields below this offset (other than len and cb) read as 0. */
export const CTX_READABLE_END = 76;

const traceLog = debuglog('kcm_bpf');

/** `bpf_ktime_get_ns`: a monotonic clock in nanoseconds, as [high, low] 32-bit halves. */
export function ktimeNs(): bigint {
  return process.hrtime.bigint();
}

/** `bpf_get_prandom_u32`. */
export function prandomU32(): number {
  return (Math.random() * 0x100000000) >>> 0;
}

/** What `bpf_trace_printk` returns for a format the kernel refuses. */
export const PRINTK_EINVAL = -22;

/**
 * `bpf_trace_printk(fmt, size, a, b, c)`: formats like the kernel's (%d %i %u %x %c %%, with
 * optional l/ll) to the `kcm_bpf` debug log (NODE_DEBUG=kcm_bpf). Returns the bytes written,
 * or -EINVAL where the kernel refuses the format: not NUL-terminated within `size`, more
 * than 3 conversions, or a conversion it does not know (%s and %p read kernel memory and are
 * not supported here).
 */
export function tracePrintk(fmt: Uint8Array, args: readonly bigint[]): number {
  const end = fmt.indexOf(0);
  if (end < 0) return PRINTK_EINVAL;
  const parts: string[] = [];
  let from = 0;
  let arg = 0;
  for (let i = 0; i < end; i++) {
    if (fmt[i] !== 0x25) continue;
    parts.push(latin1(fmt, from, i));
    i++;
    let longs = 0;
    while (i < end && fmt[i] === 0x6c && longs < 2) {
      longs++;
      i++;
    }
    const conv = i < end ? fmt[i]! : 0;
    from = i + 1;
    if (conv === 0x25 && longs === 0) {
      parts.push('%');
      continue;
    }
    if (arg >= 3) return PRINTK_EINVAL;
    const raw = args[arg++] ?? 0n;
    const wide = longs > 0;
    const v = wide ? raw : raw & 0xffffffffn;
    if (conv === 0x64 || conv === 0x69) parts.push(BigInt.asIntN(wide ? 64 : 32, v).toString());
    else if (conv === 0x75) parts.push(v.toString());
    else if (conv === 0x78) parts.push(v.toString(16));
    else if (conv === 0x63 && !wide) parts.push(String.fromCharCode(Number(v & 0xffn)));
    else return PRINTK_EINVAL;
  }
  parts.push(latin1(fmt, from, end));
  const out = parts.join('');
  if (traceLog.enabled) traceLog('%s', out);
  return out.length;
}

function latin1(bytes: Uint8Array, from: number, to: number): string {
  return from >= to ? '' : Buffer.from(bytes.buffer, bytes.byteOffset + from, to - from).toString('latin1');
}
