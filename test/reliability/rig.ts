/**
 * A multiplexor under test with bystanders: two KCM sockets and `good` transports whose
 * peers stream frames in, while the sockets stream frames out. A fault is then injected
 * on one more transport (the suspect); {@link Rig.verify} checks that the bystanders were
 * not disturbed: every frame sent in either direction on a good transport arrived once,
 * in order per connection and per socket, and no good psock reported an error.
 */
import assert from 'node:assert/strict';
import type * as net from 'node:net';
import { KcmSocket } from '../../src/index.js';
import type { Psock } from '../../src/mux/psock.js';
import type { KcmError } from '../../src/errors.js';
import type { Parser } from '../../src/parsers/parser.js';
import { FrameReader, P4, frame, payload, tcpPairs, waitFor, type TcpPair } from '../helpers/loopback.js';

export interface Good {
  pair: TcpPair;
  psock: Psock;
  errors: KcmError[];
  /** Frames the peer received from the multiplexor. */
  reader: FrameReader;
  /** Frames the peer wrote so far. */
  sent: number;
}

export interface Suspect {
  pair: TcpPair;
  psock: Psock;
  errors: KcmError[];
}

const PUMP_MS = 4;
const OUT_PER_ROUND = 2;
const IN_PER_ROUND = 3;

export class Rig {
  readonly sockets: KcmSocket[];
  readonly good: Good[] = [];
  /** Per socket, the payloads received, in order. */
  readonly received: string[][];
  /** Per socket, messages sent. */
  readonly sentOut: number[];
  private timer: NodeJS.Timeout | undefined;
  private rounds = 0;

  private constructor(sockets: KcmSocket[]) {
    this.sockets = sockets;
    this.received = sockets.map(() => []);
    this.sentOut = sockets.map(() => 0);
    sockets.forEach((k, i) => k.on('message', (m: Buffer) => this.received[i]!.push(payload(m))));
  }

  /** Two sockets of one multiplexor and `goodCount` transports with healthy peers. */
  static async create(goodCount = 2, options: { receiveBufferSize?: number; sendBufferSize?: number } = {}): Promise<Rig> {
    const k0 = KcmSocket.create(options);
    const rig = new Rig([k0, k0.clone()]);
    for (const pair of await tcpPairs(goodCount)) {
      const psock = k0.attach(pair.local, { parser: P4 });
      const errors: KcmError[] = [];
      psock.on('error', (e: KcmError) => errors.push(e));
      rig.good.push({ pair, psock, errors, reader: new FrameReader(pair.remote), sent: 0 });
    }
    return rig;
  }

  /** Opens one more transport for the fault, attached with `parser` (default P4). */
  async suspect(options: { parser?: Parser; maxMessageSize?: number; assemblyTimeout?: number } = {}): Promise<Suspect> {
    const [pair] = await tcpPairs(1);
    const psock = this.sockets[0]!.attach(pair!.local, { parser: P4, ...options });
    const errors: KcmError[] = [];
    psock.on('error', (e: KcmError) => errors.push(e));
    return { pair: pair!, psock, errors };
  }

  /** Starts the bystander traffic: a few frames each way every few milliseconds. */
  start(): void {
    this.timer = setInterval(() => this.round(), PUMP_MS);
  }

  private round(): void {
    this.rounds++;
    for (const [c, g] of this.good.entries()) {
      const out: Buffer[] = [];
      for (let i = 0; i < IN_PER_ROUND; i++) out.push(frame(`g${c}:${g.sent++}`));
      g.pair.remote.write(Buffer.concat(out));
    }
    this.sockets.forEach((k, s) => {
      for (let i = 0; i < OUT_PER_ROUND; i++) void k.send(frame(`o${s}:${this.sentOut[s]!++}`));
    });
  }

  /** Keeps the traffic running for at least `rounds` more rounds (bounded by `ms`). */
  async runRounds(rounds: number, ms = 20000): Promise<void> {
    const target = this.rounds + rounds;
    await waitFor(() => this.rounds >= target, ms, `${rounds} rounds of bystander traffic`);
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Stops the traffic and checks the bystanders. `lostOut` names the transports whose
   * peers may have swallowed messages: frames handed to those transports count as
   * accounted for (a message written to a transport that then failed can be lost).
   */
  async verify(suspects: Suspect[] = [], suspectReaders: FrameReader[] = []): Promise<void> {
    this.stop();
    // Inbound: every frame every good peer wrote reaches exactly one socket, in order per connection.
    const expectedIn = this.good.reduce((n, g) => n + g.sent, 0);
    const gotIn = (): number => this.received.reduce((n, r) => n + r.length, 0);
    await waitFor(() => gotIn() >= expectedIn, 20000, `${expectedIn} inbound bystander messages (got ${gotIn()})`);
    const seen = new Set<string>();
    for (const [s, list] of this.received.entries()) {
      const last = new Map<string, number>();
      for (const p of list) {
        if (!p.startsWith('g')) continue; // the suspect's own frames, checked by the test
        assert.ok(!seen.has(p), `inbound ${p} delivered twice`);
        seen.add(p);
        const [conn, seq] = p.split(':') as [string, string];
        const prev = last.get(conn) ?? -1;
        assert.ok(Number(seq) > prev, `socket ${s}: ${p} after ${conn}:${prev} (order per connection)`);
        last.set(conn, Number(seq));
      }
    }
    for (const [c, g] of this.good.entries()) {
      for (let i = 0; i < g.sent; i++) assert.ok(seen.has(`g${c}:${i}`), `inbound g${c}:${i} missing`);
    }
    // Outbound: every message either reached a good peer or was handed to a suspect transport.
    const handedToSuspects = (): number => suspects.reduce((n, s) => n + s.psock.stats().txMsgs, 0);
    const totalOut = this.sentOut.reduce((a, b) => a + b, 0);
    const gotOut = (): number => this.good.reduce((n, g) => n + g.reader.frames.length, 0);
    await waitFor(() => gotOut() + handedToSuspects() >= totalOut, 20000,
      `${totalOut} outbound bystander messages (got ${gotOut()} + ${handedToSuspects()} on suspects)`);
    const out = new Set<string>();
    for (const g of this.good) {
      const last = new Map<string, number>();
      for (const p of g.reader.payloads()) {
        assert.ok(!out.has(p), `outbound ${p} arrived twice`);
        out.add(p);
        const [src, seq] = p.split(':') as [string, string];
        const prev = last.get(src) ?? -1;
        assert.ok(Number(seq) > prev, `outbound ${p} after ${src}:${prev} on one connection`);
        last.set(src, Number(seq));
      }
    }
    for (const r of suspectReaders) for (const p of r.payloads()) assert.ok(!out.has(p), `outbound ${p} arrived on a good peer and on the suspect`);
    // No bystander psock was touched.
    for (const [c, g] of this.good.entries()) {
      assert.deepEqual(g.errors, [], `good psock ${c} reported no error`);
      const st = g.psock.stats();
      assert.equal(st.rxStopped, false, `good psock ${c} still parsing`);
      assert.equal(st.txStopped, false, `good psock ${c} still in transmit rotation`);
    }
  }

  /** Closes the sockets (the multiplexor unattaches every psock). */
  close(): void {
    this.stop();
    for (const k of this.sockets) k.close();
  }
}

/** The local transport of a pair, for `resetAndDestroy` and friends. */
export function localOf(s: Suspect): net.Socket {
  return s.pair.local;
}

/** The first error of a suspect, waiting for it (bounded). */
export async function firstError(s: Suspect, ms = 10000): Promise<KcmError> {
  await waitFor(() => s.errors.length > 0, ms, `an error on psock-${s.psock.index}`);
  return s.errors[0]!;
}
