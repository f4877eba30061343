/**
 * The parts a benchmark case is built from. A throughput case pairs a {@link Sender}
 * (in one process) with a {@link Receiver} (in another, see `../peer.ts`); a latency case
 * runs a {@link Pinger}'s client against its echo server. Every framed contender carries
 * the same wire format: a 4-byte big-endian payload length, then the payload.
 */
import type { Tally } from '../wire.js';

export interface ReceiveOptions {
  /** Payload bytes of each message. */
  size: number;
  connections: number;
}

export interface SendOptions extends ReceiveOptions {
  /** Where the receiver listens, as its `Endpoint.address`. */
  address: string;
  /** The sender stops by itself this long after it started (see `Deadline`). */
  durationMs: number;
}

export interface PingOptions {
  address: string;
  size: number;
  warmup: number;
  count: number;
}

/** A listening side: its address for the other process, and how to close it. */
export interface Endpoint {
  address: string;
  /** Bytes rather than messages are counted: messages = bytes / frame size. */
  bytesOnly?: boolean;
  close(): Promise<void>;
}

/** A running sender. */
export interface Running {
  stop(): Promise<void>;
}

/** Accepts connections and delivers what arrives to `tally`. */
export interface Receiver {
  receive(o: ReceiveOptions, tally: Tally): Promise<Endpoint>;
}

/** Connects and sends frames as fast as it can until stopped. */
export interface Sender {
  send(o: SendOptions): Promise<Running>;
}

/** A 1-message-in-flight round trip: an echo server and a client that times it. */
export interface Pinger {
  echo(o: { size: number }): Promise<Endpoint>;
  /** Round-trip times in microseconds, `count` of them after `warmup` unmeasured ones. */
  ping(o: PingOptions): Promise<number[]>;
}
