/**
 * send() copies, as sendmsg does [T-3 step 4]: once send() or sendMany() has resolved, or
 * trySend() has returned true, the caller may reuse its buffers, and what goes out is what
 * they held at the call. Real loopback sockets; the peer checks every byte.
 */
import { after, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket, type KcmSocketOptions } from '../../src/index.js';
import { FrameReader, P4, closeAll, filledFrame, frameInto, sleep, tcpPair, waitFor } from '../helpers/loopback.js';
import { closeMux } from '../helpers/mux.js';
import { waitStalled } from '../helpers/traffic.js';

after(closeAll);

const BIG_BUFFER = { sendBufferSize: 64 * 1024 * 1024 };

/**
 * A socket whose one transport is stalled [T-12] behind a 16 MiB filler (pinned to it
 * with `pinned`), its peer paused: what the test sends next waits in the queues until
 * `remote.resume()`, and `reader` then sees every frame.
 */
async function stalled(t: TestContext, options: KcmSocketOptions | undefined, pinned = false) {
  const k = KcmSocket.create(options);
  t.after(() => closeMux(k));
  const { local, remote } = await tcpPair();
  const reader = new FrameReader(remote);
  const p = k.attach(local, { parser: P4 });
  remote.pause();
  const filler = filledFrame(16 * 1024 * 1024, 0x21);
  await k.send(filler, pinned ? { psock: p } : undefined);
  await waitStalled(p);
  return { k, p, remote, reader, filler };
}

test('[T-3][T-18] a message sent before any transport is attached goes out as it was at the call', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const scratch = Buffer.alloc(64);
  const parts = Buffer.alloc(32);
  await k.send(frameInto(scratch, 10, 0x61));
  frameInto(scratch, 10, 0x7a); // reused after send() resolved
  assert.equal(k.trySend(frameInto(scratch, 20, 0x62)), true);
  frameInto(scratch, 20, 0x7a);
  // An iovec: the parts are copied too.
  frameInto(parts, 6, 0x63);
  await k.send([parts.subarray(0, 3), parts.subarray(3, 10)]);
  parts.fill(0x7a);
  // sendMany: several messages built in one scratch buffer.
  const many = [frameInto(scratch.subarray(0, 12), 8, 0x64), frameInto(scratch.subarray(12, 24), 8, 0x65)];
  await k.sendMany(many);
  scratch.fill(0x7a);
  // sendMany of iovecs, as frame() builds them: one header buffer reused for both.
  const header = Buffer.alloc(4);
  header.writeUInt32BE(3);
  const first: Uint8Array[] = [header, Buffer.alloc(3, 0x66)];
  await k.sendMany([first, [Buffer.from(header), Buffer.alloc(3, 0x67)]]);
  header.fill(0x7a);
  const { local, remote } = await tcpPair();
  const reader = new FrameReader(remote);
  k.attach(local, { parser: P4 });
  await waitFor(() => reader.frames.length === 7, 5000, 'the seven messages');
  assert.deepEqual(reader.frames, [filledFrame(10, 0x61), filledFrame(20, 0x62), filledFrame(6, 0x63), filledFrame(8, 0x64), filledFrame(8, 0x65), filledFrame(3, 0x66), filledFrame(3, 0x67)]);
});

for (const call of ['send', 'trySend', 'sendMany'] as const) {
  test(`[T-3][T-12] ${call}: messages queued behind a stalled transport, built in one scratch buffer, arrive intact`, async (t) => {
    const k = KcmSocket.create(BIG_BUFFER);
    t.after(() => closeMux(k));
    const { local, remote } = await tcpPair();
    remote.pause();
    const p = k.attach(local, { parser: P4 });
    // Stall the transport with one large message, then queue small ones behind it.
    const big = filledFrame(8 * 1024 * 1024, 0x42);
    await k.send(big);
    await waitStalled(p);
    const scratch = Buffer.alloc(256);
    const want: Buffer[] = [big];
    for (let i = 0; i < 200; i++) {
      const size = 1 + (i % 97);
      const m = frameInto(scratch, size, i & 0xff);
      if (call === 'send') await k.send(m);
      else if (call === 'trySend') assert.equal(k.trySend(m), true);
      else await k.sendMany([m, frameInto(scratch.subarray(128), size, (i + 1) & 0xff)]);
      want.push(filledFrame(size, i & 0xff));
      if (call === 'sendMany') want.push(filledFrame(size, (i + 1) & 0xff));
      scratch.fill(0xee);
    }
    const reader = new FrameReader(remote);
    remote.resume();
    await waitFor(() => reader.frames.length === want.length, 30000, 'every message');
    assert.equal(reader.partial, 0);
    for (let i = 0; i < want.length; i++) assert.ok(reader.frames[i]!.equals(want[i]!), `message ${i} as it was at the call`);
  });
}

test('[T-3][T-17] a 1 MiB message whose scratch buffer is reused for the next: exact bytes, other sockets unharmed', async (t) => {
  // The peer is a multiplexor: a damaged frame would fail its psock (EMSGSIZE) and lose
  // the other socket's messages behind it.
  const k = KcmSocket.create();
  const other = k.clone();
  t.after(() => closeMux(k));
  const peer = KcmSocket.create();
  t.after(() => closeMux(peer));
  const errors: Error[] = [];
  peer.mux.on('psockerror', (err: Error) => errors.push(err));
  const got: Buffer[] = [];
  peer.on('message', (m: Buffer) => got.push(Buffer.from(m)));
  const { local, remote } = await tcpPair();
  const p = k.attach(local, { parser: P4 });
  peer.attach(remote, { parser: P4, maxMessageSize: 32 * 1024 * 1024 });
  // The peer reads nothing for a while: a filler fills the kernel's buffers, and what
  // follows waits in the sending transport.
  remote.pause();
  const filler = filledFrame(16 * 1024 * 1024, 0x21);
  await k.send(filler);
  await waitStalled(p);
  const resume = setTimeout(() => remote.resume(), 300);
  t.after(() => clearTimeout(resume));
  const want: Buffer[] = [filler];
  const scratch = Buffer.alloc(1024 * 1024 + 4);
  const sizes = [1024 * 1024, 300 * 1024, 1024 * 1024 - 7, 70 * 1024, 1024 * 1024];
  const small = Buffer.alloc(16);
  for (let i = 0; i < sizes.length; i++) {
    await k.send(frameInto(scratch, sizes[i]!, 0x30 + i));
    want.push(filledFrame(sizes[i]!, 0x30 + i));
    // Another socket's messages, from a reused buffer too.
    for (let j = 0; j < 10; j++) {
      await other.send(frameInto(small, 8, 0xa0 + j));
      want.push(filledFrame(8, 0xa0 + j));
    }
    scratch.fill(0xff); // as a caller reusing it would
  }
  await waitFor(() => got.length === want.length || errors.length > 0, 30000, 'every message');
  await sleep(20);
  assert.deepEqual(errors, []);
  const key = (b: Buffer): string => `${b.length}:${b[4]}`;
  assert.deepEqual(got.map(key).sort(), want.map(key).sort());
  for (const m of got) {
    const w = want.find((x) => x.length === m.length && x[4] === m[4])!;
    assert.ok(m.equals(w), `a message of ${m.length} bytes as it was at the call`);
  }
});

test('[T-3] a large message in sendMany and an iovec of large parts are copied at the call', async (t) => {
  const { k, remote, reader, filler } = await stalled(t, undefined);
  const resume = setTimeout(() => remote.resume(), 300);
  t.after(() => clearTimeout(resume));
  const a = Buffer.alloc(200 * 1024 + 4);
  const b = Buffer.alloc(200 * 1024 + 4);
  const pending = k.sendMany([frameInto(a, 200 * 1024, 1), frameInto(b, 100 * 1024, 2)]);
  await pending;
  a.fill(9);
  b.fill(9);
  const head = Buffer.alloc(4);
  const body = Buffer.alloc(150 * 1024, 3);
  head.writeUInt32BE(body.length, 0);
  await k.send([head, body]);
  head.fill(9);
  body.fill(9);
  await waitFor(() => reader.frames.length === 4, 10000, 'the four messages');
  assert.ok(reader.frames[0]!.equals(filler));
  assert.ok(reader.frames[1]!.equals(filledFrame(200 * 1024, 1)));
  assert.ok(reader.frames[2]!.equals(filledFrame(100 * 1024, 2)));
  assert.ok(reader.frames[3]!.equals(filledFrame(150 * 1024, 3)));
});

test('[T-3] copy: false hands a large whole message over: it goes by reference; small ones and parts are still copied', async (t) => {
  const { k, remote, reader, filler } = await stalled(t, BIG_BUFFER);
  const size = 64 * 1024;
  // Every buffer is changed after its call, which the copy: false contract forbids, to
  // tell which messages went by reference.
  const byDefault = frameInto(Buffer.alloc(4 + size), size, 1);
  const copied = frameInto(Buffer.alloc(4 + size), size, 2);
  const handed = frameInto(Buffer.alloc(4 + size), size, 3);
  const small = frameInto(Buffer.alloc(4 + 100), 100, 4);
  const head = Buffer.alloc(4);
  const body = Buffer.alloc(size, 5);
  head.writeUInt32BE(size, 0);
  const manyA = frameInto(Buffer.alloc(4 + size), size, 6);
  const manyB = frameInto(Buffer.alloc(4 + 50), 50, 7);
  const tried = frameInto(Buffer.alloc(4 + size), size, 8); // sent as a plain Uint8Array
  await k.send(byDefault);
  await k.send(copied, { copy: true });
  await k.send(handed, { copy: false });
  await k.send(small, { copy: false });
  await k.send([head, body], { copy: false });
  await k.sendMany([manyA, manyB], { copy: false });
  assert.equal(k.trySend(new Uint8Array(tried.buffer, tried.byteOffset, tried.length), { copy: false }), true);
  for (const b of [byDefault, copied, handed, small, head, body, manyA, manyB, tried]) b.fill(0x7a, 4);
  remote.resume();
  await waitFor(() => reader.frames.length === 9, 30000, 'every message');
  const f = reader.frames;
  assert.ok(f[0]!.equals(filler));
  assert.ok(f[1]!.equals(filledFrame(size, 1)), 'copied by default');
  assert.ok(f[2]!.equals(filledFrame(size, 2)), 'copied with copy: true');
  assert.ok(f[3]!.equals(filledFrame(size, 0x7a)), 'copy: false: by reference');
  assert.ok(f[4]!.equals(filledFrame(100, 4)), 'a small message is copied all the same');
  assert.ok(f[5]!.equals(filledFrame(size, 5)), 'the parts of an iovec are copied all the same');
  assert.ok(f[6]!.equals(filledFrame(size, 0x7a)), 'sendMany copy: false: a large message by reference');
  assert.ok(f[7]!.equals(filledFrame(50, 7)), 'sendMany copy: false: a small one copied');
  assert.ok(f[8]!.equals(filledFrame(size, 0x7a)), 'trySend copy: false, a Uint8Array: by reference');
  assert.deepEqual(k.stats(), { rxMsgs: 0, rxBytes: 0, txMsgs: 9, txBytes: reader.bytes });
});

test('[T-3][K-3] copy: false on a pinned large reply goes by reference on its psock; the default copies', async (t) => {
  const { k, p, remote, reader } = await stalled(t, BIG_BUFFER, true);
  const size = 40 * 1024;
  const copied = frameInto(Buffer.alloc(4 + size), size, 1);
  const handed = frameInto(Buffer.alloc(4 + size), size, 2);
  const many = frameInto(Buffer.alloc(4 + size), size, 3);
  await k.send(copied, { psock: p });
  await k.send(handed, { psock: p, copy: false });
  await k.sendMany([many], { psock: p, copy: false });
  for (const b of [copied, handed, many]) b.fill(0x7a, 4);
  remote.resume();
  await waitFor(() => reader.frames.length === 4, 30000, 'every message');
  assert.ok(reader.frames[1]!.equals(filledFrame(size, 1)));
  assert.ok(reader.frames[2]!.equals(filledFrame(size, 0x7a)));
  assert.ok(reader.frames[3]!.equals(filledFrame(size, 0x7a)));
  assert.equal(p.stats().txPinnedMsgs, 4);
});

test('[T-3] copy must be a boolean: ERR_INVALID_ARG_TYPE, nothing queued', async (t) => {
  const k = KcmSocket.create();
  t.after(() => closeMux(k));
  const m = filledFrame(10, 1);
  for (const bad of ['no', 0, null]) {
    assert.throws(() => k.send(m, { copy: bad as never }), { code: 'ERR_INVALID_ARG_TYPE', message: /options\.copy/ });
    assert.throws(() => k.trySend(m, { copy: bad as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => k.sendMany([m], { copy: bad as never }), { code: 'ERR_INVALID_ARG_TYPE' });
  }
  assert.equal(k.stats().txMsgs, 0);
});
