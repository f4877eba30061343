import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { KcmError, errnos } from '../../src/errors.js';
import { lengthField } from '../../src/parsers/length-field.js';
import type { Parser } from '../../src/parsers/parser.js';
import { StreamParser } from '../../src/parsers/stream-parser.js';
import { cut, frame, hex, recorder, run, splits, stats } from './harness.js';

const P4 = lengthField({ size: 4, adjust: 4 });
/** The same framing as a plain function, so the stream parser cannot take its fast path. */
const fn4: Parser = (d) => (d.length < 4 ? 0 : d.readUInt32BE(0) + 4);
const kinds: Array<[string, Parser]> = [
  ['lengthField', P4],
  ['function', fn4],
];

/** A parser that records a copy of every view it is called with. */
function spy(inner: Parser): { parser: Parser; calls: Buffer[] } {
  const calls: Buffer[] = [];
  return {
    calls,
    parser: (d) => {
      calls.push(Buffer.from(d));
      return inner(d);
    },
  };
}

// Three frames: 1, 0 and 5 bytes of payload (the middle one is header only).
const STREAM = hex('00000001 aa 00000000 00000005 0102030405');
const STREAM_MSGS = ['00000001aa', '00000000', '000000050102030405'];

describe('stream parser', () => {
  for (const [kind, parser] of kinds) {
    test(`[P-1] [P-5] ${kind}: a multi-message stream split at every byte boundary`, () => {
      for (const { name, chunks } of splits(STREAM)) {
        const r = run(parser, chunks);
        assert.deepEqual(r.messages, STREAM_MSGS, name);
        assert.equal(r.error, undefined, name);
        assert.equal(r.stats.rxMsgs, 3, name);
        assert.equal(r.stats.rxBytes, STREAM.length, name);
      }
    });

    test(`[P-5] ${kind}: every pair of split points of a multi-message stream`, () => {
      for (let a = 1; a < STREAM.length; a++) {
        for (let b = a + 1; b < STREAM.length; b++) {
          const r = run(parser, cut(STREAM, [a, b]));
          assert.deepEqual(r.messages, STREAM_MSGS, `split at ${a}, ${b}`);
          assert.equal(r.stats.rxBytes, STREAM.length);
        }
      }
    });
  }

  test('[P-1] nothing is parsed from an empty chunk, nor after stop()', () => {
    const s = spy(fn4);
    const rec = recorder(s.parser);
    rec.sp.push(Buffer.alloc(0));
    assert.equal(s.calls.length, 0);
    rec.sp.push(hex('000000'));
    assert.equal(s.calls.length, 1);
    assert.equal(rec.sp.stop(), undefined);
    rec.sp.push(hex('01 aa'));
    assert.equal(s.calls.length, 1);
    assert.deepEqual(rec.messages, []);
    assert.equal(rec.sp.done, true);
  });

  test('[P-2] parser-growing-prefix: one byte at a time, called with 1, 2, 3, 4 bytes, then never again', () => {
    const s = spy(fn4);
    const rec = recorder(s.parser);
    for (const byte of hex('00000003 616263')) rec.sp.push(Buffer.from([byte]));
    assert.deepEqual(s.calls.map((c) => c.toString('hex')), ['00', '0000', '000000', '00000003']);
    assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['00000003616263']);
    assert.equal(rec.sp.rxNeedMoreHdr, 3);
  });

  test('[P-2] each call sees the bytes accumulated so far plus the whole new chunk', () => {
    const s = spy(fn4);
    const rec = recorder(s.parser);
    rec.sp.push(hex('0000'));
    rec.sp.push(hex('0002 aabb 00000001 cc'));
    // The second call sees past the first message's end, into the second one [P-2].
    assert.deepEqual(s.calls.map((c) => c.toString('hex')), ['0000', '00000002aabb00000001cc', '00000001cc']);
    assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['00000002aabb', '00000001cc']);
  });

  test('[P-2] [P-10] [X-1] [B-23] parser-sees-following-bytes: data starts at each message\'s first byte', () => {
    const s = spy(fn4);
    const rec = recorder(s.parser);
    // Two frames in one chunk, then a tail, then a frame starting mid-chunk after a tail.
    rec.sp.push(hex('00000001 aa 00000002 bb'));
    rec.sp.push(hex('cc 00000000'));
    assert.deepEqual(s.calls.map((c) => c.toString('hex')), ['00000001aa00000002bb', '00000002bb', '00000000']);
    assert.ok(s.calls[0]!.length > 5, 'the first view runs past the first message');
    assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['00000001aa', '00000002bbcc', '00000000']);
  });

  test('[P-2] the parser is not called again once it returned a length', () => {
    const s = spy(fn4);
    const rec = recorder(s.parser);
    rec.sp.push(hex('00000008 01'));
    rec.sp.push(hex('0203'));
    rec.sp.push(hex('040506'));
    rec.sp.push(hex('0708'));
    assert.equal(s.calls.length, 1);
    assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['000000080102030405060708']);
  });

  test('[P-3] 0 asks for more: the chunk is consumed and rxNeedMoreHdr counts each call', () => {
    const r = run(fn4, [hex('00'), hex('00'), hex('00'), hex('02'), hex('aa'), hex('bb')]);
    assert.deepEqual(r.messages, ['00000002aabb']);
    assert.deepEqual(r.stats, stats({ rxMsgs: 1, rxBytes: 6, rxNeedMoreHdr: 3 }));
  });

  test('[P-3] [X-4] a negative return rejects the stream with that errno name', () => {
    for (const [value, code] of [
      [-74, 'EBADMSG'],
      [-errnos.EMSGSIZE, 'EMSGSIZE'],
      [-errnos.EPROTO, 'EPROTO'],
      [-1, 'EPERM'],
    ] as const) {
      const rec = recorder(() => value);
      rec.sp.push(hex('00000001 aa'));
      assert.equal(rec.errors.length, 1);
      assert.ok(rec.errors[0] instanceof KcmError);
      assert.equal(rec.errors[0]!.code, code);
      assert.equal(rec.errors[0]!.errno, -value);
      assert.deepEqual(rec.sp.stats(), stats({ rxInterrupted: 1 }));
      assert.equal(rec.sp.done, true);
    }
  });

  test('[P-3] [X-4] an unknown negative errno becomes EBADMSG carrying that errno', () => {
    const rec = recorder(() => -2147483646);
    rec.sp.push(hex('00'));
    assert.equal(rec.errors[0]!.code, 'EBADMSG');
    assert.equal(rec.errors[0]!.errno, 2147483646);
  });

  test('[P-3] -ESTRPIPE on the first call of a message is ESTRPIPE (rxInterrupted)', () => {
    const rec = recorder((d) => (d.length > 0 ? -errnos.ESTRPIPE : 0));
    rec.sp.push(hex('0102'));
    assert.equal(rec.errors[0]!.code, 'ESTRPIPE');
    assert.equal(rec.errors[0]!.errno, 86);
    assert.deepEqual(rec.sp.stats(), stats({ rxInterrupted: 1 }));
  });

  test('[P-3] -ESTRPIPE after bytes of the message were seen is ENODATA (rxUnrecovIntr)', () => {
    const rec = recorder((d) => (d.length < 3 ? 0 : -errnos.ESTRPIPE));
    rec.sp.push(hex('01'));
    rec.sp.push(hex('0203'));
    assert.equal(rec.errors[0]!.code, 'ENODATA');
    assert.equal(rec.errors[0]!.errno, 61);
    assert.deepEqual(rec.sp.stats(), stats({ rxUnrecovIntr: 1, rxNeedMoreHdr: 1, rxBytes: 1 }));
  });

  test('[P-3] -ESTRPIPE for the second message of a chunk, with no byte of it seen before, is ESTRPIPE', () => {
    const rec = recorder((d) => (d[0] === 0xff ? -errnos.ESTRPIPE : fn4(d)));
    rec.sp.push(hex('00000000 ff'));
    assert.equal(rec.messages.length, 1);
    assert.equal(rec.errors[0]!.code, 'ESTRPIPE');
  });

  test('[P-3] a parser that throws rejects the stream with EBADMSG, the exception as cause', () => {
    const boom = new Error('boom');
    const rec = recorder(() => {
      throw boom;
    });
    rec.sp.push(hex('00'));
    assert.equal(rec.errors.length, 1);
    assert.equal(rec.errors[0]!.code, 'EBADMSG');
    assert.equal(rec.errors[0]!.cause, boom);
    assert.equal(rec.sp.done, true);
  });

  test('[P-3] a return that is not a safe integer is EPROTO and counts rxBadHdrLen', () => {
    for (const bad of [NaN, 1.5, Infinity, -Infinity, 2 ** 53, '5', undefined, null, 5n]) {
      const rec = recorder((() => bad) as unknown as Parser);
      rec.sp.push(hex('00000001 aa'));
      assert.equal(rec.errors.length, 1, String(bad));
      assert.equal(rec.errors[0]!.code, 'EPROTO', String(bad));
      assert.equal(rec.sp.rxBadHdrLen, 1, String(bad));
      assert.deepEqual(rec.messages, []);
    }
  });

  test('[P-4] bad-hdr-len: a length not beyond the bytes seen before this chunk is EPROTO', () => {
    let calls = 0;
    const rec = recorder(() => (++calls === 1 ? 0 : 4));
    rec.sp.push(hex('00000004'));
    rec.sp.push(hex('aabb'));
    assert.equal(rec.errors[0]!.code, 'EPROTO');
    assert.deepEqual(rec.sp.stats(), stats({ rxBadHdrLen: 1, rxNeedMoreHdr: 1, rxBytes: 4 }));
    assert.deepEqual(rec.messages, []);
  });

  test('[P-4] a length that reaches one byte into the new chunk is accepted', () => {
    let calls = 0;
    const rec = recorder(() => (++calls === 1 ? 0 : 5));
    rec.sp.push(hex('00000004'));
    rec.sp.push(hex('aa'));
    assert.equal(rec.errors.length, 0);
    assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['00000004aa']);
  });

  test('[P-4] first-call-short-length-ok: on the first call any positive length is accepted', () => {
    const s = spy((d) => (d[0] === 0x08 ? 8 : 12));
    const rec = recorder(s.parser);
    rec.sp.push(hex('08 00000000000000 0c 0000000000000000000000'));
    assert.equal(rec.errors.length, 0);
    assert.deepEqual(rec.messages.map((m) => m.length), [8, 12]);
    assert.equal(s.calls[1]!.length, 12, 'the next 12 bytes are parsed as the next message');
  });

  test('[P-5] a message inside one chunk is a subarray of it (zero-copy)', () => {
    const chunk = hex('00000001 aa 00000002 bbcc');
    for (const [kind, parser] of kinds) {
      const rec = recorder(parser);
      rec.sp.push(chunk);
      assert.equal(rec.raw.length, 2, kind);
      assert.equal(rec.raw[0]!.buffer, chunk.buffer, kind);
      assert.equal(rec.raw[0]!.byteOffset, chunk.byteOffset, kind);
      assert.equal(rec.raw[1]!.buffer, chunk.buffer, kind);
      assert.equal(rec.raw[1]!.byteOffset, chunk.byteOffset + 5, kind);
    }
  });

  test('[P-5] a message spanning chunks is one copy of its final size, not a view of any chunk', () => {
    for (const [kind, parser] of kinds) {
      for (const at of [2, 4, 6]) {
        const chunks = cut(frame('0102030405'), [at]);
        const rec = recorder(parser);
        for (const c of chunks) rec.sp.push(c);
        const m = rec.raw[0]!;
        assert.equal(m.length, 9, `${kind} split at ${at}`);
        for (const c of chunks) c.fill(0xee);
        assert.equal(m.toString('hex'), '000000050102030405', 'the message owns its bytes');
      }
    }
  });

  test('[P-5] a spanning message found by a function parser does not pin a large accumulation buffer', () => {
    const rec = recorder(fn4);
    const big = Buffer.alloc(256 * 1024, 0x11);
    rec.sp.push(hex('0000'));
    rec.sp.push(Buffer.concat([hex('0001 aa'), big.subarray(0, 0), hex('00040000'), big]));
    assert.equal(rec.raw[0]!.toString('hex'), '00000001aa');
    assert.ok(rec.raw[0]!.buffer.byteLength < 64 * 1024, `pins ${rec.raw[0]!.buffer.byteLength} bytes`);
  });

  test('[P-5] a function parser finding a long length after a one-byte first chunk', () => {
    // The accumulation buffer starts small: the message must still get its full size.
    const data = frame(Buffer.alloc(200, 0x42));
    for (const at of [1, 2, 3, 4, 5, 100]) {
      const r = run(fn4, cut(data, [at, at + 1]));
      assert.deepEqual(r.messages, [data.toString('hex')], `split at ${at}`);
    }
  });

  test('[P-6] [X-10] msg-too-big: a length above maxMessageSize is EMSGSIZE, nothing further arrives', () => {
    for (const [kind, parser] of kinds) {
      const rec = recorder(parser, { maxMessageSize: 1000 });
      rec.sp.push(Buffer.concat([frame('aa'), hex('000007cc'), Buffer.alloc(100)]));
      rec.sp.push(frame('bb'));
      assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['00000001aa'], kind);
      assert.equal(rec.errors.length, 1, kind);
      assert.equal(rec.errors[0]!.code, 'EMSGSIZE', kind);
      assert.equal(rec.sp.rxMsgTooBig, 1, kind);
      assert.equal(rec.sp.rxMsgs, 1, kind);
    }
  });

  test('[P-6] a message of exactly maxMessageSize is accepted, one more byte is not', () => {
    for (const [kind, parser] of kinds) {
      assert.equal(run(parser, cut(frame(Buffer.alloc(96)), [3, 50]), 100).messages.length, 1, kind);
      assert.equal(run(parser, [frame(Buffer.alloc(97))], 100).error?.code, 'EMSGSIZE', kind);
    }
  });

  test('[P-6] bytes accumulated without a known length beyond maxMessageSize are EMSGSIZE', () => {
    const never: Parser = () => 0;
    const a = run(never, [Buffer.alloc(60), Buffer.alloc(60)], 100);
    assert.equal(a.error?.code, 'EMSGSIZE');
    assert.deepEqual(a.stats, stats({ rxMsgTooBig: 1, rxNeedMoreHdr: 2, rxBytes: 120 }));
    const b = run(never, [Buffer.alloc(101)], 100);
    assert.equal(b.error?.code, 'EMSGSIZE');
    assert.equal(b.stats.rxMsgTooBig, 1);
    // A length field beyond maxMessageSize: the header can never arrive.
    const deep = lengthField({ offset: 200, size: 2 });
    assert.equal(run(deep, [Buffer.alloc(150)], 100).error?.code, 'EMSGSIZE');
  });

  test('[P-6] lengthField max: the parser itself rejects with -EMSGSIZE (rxInterrupted)', () => {
    const r = run(lengthField({ size: 4, adjust: 4, max: 8 }), [frame('01020304'), frame('0102030405')]);
    assert.deepEqual(r.messages, ['0000000401020304']);
    assert.equal(r.error?.code, 'EMSGSIZE');
    assert.equal(r.stats.rxInterrupted, 1);
    assert.equal(r.stats.rxMsgTooBig, 0);
  });

  test('[B-6] a message of about maxMessageSize sent in many small chunks assembles', () => {
    const payload = Buffer.alloc(64 * 1024 - 4, 0x5a);
    const data = frame(payload);
    for (const [kind, parser] of kinds) {
      const rec = recorder(parser, { maxMessageSize: data.length });
      for (let i = 0; i < data.length; i += 7) rec.sp.push(data.subarray(i, i + 7));
      assert.equal(rec.errors.length, 0, kind);
      assert.equal(rec.messages.length, 1, kind);
      assert.ok(rec.messages[0]!.equals(data), kind);
    }
  });

  test('[P-8] after an error nothing of the partial message or later bytes is delivered', () => {
    for (const [kind, parser] of kinds) {
      const rec = recorder(parser, { maxMessageSize: 100 });
      rec.sp.push(hex('00000002 aa'));
      assert.equal(rec.sp.partialBytes, 5, kind);
      rec.sp.push(hex('bb 00000200')); // completes, then a too-big header
      rec.sp.push(hex('cc'));
      rec.sp.push(frame('dd'));
      assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['00000002aabb'], kind);
      assert.equal(rec.errors.length, 1, kind);
      assert.equal(rec.sp.done, true, kind);
      assert.equal(rec.sp.partialBytes, 0, kind);
      assert.equal(rec.sp.stop(), undefined, kind);
      assert.equal(rec.errors.length, 1, kind);
    }
  });

  test('[P-8] an error in the middle of a partly received message drops it whole', () => {
    let calls = 0;
    const rec = recorder(() => (++calls < 3 ? 0 : -74));
    rec.sp.push(hex('0000'));
    rec.sp.push(hex('0001'));
    rec.sp.push(hex('aa'));
    assert.deepEqual(rec.messages, []);
    assert.equal(rec.errors[0]!.code, 'EBADMSG');
    assert.equal(rec.sp.partialBytes, 0);
  });

  test('[P-9] there is no allocation-failure path: rxMemFail stays 0', () => {
    const r = run(P4, [frame(Buffer.alloc(70000)).subarray(0, 3), frame(Buffer.alloc(70000)).subarray(3)]);
    assert.equal(r.messages.length, 1);
    assert.equal(r.stats.rxMemFail, 0);
    assert.equal(r.stats.rxAborted, 0);
  });

  test('[ST-2] counters are exact, stats() is a copy of the public fields', () => {
    const rec = recorder(fn4);
    rec.sp.push(hex('00'));
    rec.sp.push(hex('000002 aa'));
    rec.sp.push(hex('bb 00000000 000000'));
    const s = rec.sp.stats();
    assert.deepEqual(s, stats({ rxMsgs: 2, rxBytes: 13, rxNeedMoreHdr: 2 }));
    assert.equal(rec.sp.rxBytes, 13);
    assert.equal(rec.sp.partialBytes, 3);
    s.rxMsgs = 99;
    assert.equal(rec.sp.rxMsgs, 2);
  });

  test('[P-5] bytesNeeded tells how much of a known-length message is missing', () => {
    const rec = recorder(P4);
    rec.sp.push(hex('00000006 aa'));
    assert.equal(rec.sp.bytesNeeded, 5);
    rec.sp.push(hex('bbcc'));
    assert.equal(rec.sp.bytesNeeded, 3);
    rec.sp.push(hex('ddeeff'));
    assert.equal(rec.sp.bytesNeeded, 0);
    assert.equal(rec.messages.length, 1);
  });
});

describe('stream parser: assembly timeout', () => {
  test('[P-7] assembly-timeout: progress does not restart the timer, ETIMEDOUT at 100 ms', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    for (const [kind, parser] of kinds) {
      const rec = recorder(parser, { assemblyTimeout: 100 });
      const data = frame(Buffer.alloc(20, 1));
      rec.sp.push(data.subarray(0, 14)); // header and half the body
      for (let at = 14; at < 20; at++) {
        t.mock.timers.tick(30);
        rec.sp.push(data.subarray(at, at + 1));
        if (rec.errors.length > 0) break;
      }
      assert.equal(rec.errors.length, 1, kind);
      assert.equal(rec.errors[0]!.code, 'ETIMEDOUT', kind);
      assert.equal(rec.sp.rxMsgTimeouts, 1, kind);
      assert.deepEqual(rec.messages, [], kind);
      assert.equal(rec.sp.done, true, kind);
    }
  });

  test('[P-7] [X-11] the timer is armed by an incomplete header too, and fires exactly at the timeout', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const rec = recorder(fn4, { assemblyTimeout: 50 });
    rec.sp.push(hex('0000'));
    t.mock.timers.tick(49);
    assert.equal(rec.errors.length, 0);
    rec.sp.push(hex('00'));
    t.mock.timers.tick(1);
    assert.equal(rec.errors[0]?.code, 'ETIMEDOUT');
  });

  test('[P-7] completing the message cancels the timer; the next message arms its own', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const rec = recorder(P4, { assemblyTimeout: 100 });
    rec.sp.push(hex('00000002 aa'));
    t.mock.timers.tick(90);
    rec.sp.push(hex('bb 000000')); // completes the first, starts the second
    t.mock.timers.tick(90);
    assert.equal(rec.errors.length, 0);
    assert.equal(rec.messages.length, 1);
    t.mock.timers.tick(10);
    assert.equal(rec.errors[0]?.code, 'ETIMEDOUT');
  });

  test('[P-7] a message that arrives whole never arms the timer; timeout 0 means none', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const rec = recorder(P4, { assemblyTimeout: 10 });
    rec.sp.push(Buffer.concat([frame('aa'), frame('bb')]));
    t.mock.timers.tick(1000);
    assert.equal(rec.errors.length, 0);
    const none = recorder(P4, { assemblyTimeout: 0 });
    none.sp.push(hex('000000'));
    t.mock.timers.tick(1_000_000);
    assert.equal(none.errors.length, 0);
  });

  test('[P-7] stop() cancels the timer', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const rec = recorder(P4, { assemblyTimeout: 10 });
    rec.sp.push(hex('000000'));
    rec.sp.stop();
    t.mock.timers.tick(100);
    assert.equal(rec.errors.length, 0);
    assert.equal(rec.sp.rxMsgTimeouts, 0);
  });

  test('[P-7] a real timer fires (bounded, 20 ms) and does not keep the process alive', async () => {
    const rec = recorder(P4, { assemblyTimeout: 20 });
    rec.sp.push(hex('00000005'));
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal(rec.errors[0]?.code, 'ETIMEDOUT');
  });
});

describe('stream parser: hold and resume', () => {
  test('[S-4] a refused message is held; nothing further is read until resume()', () => {
    const s = spy(fn4);
    let open = false;
    const rec = recorder(s.parser, { accept: () => open });
    rec.sp.push(Buffer.concat([frame('aa'), frame('bb')]));
    assert.equal(rec.sp.paused, true);
    assert.equal(s.calls.length, 1, 'the second message is not parsed while paused');
    assert.equal(rec.sp.rxMsgs, 1);
    assert.equal(rec.sp.pendingBytes, 5);
    rec.sp.push(frame('cc'));
    assert.equal(s.calls.length, 1);
    assert.equal(rec.sp.pendingBytes, 10);
    assert.equal(rec.sp.resume(), false, 'still refused');
    assert.equal(rec.sp.rxMsgs, 1, 'a message offered again is not counted again');
    open = true;
    assert.equal(rec.sp.resume(), true);
    assert.equal(rec.sp.paused, false);
    assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['00000001aa', '00000001bb', '00000001cc']);
    assert.equal(rec.sp.rxMsgs, 3);
    assert.equal(rec.sp.pendingBytes, 0);
  });

  test('[S-4] takeHeld() hands the message over and leaves the parser paused until resume()', () => {
    let open = false;
    const rec = recorder(P4, { accept: () => open });
    rec.sp.push(Buffer.concat([frame('aa'), frame('bb')]));
    const held = rec.sp.takeHeld();
    assert.equal(held?.toString('hex'), '00000001aa');
    assert.equal(rec.sp.takeHeld(), undefined);
    assert.equal(rec.sp.paused, true);
    // Bytes pushed now must wait behind the pending ones, in stream order.
    rec.sp.push(frame('cc'));
    assert.equal(rec.messages.length, 0);
    open = true;
    assert.equal(rec.sp.resume(), true);
    assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['00000001bb', '00000001cc']);
  });

  test('[S-4] a message refused again while resuming keeps the stream order of the pending bytes', () => {
    for (const [kind, parser] of kinds) {
      const refuse = new Set(['00000001aa', '00000001bb', '00000001dd']);
      const rec = recorder(parser, { accept: (m) => !refuse.delete(m.toString('hex')) });
      rec.sp.push(Buffer.concat([frame('aa'), frame('bb'), frame('cc')]));
      rec.sp.push(Buffer.concat([frame('dd'), frame('ee')]));
      rec.sp.push(frame('ff'));
      while (!rec.sp.resume()) {
        /* each resume offers the held message again, then parses on until the next refusal */
      }
      assert.deepEqual(
        rec.messages.map((m) => m.toString('hex')),
        ['aa', 'bb', 'cc', 'dd', 'ee', 'ff'].map((p) => `00000001${p}`),
        kind,
      );
      assert.equal(rec.sp.rxMsgs, 6, kind);
      assert.equal(rec.sp.rxBytes, 30, kind);
    }
  });

  test('[S-4] refusing a message that spans chunks, then a partial one behind it', () => {
    let open = false;
    const rec = recorder(P4, { accept: () => open });
    rec.sp.push(hex('00000002 aa'));
    rec.sp.push(hex('bb 000000'));
    assert.equal(rec.sp.paused, true);
    assert.equal(rec.sp.pendingBytes, 3);
    assert.equal(rec.sp.partialBytes, 0);
    open = true;
    assert.equal(rec.sp.resume(), true);
    rec.sp.push(hex('01 cc'));
    assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['00000002aabb', '00000001cc']);
  });

  test('[S-4] [U-5] stop() while paused drops the held message and returns the unparsed bytes', () => {
    const rec = recorder(P4, { accept: () => false });
    rec.sp.push(Buffer.concat([frame('aa'), hex('00000001')]));
    rec.sp.push(hex('bb 0000'));
    const rest = rec.sp.stop();
    assert.equal(rest?.toString('hex'), '00000001bb0000');
    assert.equal(rec.sp.takeHeld(), undefined);
    assert.equal(rec.sp.done, true);
    assert.equal(rec.sp.resume(), false);
    assert.equal(rec.sp.pendingBytes, 0);
  });

  test('[U-2] stop() with nothing pending returns undefined and drops a partial message', () => {
    const rec = recorder(P4);
    rec.sp.push(hex('00000003 aa'));
    assert.equal(rec.sp.stop(), undefined);
    rec.sp.push(hex('bbcc'));
    assert.deepEqual(rec.messages, []);
    assert.equal(rec.errors.length, 0);
  });

  test('[U-2] a sink that stops the parser from onMessage gets nothing more', () => {
    const got: string[] = [];
    const errors: KcmError[] = [];
    let rest = hex('ff') as Buffer | undefined;
    const sp: StreamParser = new StreamParser(
      { parser: P4, maxMessageSize: 1 << 20 },
      {
        onMessage(m) {
          got.push(m.toString('hex'));
          rest = sp.stop();
          return true;
        },
        onError(e) {
          errors.push(e);
        },
      },
    );
    sp.push(Buffer.concat([frame('aa'), frame('bb')]));
    assert.deepEqual(got, ['00000001aa']);
    assert.equal(rest, undefined);
    assert.equal(errors.length, 0);
    assert.equal(sp.done, true);
  });
});

describe('stream parser: runs of whole messages', () => {
  /** A sink taking runs: records each run's messages and takes up to `room` messages in all. */
  function runSink(room: number): { sp: StreamParser; runs: string[][]; held: () => string | undefined } {
    const runs: string[][] = [];
    let left = room;
    const sp: StreamParser = new StreamParser(
      { parser: P4, maxMessageSize: 1 << 20 },
      {
        onMessage(m) {
          if (left === 0) return false;
          left--;
          runs.push([m.toString('hex')]);
          return true;
        },
        onRun(chunk, start, ends, count) {
          const taken = Math.min(count, left);
          const got: string[] = [];
          let pos = start;
          for (let i = 0; i < taken; i++) {
            got.push(chunk.subarray(pos, ends[i]).toString('hex'));
            pos = ends[i]!;
          }
          left -= taken;
          if (taken > 0) runs.push(got);
          return taken;
        },
        onError() {},
      },
    );
    return { sp, runs, held: () => sp.takeHeld()?.toString('hex') };
  }

  test('[P-5] the whole messages of one chunk go to the sink as one run, each a range of the chunk', () => {
    const s = runSink(100);
    s.sp.push(Buffer.concat([frame('aa'), frame(''), frame('0102'), hex('000000')]));
    assert.deepEqual(s.runs, [['00000001aa', '00000000', '000000020102']]);
    assert.equal(s.sp.partialBytes, 3);
    assert.deepEqual(s.sp.stats(), stats({ rxMsgs: 3, rxBytes: 18, rxNeedMoreHdr: 1 }));
  });

  test('[S-4] a run taken in part: the next message is held and counted, the rest waits unparsed', () => {
    const s = runSink(2);
    s.sp.push(Buffer.concat([frame('aa'), frame('bb'), frame('cc'), frame('dd'), hex('0000')]));
    assert.deepEqual(s.runs, [['00000001aa', '00000001bb']]);
    assert.equal(s.sp.paused, true);
    assert.deepEqual(s.sp.stats(), stats({ rxMsgs: 3, rxBytes: 15 }), 'the held message counts, those behind it not yet');
    assert.equal(s.sp.pendingBytes, 7);
    assert.equal(s.held(), '00000001cc');
    // Resumed with no room: the next message is held in turn.
    assert.equal(s.sp.resume(), false);
    assert.equal(s.held(), '00000001dd');
    assert.deepEqual(s.sp.stats(), stats({ rxMsgs: 4, rxBytes: 20 }));
    assert.equal(s.sp.pendingBytes, 2);
  });

  test('[S-4] a run refused from its first message holds that message', () => {
    const s = runSink(0);
    s.sp.push(Buffer.concat([frame('aa'), frame('bb')]));
    assert.deepEqual(s.runs, []);
    assert.equal(s.held(), '00000001aa');
    assert.deepEqual(s.sp.stats(), stats({ rxMsgs: 1, rxBytes: 5 }));
    assert.equal(s.sp.pendingBytes, 5);
  });

  test('[P-5] a chunk of more messages than one run holds goes as several runs, in order', () => {
    const n = 2500;
    const chunk = Buffer.alloc(n * 5);
    for (let i = 0; i < n; i++) {
      chunk.writeUInt32BE(1, i * 5);
      chunk[i * 5 + 4] = i & 0xff;
    }
    const s = runSink(n);
    s.sp.push(chunk);
    assert.ok(s.runs.length > 1, `${s.runs.length} runs`);
    const all = s.runs.flat();
    assert.equal(all.length, n);
    for (let i = 0; i < n; i++) assert.equal(all[i], `00000001${(i & 0xff).toString(16).padStart(2, '0')}`);
    assert.deepEqual(s.sp.stats(), stats({ rxMsgs: n, rxBytes: n * 5 }));
    assert.equal(s.sp.paused, false);
  });

  test('[U-2] a sink that stops the parser from onRun gets nothing more; counters end at what it took', () => {
    const got: string[] = [];
    const sp: StreamParser = new StreamParser(
      { parser: P4, maxMessageSize: 1 << 20 },
      {
        onMessage() {
          throw new Error('not called');
        },
        onRun(chunk, start, ends) {
          got.push(chunk.subarray(start, ends[0]).toString('hex'));
          sp.stop();
          return 1;
        },
        onError() {},
      },
    );
    sp.push(Buffer.concat([frame('aa'), frame('bb'), frame('cc')]));
    sp.push(frame('dd'));
    assert.deepEqual(got, ['00000001aa']);
    assert.equal(sp.done, true);
    assert.equal(sp.rxMsgs, 1);
    assert.equal(sp.rxBytes, 5);
  });

  test('[P-5] without onRun each message of a run goes to onMessage, zero-copy', () => {
    const rec = recorder(P4, { perMessage: true });
    const chunk = Buffer.concat([frame('aa'), frame('bb')]);
    rec.sp.push(chunk);
    assert.deepEqual(rec.messages.map((m) => m.toString('hex')), ['00000001aa', '00000001bb']);
    assert.equal(rec.raw[1]!.buffer, chunk.buffer);
    assert.equal(rec.raw[1]!.byteOffset, chunk.byteOffset + 5);
  });
});
