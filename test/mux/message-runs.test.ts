import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MessageRuns } from '../../src/mux/message-runs.js';

/** `count` messages of `len` bytes back to back in one buffer, message i filled with byte `first + i`. */
function runOf(count: number, len: number, first = 0): { buf: Buffer; ends: Uint32Array } {
  const buf = Buffer.alloc(count * len + 3); // bytes after the run belong to no message
  const ends = new Uint32Array(count);
  for (let i = 0; i < count; i++) {
    buf.fill((first + i) & 0xff, i * len, (i + 1) * len);
    ends[i] = (i + 1) * len;
  }
  return { buf, ends };
}

test('MessageRuns: a run is taken message by message as subarrays of its buffer, with its origin', () => {
  const q = new MessageRuns<string>();
  const { buf, ends } = runOf(3, 4);
  q.pushRun(buf, 0, ends, 0, 3, 'p1');
  assert.equal(q.length, 3);
  assert.equal(q.headLength(), 4);
  assert.equal(q.headOrigin(), 'p1');
  const a = q.shift();
  assert.equal(a.buffer, buf.buffer);
  assert.equal(a.byteOffset, buf.byteOffset);
  assert.deepEqual([...a], [0, 0, 0, 0]);
  assert.equal(q.origin, 'p1');
  assert.deepEqual([...q.shift()], [1, 1, 1, 1]);
  assert.deepEqual([...q.shift()], [2, 2, 2, 2]);
  assert.equal(q.length, 0);
  assert.equal(q.headBuffer(), undefined);
  assert.equal(q.headLength(), 0);
});

test('MessageRuns: pushRun queues only messages from..to, the first starting at start', () => {
  const q = new MessageRuns<string>();
  const { buf, ends } = runOf(5, 2);
  q.pushRun(buf, 4, ends, 2, 4, 'p');
  assert.equal(q.length, 2);
  assert.deepEqual([...q.shift()], [2, 2]);
  assert.deepEqual([...q.shift()], [3, 3]);
  // An empty range queues nothing.
  q.pushRun(buf, 0, ends, 3, 3, 'p');
  assert.equal(q.length, 0);
});

test('MessageRuns: shift(offset) returns the rest of the head message; discard() drops it whole', () => {
  const q = new MessageRuns<number>();
  const { buf, ends } = runOf(3, 6);
  q.pushRun(buf, 0, ends, 0, 3, 7);
  assert.equal(q.shift(4).length, 2);
  assert.equal(q.discard(), 6);
  assert.equal(q.origin, 7);
  assert.equal(q.headStart(), 12);
  assert.equal(q.headEnd(), 18);
  assert.equal(q.length, 1);
});

test('MessageRuns: a run that continues the last one (same buffer, origin, position) joins it; others do not', () => {
  const q = new MessageRuns<string>();
  const { buf, ends } = runOf(6, 3);
  q.pushRun(buf, 0, ends, 0, 2, 'a');
  q.pushRun(buf, 6, ends, 2, 4, 'a'); // continues
  q.pushRun(buf, 12, ends, 4, 5, 'b'); // another origin
  q.push(Buffer.from('xyz'), 'c');
  const out: Buffer[] = [];
  const origins: string[] = [];
  assert.equal(q.drain(out, origins), 18);
  assert.deepEqual(out.map((m) => m[0]), [0, 1, 2, 3, 4, 0x78]);
  assert.deepEqual(origins, ['a', 'a', 'a', 'a', 'b', 'c']);
  assert.equal(q.length, 0);
});

test('MessageRuns: takeInto takes across runs, at most what is queued, and leaves the rest in order', () => {
  const q = new MessageRuns<string>();
  const r1 = runOf(3, 2, 10);
  const r2 = runOf(4, 5, 20);
  q.pushRun(r1.buf, 0, r1.ends, 0, 3, 'x');
  q.pushRun(r2.buf, 0, r2.ends, 0, 4, 'y');
  const out: Buffer[] = new Array(6);
  out[0] = Buffer.from('first');
  assert.equal(q.takeInto(out, 1, 5), 3 * 2 + 2 * 5);
  assert.deepEqual(out.slice(1).map((m) => m[0]), [10, 11, 12, 20, 21]);
  assert.equal(q.origin, 'y');
  assert.equal(q.length, 2);
  const rest: Buffer[] = [];
  assert.equal(q.takeInto(rest, 0, 100), 10);
  assert.deepEqual(rest.map((m) => m[0]), [22, 23]);
  assert.equal(q.length, 0);
});

test('MessageRuns: any interleaving of pushes and takes matches a plain FIFO (ring wrap and growth)', () => {
  type Op = { push: number; len: number; single: boolean } | { take: number; many: boolean };
  const opArb: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ push: fc.integer({ min: 1, max: 90 }), len: fc.integer({ min: 1, max: 5 }), single: fc.boolean() }),
    fc.record({ take: fc.integer({ min: 1, max: 120 }), many: fc.boolean() }),
  );
  fc.assert(
    fc.property(fc.array(opArb, { maxLength: 60 }), (ops) => {
      const q = new MessageRuns<number>();
      const model: Array<{ bytes: string; origin: number }> = [];
      let next = 0;
      for (const op of ops) {
        if ('push' in op) {
          const origin = next % 3;
          if (op.single) {
            for (let i = 0; i < op.push; i++) {
              const m = Buffer.alloc(op.len, next++ & 0xff);
              q.push(m, origin);
              model.push({ bytes: m.toString('hex'), origin });
            }
          } else {
            const { buf, ends } = runOf(op.push, op.len, next);
            q.pushRun(buf, 0, ends, 0, op.push, origin);
            for (let i = 0; i < op.push; i++) model.push({ bytes: buf.subarray(i * op.len, (i + 1) * op.len).toString('hex'), origin });
            next += op.push;
          }
        } else if (op.many) {
          const out: Buffer[] = [];
          const want = model.splice(0, op.take);
          const bytes = q.takeInto(out, 0, op.take);
          assert.deepEqual(out.map((m) => m.toString('hex')), want.map((w) => w.bytes));
          assert.equal(bytes, want.reduce((n, w) => n + w.bytes.length / 2, 0));
          if (want.length > 0) assert.equal(q.origin, want[want.length - 1]!.origin);
        } else {
          for (let i = 0; i < op.take && model.length > 0; i++) {
            const w = model.shift()!;
            assert.equal(q.headOrigin(), w.origin);
            assert.equal(q.shift().toString('hex'), w.bytes);
            assert.equal(q.origin, w.origin);
          }
        }
        assert.equal(q.length, model.length);
      }
      const rest: Buffer[] = [];
      const origins: number[] = [];
      q.drain(rest, origins);
      assert.deepEqual(rest.map((m) => m.toString('hex')), model.map((w) => w.bytes));
      assert.deepEqual(origins, model.map((w) => w.origin));
    }),
    { numRuns: 200 },
  );
});
