/**
 * The copy pool: the buffers large messages are copied into at the call [T-3 step 4] are
 * used again once their transport has taken them whole, never earlier. Unit tests of the
 * pool, and loopback tests where a reused buffer given back too early would change bytes
 * still on their way out.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import { CopyPool, POOL_BUFFER_MAX, POOL_BYTES_MAX, POOL_PER_CLASS, copyPool, poolClassSize } from '../../src/mux/copy-pool.js';
import { FrameReader, P4, closeAll, filledFrame, frameInto, sleep, tcpPair, waitFor } from '../helpers/loopback.js';
import { closeMux } from '../helpers/mux.js';

after(closeAll);

test('size classes: a quarter of a power of two apart, never shorter than the message', () => {
  assert.equal(poolClassSize(16 * 1024 + 1), 20 * 1024);
  assert.equal(poolClassSize(64 * 1024), 64 * 1024);
  assert.equal(poolClassSize(64 * 1024 + 4), 80 * 1024);
  assert.equal(poolClassSize(POOL_BUFFER_MAX), POOL_BUFFER_MAX);
  for (let len = 16 * 1024 + 1; len <= POOL_BUFFER_MAX; len += 997) {
    const size = poolClassSize(len);
    assert.ok(size >= len && size * 4 <= len * 5 + 4 * 4096, `class of ${len}: ${size}`);
  }
});

test('take() reuses a given-back buffer of the class; bounded per class and in all', () => {
  const pool = new CopyPool();
  const a = pool.take(70 * 1024);
  assert.equal(a.length, poolClassSize(70 * 1024));
  pool.give(a);
  assert.equal(pool.bytes, a.length);
  assert.equal(pool.take(65 * 1024), a, 'the same class: the same buffer');
  assert.equal(pool.bytes, 0);
  assert.notEqual(pool.take(200 * 1024), a, 'another class: a new buffer');
  // Per class.
  const many = Array.from({ length: POOL_PER_CLASS + 3 }, () => pool.take(40 * 1024));
  for (const b of many) pool.give(b);
  assert.equal(pool.bytes, POOL_PER_CLASS * many[0]!.length);
  pool.clear();
  // In all.
  const big = Array.from({ length: 2 * POOL_BYTES_MAX / POOL_BUFFER_MAX }, () => pool.take(POOL_BUFFER_MAX));
  for (const b of big) pool.give(b);
  assert.ok(pool.bytes <= POOL_BYTES_MAX);
  // Beyond the largest class: allocated, never kept.
  const huge = pool.take(POOL_BUFFER_MAX + 1);
  assert.equal(huge.length, POOL_BUFFER_MAX + 1);
  pool.clear();
  pool.give(huge);
  assert.equal(pool.bytes, 0);
});

for (const [what, size, warm] of [['large messages', 64 * 1024, POOL_PER_CLASS], ['small messages in reused chunks', 3000, 200]] as const) {
test(`[T-3][T-12] ${what} copied into reused buffers while earlier ones wait in a stalled transport arrive intact`, async (t) => {
  const k = KcmSocket.create({ sendBufferSize: 64 * 1024 * 1024 });
  t.after(() => closeMux(k));
  const { local, remote } = await tcpPair();
  const reader = new FrameReader(remote);
  const p = k.attach(local, { parser: P4 });
  const scratch = Buffer.alloc(4 + size);
  const want: Buffer[] = [];
  // Written whole: their copies (full chunks) go back to the pool.
  for (let i = 0; i < warm; i++) {
    await k.send(frameInto(scratch, size, i));
    want.push(filledFrame(size, i));
  }
  await waitFor(() => reader.frames.length === want.length, 10000, 'the first messages');
  // The peer stops reading: messages pile up in the kernel, then in the transport.
  remote.pause();
  let fill = 0x10;
  const reusedBefore = copyPool.reused;
  // Until the transport stays stalled with a message in it (TCP may grow its buffers).
  let stable = 0;
  const every = Math.ceil((512 * 1024) / size);
  for (let i = 0; i < 200 * every && stable < 4; i++) {
    await k.send(frameInto(scratch, size, fill & 0xff));
    want.push(filledFrame(size, fill++ & 0xff));
    if (i % every === every - 1) {
      await sleep(10);
      stable = p.stats().txStalled && local.writableLength > 0 ? stable + 1 : 0;
    }
  }
  assert.equal(stable, 4, 'the transport stalled with a message in it');
  // More messages, copied while the transport still holds earlier copies.
  for (let i = 0; i < 3 * warm; i++) {
    await k.send(frameInto(scratch, size, fill & 0xff));
    want.push(filledFrame(size, fill++ & 0xff));
    scratch.fill(0xee);
  }
  assert.ok(copyPool.reused > reusedBefore, 'copies went into reused buffers');
  remote.resume();
  await waitFor(() => reader.frames.length === want.length, 30000, 'every message');
  assert.equal(reader.partial, 0);
  for (let i = 0; i < want.length; i++) assert.ok(reader.frames[i]!.equals(want[i]!), `message ${i} as it was at the call`);
});
}
