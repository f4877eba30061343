/**
 * A parser is user code that runs in the middle of a receive burst [B-7]. Calls it makes
 * back into kcm (unattach, close, recv-disable) must leave the multiplexor consistent.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { KcmSocket } from '../../src/index.js';
import type { Parser } from '../../src/parsers/parser.js';
import { P4, closeAll, tcpPair, tcpPairs, waitFor } from '../helpers/loopback.js';
import { numberOf, numberedRun, receiveN, turns } from '../helpers/mux.js';

after(closeAll);

test('[U-2][B-7] a parser that unattaches its own transport mid-burst: the burst stops, the rest stays readable', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  try {
    let calls = 0;
    const parser: Parser = (d) => {
      if (++calls === 3) k.unattach(local);
      return P4(d);
    };
    k.attach(local, { parser });
    remote.write(numberedRun(0, 5));
    await waitFor(() => k.mux.psocks.length === 0, 5000, 'the unattach');
    await turns();
    // Two whole messages were framed before the third call unattached the transport.
    const got: number[] = [];
    for (let m = k.tryReceive(); m !== undefined; m = k.tryReceive()) got.push(numberOf(m));
    assert.deepEqual(got, [0, 1]);
    const s = k.mux.stats();
    assert.equal(s.psockUnattach, 1);
    assert.equal(s.rxMsgs, 2);
    assert.equal(local.destroyed, false);
  } finally {
    k.close();
  }
});

test('[O-6][O-7][B-7] a parser that closes the last socket mid-burst: the multiplexor is destroyed cleanly', async () => {
  const { local, remote } = await tcpPair();
  const k = KcmSocket.create();
  let calls = 0;
  const parser: Parser = (d) => {
    if (++calls === 2) k.close();
    return P4(d);
  };
  k.attach(local, { parser });
  remote.write(numberedRun(0, 5));
  await waitFor(() => k.closed, 5000, 'the close');
  await turns();
  assert.equal(k.mux.alive, false);
  assert.deepEqual(k.mux.psocks, []);
  assert.equal(calls, 2, 'the parser is not called after the psock stopped');
  assert.equal(local.destroyed, false, 'the transport is left open [O-7]');
});

test('[D-3][B-7] a parser that disables the socket its burst is bound to: the rest of the burst goes to a sibling', async () => {
  const [t] = await tcpPairs(1);
  const k0 = KcmSocket.create();
  const k1 = k0.clone();
  try {
    let calls = 0;
    const parser: Parser = (d) => {
      if (++calls === 3) {
        // The burst is bound to the head of the receive waiters, k0.
        k0.setRecvDisable(true);
      }
      return P4(d);
    };
    k0.attach(t!.local, { parser });
    t!.remote.write(numberedRun(0, 5));
    const got = (await receiveN(k1, 5)).map(numberOf);
    assert.deepEqual(got, [0, 1, 2, 3, 4], 'every message once, in order, on the sibling');
    assert.equal(k0.tryReceive(), undefined);
    assert.equal(k0.mux.stats().rxMsgs, 5);
  } finally {
    k0.close();
    k1.close();
  }
});
