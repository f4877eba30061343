import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import type { Psock } from '../../src/mux/psock.js';
import { KcmError } from '../../src/errors.js';
import type { Parser } from '../../src/parsers/parser.js';
import { P4, FrameReader, closeAll, frame, payload, sleep, tcpPair, tcpPairs, waitFor } from '../helpers/loopback.js';
import { assertKcmError, errorsOf, numbered, numberOf, numberedRun, psockError, receiveN, turns } from '../helpers/mux.js';

after(closeAll);

/** Messages delivered to `k` without waiting. */
function drain(k: KcmSocket): Buffer[] {
  const out: Buffer[] = [];
  for (let m = k.tryReceive(); m !== undefined && out.length < 100000; m = k.tryReceive()) out.push(m);
  return out;
}

/** Checks that the psock is done both ways and that no more messages come from it. */
async function assertDone(k: KcmSocket, psock: Psock, write: (b: Buffer) => void): Promise<void> {
  const s = psock.stats();
  assert.equal(s.rxStopped, true, 'receive stopped');
  assert.equal(s.txStopped, true, 'out of transmit rotation');
  assert.equal(s.txAborts, 1);
  const before = psock.stats().rxMsgs;
  write(numberedRun(100, 3));
  await sleep(50);
  assert.deepEqual(drain(k), [], 'nothing more is delivered from that psock');
  assert.equal(psock.stats().rxMsgs, before);
}

test('[P-6][P-8][§12-33] a header beyond maxMessageSize is EMSGSIZE; rxMsgTooBig 1; nothing more from that psock', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4, maxMessageSize: 1000 });
    const muxErrors: [KcmError, Psock][] = [];
    k.mux.on('psockerror', (err: KcmError, p: Psock) => muxErrors.push([err, p]));
    remote.write(numbered(0, 996)); // exactly 1000: accepted
    assert.equal(numberOf((await receiveN(k, 1))[0]!), 0);
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1997, 0); // 2001 bytes
    remote.write(header);
    const err = await psockError(psock);
    assertKcmError(err, 'EMSGSIZE', 90);
    assert.equal(psock.stats().rxMsgTooBig, 1);
    assert.equal(psock.error, err);
    await waitFor(() => muxErrors.length === 1, 5000, 'psockerror');
    assert.equal(muxErrors[0]![0], err);
    assert.equal(muxErrors[0]![1], psock);
    await assertDone(k, psock, (b) => remote.write(b));
    assert.equal(muxErrors.length, 1, 'emitted once');
  } finally {
    k.close();
  }
});

test('[P-7][X-11][§12-34] assemblyTimeout: slow pieces do not restart the timer; ETIMEDOUT, rxMsgTimeouts 1', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4, assemblyTimeout: 100 });
    const errors = errorsOf(psock);
    // A whole message in one burst never arms the timer.
    remote.write(numbered(1, 400));
    assert.equal(numberOf((await receiveN(k, 1))[0]!), 1);
    const f = numbered(2, 400);
    remote.write(f.subarray(0, 200));
    // The rest in pieces every 30 ms: 20 pieces take far longer than 100 ms.
    for (let off = 200, i = 0; off < f.length && errors.length === 0 && i < 40; off += 10, i++) {
      await sleep(30);
      if (errors.length === 0) remote.write(f.subarray(off, off + 10));
    }
    await waitFor(() => errors.length > 0, 10000, 'the timeout');
    assertKcmError(errors[0], 'ETIMEDOUT', 110);
    assert.equal(psock.stats().rxMsgTimeouts, 1);
    assert.equal(errors.length, 1);
    assert.deepEqual(drain(k), [], 'the partial message is not delivered');
    await assertDone(k, psock, (b) => remote.write(b));
  } finally {
    k.close();
  }
});

test('[P-4][X-4][§12-35] a length not beyond the bytes seen before the chunk is EPROTO; rxBadHdrLen 1', async () => {
  const { local, remote } = await tcpPair();
  const calls: number[] = [];
  // Needs 8 bytes to decide, then claims a 4-byte message: already seen.
  const parser: Parser = (d) => {
    calls.push(d.length);
    return d.length < 8 ? 0 : 4;
  };
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser });
    remote.write(Buffer.from([0, 0, 0, 0]));
    await waitFor(() => calls.length === 1, 5000, 'the first parse call');
    remote.write(Buffer.from([1, 1, 1, 1]));
    const err = await psockError(psock);
    assertKcmError(err, 'EPROTO', 71);
    assert.deepEqual(calls, [4, 8]);
    assert.equal(psock.stats().rxBadHdrLen, 1);
    assert.equal(psock.stats().rxNeedMoreHdr, 1);
    assert.deepEqual(drain(k), []);
  } finally {
    k.close();
  }
});

test('[P-3][X-4][E-3][F-5][§12-37] a negative parser return is that errno; an unknown one is EBADMSG carrying the number', async () => {
  const cases: [number, string, number][] = [
    [-74, 'EBADMSG', 74],
    [-22, 'EINVAL', 22],
    [-9999, 'EBADMSG', 9999],
  ];
  const pairs = await tcpPairs(cases.length);
  const k = KcmSocket.create();
  try {
    for (let i = 0; i < cases.length; i++) {
      const [ret, code, errno] = cases[i]!;
      // A valid first frame, then a rejected one.
      const parser: Parser = (d) => (d[4] === 0xff ? ret : P4(d));
      const psock = k.attach(pairs[i]!.local, { parser });
      pairs[i]!.remote.write(Buffer.concat([frame('ok'), frame(Buffer.from([0xff, 1, 2]))]));
      const err = await psockError(psock);
      assertKcmError(err, code, errno);
      assert.equal(payload((await receiveN(k, 1))[0]!), 'ok', 'the message before the bad one is delivered');
      assert.deepEqual(drain(k), []);
      assert.equal(psock.stats().rxStopped, true);
    }
  } finally {
    k.close();
  }
});

test('[P-3] -ESTRPIPE is ESTRPIPE on a message\'s first chunk, ENODATA once part of it had arrived', async () => {
  const [a, b] = await tcpPairs(2);
  const k = KcmSocket.create();
  try {
    const strpipe: Parser = (d) => (d.length >= 6 ? -86 : 0);
    const pa = k.attach(a!.local, { parser: strpipe });
    a!.remote.write(Buffer.alloc(8));
    assertKcmError(await psockError(pa), 'ESTRPIPE', 86);
    assert.equal(pa.stats().rxInterrupted, 1);
    const pb = k.attach(b!.local, { parser: strpipe });
    const calls = errorsOf(pb);
    b!.remote.write(Buffer.alloc(3));
    await waitFor(() => pb.stats().rxNeedMoreHdr === 1, 5000, 'a first partial chunk');
    b!.remote.write(Buffer.alloc(5));
    await waitFor(() => calls.length === 1, 5000, 'the error');
    assertKcmError(calls[0], 'ENODATA', 61);
    assert.equal(pb.stats().rxUnrecovIntr, 1);
  } finally {
    k.close();
  }
});

test('[P-8][X-3][§12-54] after a receive error the psock leaves transmit rotation: sends go to the other one', async () => {
  const [t0, t1] = await tcpPairs(2);
  const k = KcmSocket.create();
  try {
    const p0 = k.attach(t0!.local, { parser: P4, maxMessageSize: 100 });
    k.attach(t1!.local, { parser: P4 });
    const r0 = new FrameReader(t0!.remote);
    const r1 = new FrameReader(t1!.remote);
    const big = Buffer.alloc(4);
    big.writeUInt32BE(500, 0);
    t0!.remote.write(big);
    assertKcmError(await psockError(p0), 'EMSGSIZE');
    for (let i = 0; i < 4; i++) await k.send(frame(`m${i}`));
    await waitFor(() => r1.frames.length === 4, 5000, 'four frames on T1');
    await sleep(20);
    assert.equal(r0.bytes, 0, 'nothing written on the failed psock');
    assert.deepEqual(r1.payloads(), ['m0', 'm1', 'm2', 'm3']);
    assert.equal(p0.stats().txStopped, true);
    assert.equal(p0.stats().reserved, 0);
  } finally {
    k.close();
  }
});

test('[E-1][E-1b][§12-53] the peer sends 3 frames then FIN: all 3 delivered, then psock \'error\' EPIPE and \'psockerror\' once', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4 });
    const events: string[] = [];
    k.on('message', (m: Buffer) => events.push(`msg ${numberOf(m)}`));
    const errors = errorsOf(psock);
    psock.on('error', () => events.push('error'));
    const muxErrors: [KcmError, Psock][] = [];
    k.mux.on('psockerror', (err: KcmError, p: Psock) => {
      muxErrors.push([err, p]);
      events.push('psockerror');
    });
    remote.end(numberedRun(0, 3));
    await waitFor(() => errors.length > 0, 5000, 'the EPIPE');
    await sleep(50); // 'close' follows 'end': still one error
    assert.deepEqual(events, ['msg 0', 'msg 1', 'msg 2', 'error', 'psockerror']);
    assertKcmError(errors[0], 'EPIPE', 32);
    assert.equal(errors.length, 1);
    assert.equal(muxErrors.length, 1);
    assert.equal(muxErrors[0]![0], errors[0]);
    assert.equal(muxErrors[0]![1], psock);
    assert.equal(psock.stats().rxMsgs, 3);
  } finally {
    k.close();
  }
});

test('[E-1b] a trailing partial message before FIN is never delivered', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4 });
    remote.end(Buffer.concat([numbered(0), frame('cut-short').subarray(0, 6)]));
    assertKcmError(await psockError(psock), 'EPIPE');
    assert.deepEqual(drain(k).map(numberOf), [0]);
    await sleep(20);
    assert.deepEqual(drain(k), []);
  } finally {
    k.close();
  }
});

test('[E-1][E-7] a reset transport is a psock EPIPE whose cause is the transport error', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4 });
    remote.resetAndDestroy();
    const err = await psockError(psock);
    assertKcmError(err, 'EPIPE');
    if (err.cause !== undefined) assert.equal((err.cause as NodeJS.ErrnoException).code, 'ECONNRESET');
    assert.equal(psock.stats().txStopped, true);
  } finally {
    k.close();
  }
});

test('[E-1][X-3] an error with no listener on the psock nor the mux is not thrown', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4 });
    assert.equal(psock.listenerCount('error'), 0);
    assert.equal(k.mux.listenerCount('psockerror'), 0);
    remote.destroy();
    await waitFor(() => psock.error !== undefined, 5000, 'the psock error');
    assertKcmError(psock.error, 'EPIPE');
    await turns();
    // The mux carries on: a new transport works.
    const second = await tcpPair();
    k.attach(second.local, { parser: P4 });
    second.remote.write(numbered(1));
    assert.equal(numberOf((await receiveN(k, 1))[0]!), 1);
  } finally {
    k.close();
  }
});

test('[E-4] on error the application unattaches and closes the transport, then attaches a new one', async () => {
  const [t0, t1] = await tcpPairs(2);
  const k = KcmSocket.create();
  try {
    const p0 = k.attach(t0!.local, { parser: P4 });
    let handled = false;
    k.mux.on('psockerror', (_err: KcmError, p: Psock) => {
      k.unattach(p.transport);
      p.transport.destroy();
      handled = true;
    });
    t0!.remote.destroy();
    await waitFor(() => handled, 5000, 'the error handler');
    assert.deepEqual(k.mux.psocks, []);
    const s = k.mux.stats();
    assert.equal(s.psockUnattach, 1);
    assert.equal(s.psockUnattachRsvd, 0);
    assert.equal(s.rxReadyDrops, 0);
    assert.equal(p0.transport.destroyed, true);
    const p1 = k.attach(t1!.local, { parser: P4 });
    assert.equal(p1.index, 0);
    const reader = new FrameReader(t1!.remote);
    await k.send(frame('after'));
    t1!.remote.write(numbered(2));
    assert.equal(numberOf((await receiveN(k, 1))[0]!), 2);
    await waitFor(() => reader.frames.length === 1, 5000, 'the frame');
    assert.deepEqual(reader.payloads(), ['after']);
  } finally {
    k.close();
  }
});

for (const order of ['unattach at once', 're-enable, then unattach'] as const) {
  test(`[E-5][U-2][ST-3] a psock that fails while holding a message drops it once, counted in rxReadyDrops (${order})`, async () => {
    const { local, remote } = await tcpPair();
    const k = KcmSocket.create();
    try {
      k.setRecvDisable(true);
      const psock = k.attach(local, { parser: P4 });
      const errors = errorsOf(psock);
      remote.write(frame('held'));
      await waitFor(() => psock.stats().rxPaused, 5000, 'the psock to hold a message');
      local.destroy(); // the transport dies under the psock
      await waitFor(() => errors.length === 1, 5000, 'the psock error');
      assert.equal(psock.stats().rxPaused, false, 'a failed psock holds nothing');
      if (order !== 'unattach at once') {
        k.setRecvDisable(false);
        await turns();
        assert.deepEqual(drain(k), [], 'no message is steered from a failed psock');
      }
      k.unattach(local);
      const s = k.mux.stats();
      assert.equal(s.rxMsgs, 1);
      assert.equal(s.rxReadyDrops, 1, 'the parsed message is accounted for as dropped');
      k.setRecvDisable(false);
      await turns();
      assert.deepEqual(drain(k), []);
    } finally {
      k.close();
    }
  });
}

test('[E-1b][S-4] a FIN behind messages held for a full socket: every complete message is still delivered, then EPIPE', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create({ receiveBufferSize: 1 });
  try {
    const psock = k.attach(local, { parser: P4 });
    const errors = errorsOf(psock);
    remote.end(numberedRun(0, 5)); // K takes one, the psock holds the next, three wait behind it
    await waitFor(() => psock.stats().rxPaused || errors.length > 0, 5000, 'the psock to hold a message');
    await sleep(50);
    assert.deepEqual(errors, [], 'no error while complete messages wait');
    const got: number[] = [];
    const signal = AbortSignal.timeout(10000);
    while (got.length < 5) got.push(numberOf(await k.receive({ signal })));
    assert.deepEqual(got, [0, 1, 2, 3, 4]);
    await waitFor(() => errors.length === 1, 5000, 'the EPIPE after the last message');
    assertKcmError(errors[0], 'EPIPE');
    assert.equal(k.mux.stats().rxReadyDrops, 0);
  } finally {
    k.close();
  }
});

test('[P-8] after a parser error the transport is paused; bytes that arrive later are readable after unattach', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    const psock = k.attach(local, { parser: P4, maxMessageSize: 100 });
    const header = Buffer.alloc(4);
    header.writeUInt32BE(1000, 0);
    remote.write(header);
    assertKcmError(await psockError(psock), 'EMSGSIZE');
    remote.write('tail bytes');
    await sleep(30);
    k.unattach(local);
    assert.equal(local.destroyed, false);
    const chunks: Buffer[] = [];
    local.on('data', (c: Buffer) => chunks.push(c));
    local.resume();
    await waitFor(() => Buffer.concat(chunks).toString() === 'tail bytes', 5000, 'the later bytes');
    assert.deepEqual(drain(k), []);
  } finally {
    k.close();
  }
});
