/**
 * The send queue alone [T-1, T-3, T-5, T-16]: copies at the call, segments of whole
 * messages back to back, open messages, restarts put back in front. No sockets.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CHUNK_MESSAGE_MAX, CHUNK_SIZE, TxQueue } from '../../src/mux/tx-queue.js';

/** Takes every queued message as a copy, head first. */
function takeAll(q: TxQueue, encoding: BufferEncoding = 'latin1'): string[] {
  const out: string[] = [];
  while (q.length > 0) out.push(Buffer.from(q.takeView()).toString(encoding));
  return out;
}

test('[T-3] push copies: the caller may change its buffer at once', () => {
  const q = new TxQueue();
  const scratch = Buffer.from('aaaa');
  q.push(scratch, 4);
  scratch.fill('b');
  q.push(scratch, 4);
  scratch.fill('c');
  assert.equal(q.length, 2);
  assert.equal(q.bytes, 8);
  assert.deepEqual(takeAll(q), ['aaaa', 'bbbb']);
  assert.equal(q.bytes, 0);
});

test('[T-3] small messages share one segment back to back; a large one has its own', () => {
  const q = new TxQueue();
  for (let i = 0; i < 10; i++) q.push(Buffer.alloc(100, 0x30 + i), 100);
  const big = Buffer.alloc(CHUNK_MESSAGE_MAX + 1, 0x41);
  q.push(big, big.length);
  big.fill(0x42);
  q.push(Buffer.from('tail'), 4);
  const seg = q.head()!;
  assert.equal(seg.count, 10);
  assert.equal(seg.end - seg.start, 1000);
  assert.equal(q.takeSegment(seg), 1000);
  assert.equal(q.length, 2);
  const large = q.head()!;
  assert.equal(large.lens, undefined);
  assert.ok(large.buf.subarray(large.start, large.end).equals(Buffer.alloc(CHUNK_MESSAGE_MAX + 1, 0x41)));
  assert.equal(q.takeHead(), CHUNK_MESSAGE_MAX + 1);
  assert.deepEqual(takeAll(q), ['tail']);
});

test('[T-3] a full chunk starts another; messages keep their bytes and order', () => {
  const q = new TxQueue();
  const n = Math.ceil((3 * CHUNK_SIZE) / 1000);
  const want: string[] = [];
  const scratch = Buffer.alloc(1000);
  for (let i = 0; i < n; i++) {
    scratch.fill(i & 0xff);
    q.push(scratch, 1000);
    want.push(Buffer.from(scratch).toString('latin1'));
  }
  assert.equal(q.length, n);
  assert.deepEqual(takeAll(q), want);
});

test('[T-1][T-5] an open message grows over calls, moves to a buffer of its own when large, completes once', () => {
  const q = new TxQueue();
  assert.equal(q.complete(), false, 'nothing open: no empty message');
  q.append(Buffer.from('ab'), 2);
  q.append([Buffer.from('c'), new Uint8Array([0x64])], 2);
  assert.equal(q.openLength, 4);
  assert.equal(q.length, 0, 'an open message is not queued');
  assert.equal(q.complete(), true);
  q.append(Buffer.from('x'), 1);
  const large = Buffer.alloc(CHUNK_MESSAGE_MAX, 0x79);
  q.append(large, large.length);
  large.fill(0);
  q.append(Buffer.from('z'), 1);
  q.complete();
  q.push(Buffer.from('after'), 5);
  assert.deepEqual(takeAll(q), ['abcd', 'x' + 'y'.repeat(CHUNK_MESSAGE_MAX) + 'z', 'after']);
});

test('[T-10c] a discarded open message leaves no bytes behind', () => {
  const q = new TxQueue();
  q.push(Buffer.from('one'), 3);
  q.append(Buffer.from('dropped'), 7);
  assert.equal(q.discardOpen(), 7);
  q.push(Buffer.from('two'), 3);
  const seg = q.head()!;
  assert.equal(seg.count, 2);
  assert.equal(seg.buf.subarray(seg.start, seg.end).toString(), 'onetwo');
});

test('[T-16] a restarted message goes back at the place asked, splitting a segment if needed', () => {
  const q = new TxQueue();
  for (const m of ['a1', 'b2', 'c3']) q.push(Buffer.from(m), 2);
  const old = Buffer.from('xxR1xx');
  q.insert(0, old, 2, 2);
  q.insert(2, old, 0, 2);
  assert.equal(q.length, 5);
  assert.deepEqual(takeAll(q), ['R1', 'a1', 'xx', 'b2', 'c3']);
  q.push(Buffer.from('d4'), 2);
  assert.deepEqual(takeAll(q), ['d4']);
});

test('[T-3] a taken segment keeps receiving new messages as the tail', () => {
  const q = new TxQueue();
  q.push(Buffer.from('m1'), 2);
  const seg = q.head()!;
  q.takeSegment(seg);
  assert.equal(q.length, 0);
  q.push(Buffer.from('m2'), 2);
  q.push(Buffer.from('m3'), 2);
  const next = q.head()!;
  assert.equal(next.count, 2);
  assert.equal(next.buf.subarray(next.start, next.end).toString(), 'm2m3');
  assert.equal(next.lens![next.li], 2);
});

test('[T-3][T-5][T-7] pushRun copies a run as push would: stops at the room, the chunk end and large messages', () => {
  const q = new TxQueue();
  // No tail segment yet: nothing taken, the caller pushes the first one.
  const first = Buffer.from('first');
  assert.equal(q.pushRun([first], 0, 0, 100), 0);
  q.push(first, first.length);
  const scratch = Buffer.from('abcd');
  const header = Buffer.from('pa');
  const run = [scratch, Buffer.alloc(0), Buffer.from('efgh'), [header, Buffer.from('rt')], [Buffer.alloc(0)], Buffer.from('ijkl')];
  // [T-5] the empty entries are skipped; the parts of a message are copied as one.
  assert.equal(q.pushRun(run, 0, run.length - 1, 100), run.length);
  scratch.fill('z'); // [T-3] copied at the call
  header.fill('z');
  assert.equal(q.length, 5);
  assert.equal(q.bytes, 21);
  // [T-7] each message is admitted while fewer than `room` bytes were taken before it.
  const four = [Buffer.from('1111'), Buffer.from('2222'), Buffer.from('3333')];
  assert.equal(q.pushRun(four, 0, 2, 5), 2);
  assert.equal(q.pushRun(four, 0, 2, 0), 0);
  // A large message ends the run.
  const big = Buffer.alloc(CHUNK_MESSAGE_MAX + 1, 0x41);
  assert.equal(q.pushRun([Buffer.from('x'), big], 0, 1, 1 << 20), 1);
  assert.equal(q.length, 8);
  assert.deepEqual(takeAll(q), ['first', 'abcd', 'efgh', 'part', 'ijkl', '1111', '2222', 'x']);
});

test('[T-3] pushParts copies the parts of a small message back to back, headers and payloads alike', () => {
  const q = new TxQueue();
  const header = Buffer.from([0, 0, 0, 5]);
  const payload = Buffer.from('hello world, a payload longer than a header');
  q.pushParts([header, payload.subarray(0, 5)], 9);
  q.pushParts([Buffer.from('x'), header, payload], 5 + payload.length);
  header.fill(0xff); // [T-3] copied at the call
  payload.fill(0x2e);
  assert.equal(q.length, 2);
  assert.deepEqual(takeAll(q, 'hex'), ['00000005' + Buffer.from('hello').toString('hex'), '7800000005' + Buffer.from('hello world, a payload longer than a header').toString('hex')]);
});

test('[T-3] pushRun stops where the chunk is full; push goes on in the next one, in order', () => {
  const q = new TxQueue();
  const msgs: Buffer[] = [];
  const want: string[] = [];
  for (let i = 0; i < Math.ceil((2 * CHUNK_SIZE) / 1000); i++) {
    msgs.push(Buffer.alloc(1000, i & 0xff));
    want.push(Buffer.alloc(1000, i & 0xff).toString('latin1'));
  }
  let i = 0;
  let pushes = 0;
  while (i < msgs.length) {
    const next = q.pushRun(msgs, i, msgs.length - 1, Infinity);
    if (next > i) {
      i = next;
    } else {
      q.push(msgs[i]!, 1000);
      pushes++;
      i++;
    }
  }
  // The first message (no tail) and the first of each later chunk went through push().
  assert.equal(pushes, 3);
  assert.equal(q.length, msgs.length);
  assert.deepEqual(takeAll(q), want);
});
