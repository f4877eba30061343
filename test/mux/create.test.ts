import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import { KcmError } from '../../src/errors.js';
import { P4, closeAll, tcpPairs } from '../helpers/loopback.js';
import { throwsKcm } from '../helpers/mux.js';

after(closeAll);

test('[O-1] create gives a dgram socket by default, or a seqpacket one, each on a new multiplexor', () => {
  const d = KcmSocket.create();
  const s = KcmSocket.create({ type: 'seqpacket' });
  const d2 = KcmSocket.create({ type: 'dgram' });
  try {
    assert.equal(d.type, 'dgram');
    assert.equal(s.type, 'seqpacket');
    assert.equal(d2.type, 'dgram');
    assert.notEqual(d.mux, s.mux);
    assert.notEqual(d.mux, d2.mux);
    assert.equal(d.index, 0);
    assert.equal(d2.index, 0);
    assert.deepEqual(d.mux.sockets, [d]);
    assert.deepEqual(d2.mux.sockets, [d2]);
    assert.equal(d.mux.stats().psocks.length, 0);
  } finally {
    d.close();
    s.close();
    d2.close();
  }
});

test('[O-1a] an unknown socket type throws KcmError ESOCKTNOSUPPORT', () => {
  for (const type of ['stream', 'raw', 'DGRAM', '']) {
    const err = throwsKcm(() => KcmSocket.create({ type: type as 'dgram' }), 'ESOCKTNOSUPPORT');
    assert.equal(err.errno, 94);
    assert.ok(err instanceof KcmError);
  }
  assert.throws(() => KcmSocket.create({ type: 1 as unknown as 'dgram' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  assert.throws(() => KcmSocket.create({ receiveBufferSize: -1 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
  assert.throws(() => KcmSocket.create({ sendBufferSize: 1.5 }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
});

test('[O-1] two creates give two independent multiplexors: a psock of one is unknown to the other', async () => {
  const [t0] = await tcpPairs(1);
  const a = KcmSocket.create();
  const b = KcmSocket.create();
  try {
    assert.notEqual(a.mux, b.mux);
    a.attach(t0!.local, { parser: P4 });
    assert.equal(a.mux.stats().psockAttach, 1);
    assert.equal(b.mux.stats().psockAttach, 0);
    assert.equal(b.mux.psocks.length, 0);
    throwsKcm(() => b.unattach(t0!.local), 'ENOENT');
  } finally {
    a.close();
    b.close();
  }
});

test('[O-3][O-3b] clone shares the multiplexor, the type and the buffer options', () => {
  const k0 = KcmSocket.create({ type: 'seqpacket', sendBufferSize: 4096, receiveBufferSize: 777 });
  const k1 = k0.clone();
  const k2 = k1.clone(); // any socket of a mux can be cloned
  try {
    assert.equal(k1.mux, k0.mux);
    assert.equal(k2.mux, k0.mux);
    for (const k of [k1, k2]) {
      assert.equal(k.type, 'seqpacket');
      assert.equal(k.sendBufferSize, 4096);
      assert.equal(k.receiveBufferSize, 777);
    }
    assert.deepEqual(k0.mux.sockets, [k0, k1, k2]);
    assert.deepEqual([k0.index, k1.index, k2.index], [0, 1, 2]);
  } finally {
    k2.close();
    k1.close();
    k0.close();
  }
});

test('[O-3] clone of a closed socket throws EBADF', () => {
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  k1.close();
  throwsKcm(() => k1.clone(), 'EBADF');
  assert.deepEqual(k0.mux.sockets, [k0]);
  k0.close();
});

test('[O-2] socket indices: the smallest free one, reused after close', () => {
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  const k2 = k0.clone();
  k1.close();
  const k3 = k0.clone();
  assert.equal(k3.index, 1);
  const k4 = k2.clone();
  assert.equal(k4.index, 3);
  k0.close();
  const k5 = k3.clone();
  assert.equal(k5.index, 0);
  assert.deepEqual(k3.mux.stats().sockets.map((s) => s.index), [0, 1, 2, 3]);
  assert.match(k3.mux.toString(), /^kcm-0 .*\n(.*\n)?kcm-1 /m);
  for (const k of [k2, k3, k4, k5]) k.close();
});

test('[O-2] psock indices: a separate space, the smallest free one, reused after unattach', async () => {
  const pairs = await tcpPairs(4);
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  try {
    const p0 = k0.attach(pairs[0]!.local, { parser: P4 });
    const p1 = k1.attach(pairs[1]!.local, { parser: P4 });
    const p2 = k0.attach(pairs[2]!.local, { parser: P4 });
    assert.deepEqual([p0.index, p1.index, p2.index], [0, 1, 2]);
    k1.unattach(pairs[1]!.local);
    const p3 = k0.attach(pairs[3]!.local, { parser: P4 });
    assert.equal(p3.index, 1);
    assert.deepEqual(k0.mux.psocks, [p0, p3, p2]);
    assert.deepEqual(k0.mux.stats().psocks.map((p) => p.index), [0, 1, 2]);
    k0.unattach(pairs[0]!.local);
    const again = k1.attach(pairs[1]!.local, { parser: P4 });
    assert.equal(again.index, 0);
    const table = k0.mux.toString();
    for (const n of [0, 1, 2]) assert.match(table, new RegExp(`^psock-${n} `, 'm'));
    assert.doesNotMatch(table, /^psock-3 /m);
  } finally {
    k1.close();
    k0.close();
  }
});
