/**
 * Hostile peers [P-3, P-4, P-6, P-7, P-8, E-1, T-12, T-16, X-3, X-16]: each fault gets
 * its defined error on its own psock only, while bystander transports keep carrying
 * messages both ways during and after the fault (see rig.ts).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { KcmError } from '../../src/errors.js';
import type { KcmSocket } from '../../src/mux/kcm-socket.js';
import { lengthField } from '../../src/parsers/length-field.js';
import { loadBpf } from '../../src/bpf/load-bpf.js';
import { FrameReader, P4, closeAll, frame, sleep, waitFor } from '../helpers/loopback.js';
import { Rig, firstError, type Suspect } from './rig.js';

after(closeAll);

const repo = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');
const memcachedObject = readFileSync(join(repo, 'test', 'fixtures', 'bpf', 'memcached.o'));

function assertCode(err: KcmError, code: string, what: string): void {
  assert.ok(err instanceof KcmError, `${what}: a KcmError, got ${String(err)}`);
  assert.equal(err.code, code, `${what}: ${code}, got ${err.code} (${err.message})`);
}

/** Checks the suspect: one error, done both ways, nothing of its stream delivered. */
function assertDone(s: Suspect, code: string, rig: Rig): void {
  assert.equal(s.errors.length, 1, `psock-${s.psock.index} emits 'error' once`);
  assertCode(s.errors[0]!, code, 'the suspect');
  const st = s.psock.stats();
  assert.equal(st.rxStopped, true, 'receive stopped');
  assert.equal(st.txStopped, true, 'out of transmit rotation [X-3]');
  for (const r of rig.received) for (const p of r) assert.ok(!p.startsWith('x'), `nothing of the hostile stream delivered (${p})`);
}

/** Re-attaches the good transports so that the suspect heads the transmit rotation [T-13]. */
function suspectFirst(rig: Rig): void {
  const k = rig.sockets[0]!;
  for (const g of rig.good) {
    k.unattach(g.pair.local);
    g.psock = k.attach(g.pair.local, { parser: P4 });
    g.psock.on('error', (e: KcmError) => g.errors.push(e));
  }
}

/** Runs `fault` in the middle of bystander traffic, then checks everything. */
const valid = new WeakSet<Suspect>();

async function withRig(fault: (rig: Rig) => Promise<Suspect>, code: string): Promise<void> {
  const rig = await Rig.create(2);
  try {
    rig.start();
    await rig.runRounds(10);
    const s = await fault(rig);
    await firstError(s);
    if (s.pair.remote.writableLength === 0 && valid.has(s)) {
      await waitFor(() => rig.received.some((r) => r.includes('v-before-garbage')), 10000, 'the valid message before the garbage');
    }
    await rig.runRounds(25);
    const reader = new FrameReader(s.pair.remote);
    await rig.verify([s], [reader]);
    assertDone(s, code, rig);
    // A psock in error is never picked again: later messages all go to the good transports.
    const before = s.psock.stats().txMsgs;
    await rig.sockets[0]!.send(frame('after'));
    await waitFor(() => rig.good.some((g) => g.reader.payloads().includes('after')), 10000, 'a message after the fault');
    assert.equal(s.psock.stats().txMsgs, before);
  } finally {
    rig.close();
  }
}

test('[P-6] garbage bytes read as a huge length fail with EMSGSIZE on that psock only', async () => {
  await withRig(async (rig) => {
    const s = await rig.suspect({ maxMessageSize: 1024 * 1024 });
    valid.add(s);
    // A whole message before the garbage is still delivered [E-1b].
    s.pair.remote.write(frame('v-before-garbage'));
    s.pair.remote.write(Buffer.from('deadbeef'.repeat(64), 'hex'));
    return s;
  }, 'EMSGSIZE');
});

test('[P-3][F-5] garbage bytes under a parser that checks a magic byte (eBPF memcached) fail with EBADMSG', async () => {
  await withRig(async (rig) => {
    const s = await rig.suspect({ parser: loadBpf(memcachedObject) });
    s.pair.remote.write(randomBytes(4096).fill(0x42, 0, 1));
    return s;
  }, 'EBADMSG');
});

for (const [name, header] of [
  ['2^31', Buffer.from([0x80, 0, 0, 0])],
  ['2^32 - 1', Buffer.from([0xff, 0xff, 0xff, 0xff])],
  ['2^31 - 4 (+4 reaches 2^31)', Buffer.from([0x7f, 0xff, 0xff, 0xfc])],
] as const) {
  test(`[P-6] a length field of ${name} fails with EMSGSIZE at once, before any body arrives`, async () => {
    await withRig(async (rig) => {
      const s = await rig.suspect();
      s.pair.remote.write(Buffer.concat([header, Buffer.alloc(16)]));
      return s;
    }, 'EMSGSIZE');
  });
}

test('[P-6] an 8-byte length field of 2^53 and more fails with EMSGSIZE', async () => {
  await withRig(async (rig) => {
    const s = await rig.suspect({ parser: lengthField({ size: 8, adjust: 8 }) });
    s.pair.remote.write(Buffer.from('0020000000000000' + '00'.repeat(8), 'hex'));
    return s;
  }, 'EMSGSIZE');
});

test("[P-3] a lengthField max refuses a 2^31 length with the parser's -EMSGSIZE", async () => {
  await withRig(async (rig) => {
    const s = await rig.suspect({ parser: lengthField({ size: 4, adjust: 4, max: 65536 }) });
    s.pair.remote.write(Buffer.from([0x80, 0, 0, 0, 1, 2, 3]));
    return s;
  }, 'EMSGSIZE');
});

test('[P-3] a length smaller than the header fails with EBADMSG (lengthField returns -EBADMSG)', async () => {
  await withRig(async (rig) => {
    // The field counts the whole message, header included: 2 < 4 bytes of header.
    const s = await rig.suspect({ parser: lengthField({ size: 4 }) });
    s.pair.remote.write(Buffer.from([0, 0, 0, 2, 9, 9]));
    return s;
  }, 'EBADMSG');
});

test('[P-7] slowloris, one byte per 100 ms, fails with ETIMEDOUT after assemblyTimeout', async () => {
  let slow: NodeJS.Timeout | undefined;
  try {
    await withRig(async (rig) => {
      const s = await rig.suspect({ assemblyTimeout: 400 });
      const bytes = frame(`x${'z'.repeat(200)}`);
      let at = 0;
      slow = setInterval(() => {
        if (at < bytes.length && !s.pair.remote.destroyed) s.pair.remote.write(bytes.subarray(at, ++at));
      }, 100);
      return s;
    }, 'ETIMEDOUT');
  } finally {
    clearInterval(slow);
  }
});

test('[E-1] a peer reset in the middle of an inbound message fails that psock with EPIPE', async () => {
  await withRig(async (rig) => {
    const s = await rig.suspect();
    const half = frame(`x${'y'.repeat(10000)}`).subarray(0, 5000);
    s.pair.remote.write(half);
    await waitFor(() => s.psock.stats().rxPartialBytes === half.length, 10000, 'half a message parsed');
    s.pair.remote.resetAndDestroy();
    return s;
  }, 'EPIPE');
});

test('[T-16][X-16] a peer reset while an outbound message is mid-write restarts it whole on another psock', async () => {
  const rig = await Rig.create(2);
  try {
    const s = await rig.suspect();
    const k = rig.sockets[0]!;
    const big = frame(randomBytes(8 * 1024 * 1024));
    suspectFirst(rig);
    // The suspect's peer reads a little, so the message is mid-write when it resets.
    s.pair.remote.pause();
    rig.start();
    await k.send(big);
    await waitFor(() => s.psock.stats().txStalled, 10000, 'the big message stalled on the suspect');
    assert.equal(s.psock.stats().reservedBy, k.index);
    s.pair.remote.resetAndDestroy();
    await firstError(s);
    await rig.runRounds(20);
    await waitFor(() => rig.good.some((g) => g.reader.frames.some((f) => f.length === big.length)), 20000, 'the big message on a good transport');
    const copies = rig.good.flatMap((g) => g.reader.frames.filter((f) => f.length === big.length));
    assert.equal(copies.length, 1, 'delivered once');
    assert.ok(copies[0]!.equals(big), 'delivered whole, from its first byte');
    assert.ok(k.mux.stats().txRetries >= 1);
    // The big message is not a bystander frame: take it out before the bystander check.
    for (const g of rig.good) {
      const i = g.reader.frames.findIndex((f) => f.length === big.length);
      if (i >= 0) g.reader.frames.splice(i, 1);
    }
    await rig.verify([s]);
    assertDone(s, 'EPIPE', rig);
  } finally {
    rig.close();
  }
});

test('[T-12][X-16] a peer that never reads stalls only its transport; the stalled message moves only when it fails', async () => {
  const rig = await Rig.create(2);
  try {
    const [k0, k1] = rig.sockets as [KcmSocket, KcmSocket];
    const s = await rig.suspect();
    suspectFirst(rig);
    s.pair.remote.pause();
    const big = frame(randomBytes(8 * 1024 * 1024));
    await k0.send(big);
    await waitFor(() => s.psock.stats().txStalled, 10000, 'the big message stalled on the suspect');
    assert.equal(s.psock.stats().reservedBy, k0.index);
    // The other socket's messages flow on the good transports meanwhile, for a while.
    for (let i = 0; i < 200; i++) {
      await k1.send(frame(`side:${i}`));
      if (i % 20 === 0) await sleep(10);
    }
    const side = (): number => rig.good.reduce((n, g) => n + g.reader.payloads().filter((p) => p.startsWith('side:')).length, 0);
    await waitFor(() => side() === 200, 10000, "the other socket's messages on the good transports");
    // The stalled message did not move: no restart while its transport is only slow.
    assert.equal(k0.mux.stats().txRetries, 0, 'no restart while the transport is only slow');
    assert.equal(s.psock.stats().reservedBy, k0.index);
    assert.equal(s.psock.stats().txStalled, true);
    assert.deepEqual(s.errors, []);
    // The transport fails: the message restarts whole on a good transport at once.
    s.pair.remote.resetAndDestroy();
    await firstError(s);
    const bigs = (): Buffer[] => rig.good.flatMap((g) => g.reader.frames.filter((f) => f.length === big.length));
    await waitFor(() => bigs().length === 1, 20000, 'the stalled message on a good transport');
    assert.ok(bigs()[0]!.equals(big), 'whole and intact, from its first byte');
    assert.equal(s.psock.stats().txMsgs, 0, 'it was never handed whole to the suspect');
    assert.equal(k0.mux.stats().txRetries, 1, 'one restart');
    assertCode(s.errors[0]!, 'EPIPE', 'the suspect');
    await sleep(100);
    assert.equal(s.errors.length, 1, "'error' once");
    assert.equal(bigs().length, 1, 'delivered once');
    for (const g of rig.good) assert.deepEqual(g.errors, []);
  } finally {
    rig.close();
  }
});

test('[E-1] our own side reset mid inbound message fails that psock with EPIPE only', async () => {
  await withRig(async (rig) => {
    const s = await rig.suspect();
    s.pair.remote.on('error', () => {}); // the peer sees ECONNRESET
    s.pair.remote.write(frame(`x${'y'.repeat(10000)}`).subarray(0, 3000));
    await waitFor(() => s.psock.stats().rxPartialBytes === 3000, 10000, 'part of a message parsed');
    s.pair.local.resetAndDestroy();
    return s;
  }, 'EPIPE');
});
