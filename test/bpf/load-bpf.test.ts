import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { KcmError, loadBpf } from '../../src/index.js';
import { compileParser } from '../../src/bpf/compiler.js';
import { Interpreter } from '../../src/bpf/interpreter.js';
import { rawProgram } from '../../src/bpf/linker.js';
import { loadProgram } from '../../src/bpf/load-bpf.js';
import { verify } from '../../src/bpf/verifier.js';
import { lengthField } from '../../src/parsers/length-field.js';
import { kPositionalParser, type Parser } from '../../src/parsers/parser.js';
import { StreamParser } from '../../src/parsers/stream-parser.js';
import * as A from './asm.js';
import { chunk, frame } from './stream.js';

const here = dirname(fileURLToPath(import.meta.url));

/** Frames chunks with the real stream parser: messages and the error code, if any. */
function streamFrame(parser: Parser, chunks: readonly Uint8Array[]): { messages: string[]; error?: string } {
  const messages: string[] = [];
  let error: string | undefined;
  const sp = new StreamParser({ parser, maxMessageSize: 1 << 20 }, {
    onMessage: (m) => (messages.push(m.toString('hex')), true),
    onError: (e) => {
      error = e.code;
    },
  });
  for (const c of chunks) sp.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  return error === undefined ? { messages } : { messages, error };
}
/** The fixtures live beside the sources, not in dist/. */
export const fixtures = join(here, '..', '..', '..', 'test', 'fixtures', 'bpf');
const fixture = (name: string): string => join(fixtures, `${name}.o`);

interface Protocol {
  /** A JS parser that frames the same streams. */
  parser: Parser;
  /** Encodes one payload as a whole frame. */
  encode(payload: Uint8Array, n: number): Buffer;
  /** A frame the protocol rejects, if any. */
  bad?: Buffer;
}

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return b;
};

function varint(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

const HEADER_SIZE = [3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32, 40, 48, 56, 64, 128];

const protocols: Record<string, Protocol> = {
  thrift: {
    parser: lengthField({ size: 4, adjust: 4 }),
    encode: (p) => Buffer.concat([u32(p.length), p]),
  },
  'dns-tcp': {
    parser: lengthField({ size: 2, adjust: 2 }),
    encode: (p) => Buffer.concat([Buffer.from([p.length >> 8, p.length & 0xff]), p]),
  },
  http2: {
    parser: lengthField({ size: 3, adjust: 9 }),
    encode: (p, n) => Buffer.concat([Buffer.from([p.length >> 16, (p.length >> 8) & 0xff, p.length & 0xff, n & 0xff, 0, 0, 0, 0, 1]), p]),
  },
  memcached: {
    parser: (d) => {
      if (d.length < 1) return 0;
      if (d[0] !== 0x80 && d[0] !== 0x81) return -74;
      return d.length < 12 ? 0 : (d.readUInt32BE(8) + 24) | 0;
    },
    encode: (p, n) => {
      const h = Buffer.alloc(24);
      h[0] = n % 2 === 0 ? 0x80 : 0x81;
      h.writeUInt32BE(p.length, 8);
      return Buffer.concat([h, p]);
    },
    bad: Buffer.from([0x7f, 0, 0, 0]),
  },
  mqtt: {
    parser: (d) => {
      let value = 0;
      for (let i = 0; i < 4; i++) {
        if (d.length < 2 + i) return 0;
        const b = d[1 + i]!;
        value |= (b & 0x7f) << (7 * i);
        if (!(b & 0x80)) return 1 + (i + 1) + value;
      }
      return -74;
    },
    encode: (p, n) => Buffer.concat([Buffer.from([0x30 | (n & 0x0f), ...varint(p.length)]), p]),
    bad: Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
  },
  postgres: {
    parser: (d) => {
      if (d.length < 5) return 0;
      const len = d.readInt32BE(1);
      return len < 4 ? -74 : (len + 1) | 0;
    },
    encode: (p, n) => Buffer.concat([Buffer.from([0x41 + (n % 26)]), u32(p.length + 4), p]),
    bad: Buffer.from([0x52, 0, 0, 0, 2]),
  },
  tagged: {
    parser: (d) => {
      if (d.length < 1) return 0;
      if (d[0]! & 0x80) return -74;
      if (d.length < 3) return 0;
      return HEADER_SIZE[d[0]! & 15]! + d.readUInt16BE(1);
    },
    encode: (p, n) => {
      const tag = n % 16;
      const h = Buffer.alloc(HEADER_SIZE[tag]!);
      h[0] = tag;
      h.writeUInt16BE(p.length, 1);
      return Buffer.concat([h, p]);
    },
    bad: Buffer.from([0x90, 0, 0]),
  },
};

test('every fixture has its C source, its object and a protocol model', () => {
  const names = readdirSync(fixtures).filter((f) => f.endsWith('.c')).map((f) => f.slice(0, -2)).sort();
  assert.deepEqual(names, Object.keys(protocols).sort());
  for (const name of names) assert.ok(readFileSync(fixture(name)).length > 64, name);
});

for (const [name, proto] of Object.entries(protocols)) {
  test(`[F-8][F-3] ${name}: the object frames the same streams as the JS parser, under any chunking`, () => {
    const bpf = loadBpf(fixture(name));
    assert.equal(typeof (bpf as Parser & { [kPositionalParser]?: unknown })[kPositionalParser], 'function');
    const { program, analysis } = loadProgram(fixture(name));
    const oracle = new Interpreter(program, analysis);
    const interp: Parser = (d) => oracle.runParser(d);
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }),
        fc.array(fc.nat(4000), { maxLength: 10 }),
        fc.boolean(),
        (payloads, cuts, withBad) => {
          const frames = payloads.map((p, i) => proto.encode(p, i));
          if (withBad && proto.bad !== undefined) frames.push(proto.bad);
          const stream = Buffer.concat(frames);
          const chunks = chunk(stream, cuts);
          const expected = frame(proto.parser, chunks);
          assert.deepEqual(frame(bpf, chunks), expected);
          assert.deepEqual(frame(interp, chunks), expected);
          // In the stream parser the compiled program runs in place (no view per message).
          const inPlace = streamFrame(bpf, chunks);
          assert.deepEqual(inPlace, streamFrame(proto.parser, chunks));
          assert.deepEqual(inPlace, streamFrame((d) => bpf(d), chunks));
          if (!withBad || proto.bad === undefined) assert.equal(expected.messages.length, frames.length);
        },
      ),
      { numRuns: 150 },
    );
  });
}

test('thrift: the result is the low 32 bits of r0, signed [F-4]', () => {
  const parse = loadBpf(fixture('thrift'));
  assert.equal(parse(Buffer.from([0x7f, 0xff, 0xff, 0xfc])), 0x7fffffff + 1 - 2 ** 32);
  assert.equal(parse(Buffer.from([0xff, 0xff, 0xff, 0xfc])), 0);
  assert.equal(parse(Buffer.from([0xff, 0xff, 0xff, 0xfd])), 1);
  assert.equal(parse(Buffer.from([0, 0, 0])), 0);
});

test('[F-1] loadBpf accepts bytes as well as a path, and options pick the program', () => {
  const bytes = readFileSync(fixture('dns-tcp'));
  assert.equal(loadBpf(new Uint8Array(bytes))(Buffer.from([0, 5])), 7);
  assert.equal(loadBpf(bytes, { section: 'socket_kcm', program: 'dns_tcp_parser' })(Buffer.from([0, 1])), 3);
  assert.throws(() => loadBpf(bytes, { section: 'nope' }), (e: unknown) => e instanceof KcmError && e.code === 'EINVAL' && /no program section 'nope'/.test(e.message));
  assert.throws(() => loadBpf(bytes, { program: 'nope' }), (e: unknown) => e instanceof KcmError && e.code === 'EINVAL' && /no program 'nope'/.test(e.message));
  assert.throws(() => loadBpf(join(fixtures, 'missing.o')), (e: unknown) => e instanceof KcmError && e.code === 'ENOENT');
  assert.throws(() => loadBpf(42 as unknown as string), (e: unknown) => e instanceof TypeError && (e as { code?: string }).code === 'ERR_INVALID_ARG_TYPE');
});

test('[F-7][F-2][F-3] skb->cb is zeroed scratch for each run; skb->len is the bytes available', () => {
  // r0 = cb[0]; cb[0] = skb->len; return r0 + skb->len
  const prog = rawProgram(
    A.program(A.ldx('w', 0, 1, 48), A.ldx('w', 2, 1, 0), A.stx('w', 1, 2, 48), A.alu64r(0x00, 0, 2), A.exit()),
  );
  const parse = compileParser(prog, verify(prog, 'parser'));
  assert.equal(parse(Buffer.alloc(7)), 7);
  assert.equal(parse(Buffer.alloc(9)), 9);
});

test('a runaway program returns -ELOOP after its instruction budget', () => {
  const prog = rawProgram(A.program(A.mov64(0, 1), A.alu64(0x00, 0, 1), A.jmp(0x55, 0, 0, -2), A.exit()));
  const parse = compileParser(prog, verify(prog, 'parser'));
  const started = Date.now();
  assert.equal(parse(Buffer.alloc(4)), -40);
  assert.ok(Date.now() - started < 2000);
  assert.equal(new Interpreter(prog, verify(prog, 'parser')).runParser(Buffer.alloc(4)), -40);
});

test('bpf_skb_load_bytes past the data returns -EFAULT and zero-fills the buffer [F-3c]', () => {
  // *(u64 *)(r10 - 8) = -1; r0 = skb_load_bytes(ctx, 2, r10 - 8, 4); return r0 == -14 ? *(u32 *)(r10 - 8) + 100 : 7
  const prog = rawProgram(
    A.program(
      A.st('dw', 10, -8, -1),
      A.mov64(2, 2),
      A.mov64r(3, 10),
      A.alu64(0x00, 3, -8),
      A.mov64(4, 4),
      A.call(26),
      A.jmp(0x55, 0, -14, 3),
      A.ldx('w', 0, 10, -8),
      A.alu64(0x00, 0, 100),
      A.exit(),
      A.mov64(0, 7),
      A.exit(),
    ),
  );
  const parse = compileParser(prog, verify(prog, 'parser'));
  assert.equal(parse(Buffer.from([1, 2, 3, 4, 5])), 100);
  assert.equal(parse(Buffer.from([1, 2, 3, 4, 5, 6])), 7);
});

test('the committed objects match what clang builds from the sources', (t) => {
  let clang = true;
  try {
    execFileSync('clang', ['--version'], { stdio: 'ignore' });
  } catch {
    clang = false;
  }
  if (!clang) return t.skip('clang is not installed');
  const out = mkdtempSync(join(tmpdir(), 'kcm-bpf-'));
  try {
    for (const name of Object.keys(protocols)) {
      const obj = join(out, `${name}.o`);
      execFileSync('clang', ['-O2', '-g0', '-target', 'bpf', '-c', join(fixtures, `${name}.c`), '-o', obj], { stdio: 'pipe', timeout: 30_000 });
      const rebuilt = loadBpf(obj);
      const committed = loadBpf(fixture(name));
      const proto = protocols[name]!;
      for (let n = 0; n < 20; n++) {
        const msg = proto.encode(Buffer.alloc(n * 7, n), n);
        for (let cut = 0; cut <= Math.min(msg.length, 12); cut++) {
          assert.equal(rebuilt(msg.subarray(0, cut)), committed(msg.subarray(0, cut)), `${name} ${n} ${cut}`);
        }
      }
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
