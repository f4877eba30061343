/**
 * Self-checking frames for the soak, and a scanner that reads frame headers out of a
 * byte stream as it passes (in either direction of a transport), so that the soak knows
 * which connection carried each message without touching the multiplexor.
 *
 * Frame: length (4, excluding itself), source (4), sequence (4), CRC-32 of the body (4),
 * body. The body is a slice of a random tape at an offset derived from (source,
 * sequence): a misplaced, foreign or flipped byte fails both the CRC and the comparison.
 */
import { crc32 } from 'node:zlib';

export const HEADER = 16;
const TAPE_SPAN = 1024 * 1024;
const TAPE = (() => {
  let a = 0x6b636d;
  const t = Buffer.allocUnsafe(TAPE_SPAN * 2);
  for (let i = 0; i < t.length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), a | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    t[i] = (x ^ (x >>> 14)) & 0xff;
  }
  return t;
})();

function tapeOffset(src: number, seq: number): number {
  return ((Math.imul(src + 1, 0x9e3779b1) ^ Math.imul(seq + 1, 0x85ebca6b)) >>> 0) & (TAPE_SPAN - 1);
}

/** A message id: source and sequence in one number. */
export function key(src: number, seq: number): number {
  return src * 0x100000000 + seq;
}

/** The frame of (src, seq) with a body of `size` bytes, as parts (the body is not copied). */
export function makeFrame(src: number, seq: number, size: number): [Buffer, Buffer] {
  const at = tapeOffset(src, seq);
  const body = TAPE.subarray(at, at + size);
  const h = Buffer.allocUnsafe(HEADER);
  h.writeUInt32BE(HEADER - 4 + size, 0);
  h.writeUInt32BE(src, 4);
  h.writeUInt32BE(seq, 8);
  h.writeUInt32BE(crc32(body), 12);
  return [h, body];
}

/** Checks a received frame; returns its id, or a string saying what is wrong. */
export function checkFrame(m: Buffer): { src: number; seq: number } | string {
  if (m.length < HEADER) return `frame of ${m.length} bytes`;
  if (m.readUInt32BE(0) + 4 !== m.length) return `length field ${m.readUInt32BE(0)} for ${m.length} bytes`;
  const src = m.readUInt32BE(4);
  const seq = m.readUInt32BE(8);
  const body = m.subarray(HEADER);
  if (body.length > TAPE_SPAN) return `body of ${body.length} bytes`;
  if (crc32(body) !== m.readUInt32BE(12)) return `${src}/${seq}: CRC mismatch`;
  const at = tapeOffset(src, seq);
  if (!body.equals(TAPE.subarray(at, at + body.length))) return `${src}/${seq}: body differs from the tape`;
  return { src, seq };
}

/**
 * Reads frame headers from a stream given in arbitrary chunks; calls `onHeader(src, seq)`
 * at each frame's header. Bodies are skipped without copying.
 */
export class HeaderScanner {
  private skip = 0;
  private readonly head = Buffer.alloc(12);
  private have = 0;

  constructor(private readonly onHeader: (src: number, seq: number) => void) {}

  /** Forgets a partial frame: the next byte starts a new one (a write restarted from byte 0). */
  reset(): void {
    this.skip = 0;
    this.have = 0;
  }

  push(chunk: Uint8Array): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, end - pos);
        this.skip -= n;
        pos += n;
        continue;
      }
      const n = Math.min(12 - this.have, end - pos);
      for (let i = 0; i < n; i++) this.head[this.have + i] = chunk[pos + i]!;
      this.have += n;
      pos += n;
      if (this.have === 12) {
        this.have = 0;
        this.onHeader(this.head.readUInt32BE(4), this.head.readUInt32BE(8));
        this.skip = this.head.readUInt32BE(0) + 4 - 12;
      }
    }
  }
}

/** A body size from 0 to 256 KiB, skewed small. */
export function skewedSize(r: () => number): number {
  const x = r();
  if (x < 0.8) return (r() * 512) | 0;
  if (x < 0.97) return (r() * 16384) | 0;
  return (r() * 256 * 1024) | 0;
}

/** The tests' seeded generator, so a failing soak can be replayed from its seed. */
export { rng } from '../../helpers/traffic.js';
