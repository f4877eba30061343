/**
 * The sections of `kcm bench`. A throughput section is a list of rows, each a sender
 * paired with a receiver (names from `contenders/index.ts`), run at each size and
 * connection count and compared with its baseline row; a latency section is a list of
 * pingers. Adding a section is one entry in {@link sections}; adding a variant is one
 * sender, receiver or pinger in the registry and a row here.
 */
import { formatSize } from './format.js';
import type { KcmReceiveMode, KcmSendLoop } from './contenders/kcm.js';

/** What the sections read from the command line. */
export interface SectionOptions {
  /** The end-to-end contenders asked for. */
  contenders: readonly string[];
  kcmSend: KcmSendLoop;
  kcmReceive: KcmReceiveMode;
}

export interface Row {
  /** The name printed in the table and used in ratios and goals. */
  name: string;
  /** What the row runs, in words for the legend. */
  what: string;
  sender: string;
  receiver: string;
}

export interface PingRow {
  name: string;
  what: string;
  pinger: string;
}

/** A goal of the project over one section's medians; `--goals` prints them. */
export interface GoalSpec {
  /** The row judged, the row it is judged against, and how. */
  row: string;
  against: string;
  /** msgs/s or MB/s ratio (throughput) at least `min`; p50 ratio (latency) at most `max`. */
  measure: 'msgs/s' | 'MB/s' | 'p50';
  min?: number;
  max?: number;
  /** Sizes the goal applies to (all when absent). */
  sizes?: readonly number[];
}

interface SectionBase {
  name: string;
  /** The heading line. */
  title: string;
  /** The row every ratio is taken against. */
  baseline: string;
  goals: readonly GoalSpec[];
}

export interface ThroughputSection extends SectionBase {
  kind: 'throughput';
  sizes: readonly number[];
  connections: readonly number[];
  /** How a row's rate is counted, for the legend. */
  counted: string;
  rows(o: SectionOptions): Row[];
  /** A second ratio column, against this row (the bpf section: against lengthField). */
  alsoVs?: string;
}

export interface LatencySection extends SectionBase {
  kind: 'latency';
  size: number;
  rows(o: SectionOptions): PingRow[];
}

export type Section = ThroughputSection | LatencySection;

/** The baseline of every section: the hand-written framer over `net`. */
export const NET = 'net';
const NET_WHAT = 'hand-written 4-byte length framing over node:net: the sender copies frames into 64 KiB buffers, one write() each, waits for drain; the receiver hands out subarrays of each chunk (the baseline)';

const kcmSendWhat: Record<KcmSendLoop, string> = {
  many: 'for (;;) await sock.sendMany(batch)',
  'many-nocopy': 'for (;;) await sock.sendMany(batch, { copy: false })',
  'many-yield': 'for (;;) { await sock.sendMany(batch); await setImmediate() }',
  send: 'for (;;) await sock.send(frame)',
  'try-send': 'for (;;) if (!sock.trySend(frame)) await sock.send(frame)',
};
const kcmReceiveWhat: Record<KcmReceiveMode, string> = {
  message: "sock.on('message')",
  many: 'for (;;) await sock.receiveMany()',
};

const SMALL = [16, 256] as const;
const LARGE = [4096, 65536] as const;

export const sections: readonly Section[] = [
  {
    kind: 'throughput',
    name: 'e2e',
    title: 'end to end: sender and receiver in separate processes, every message delivered to the receiving application one by one',
    baseline: NET,
    sizes: [16, 256, 4096, 65536],
    connections: [1, 4],
    counted: 'messages delivered to the receiving application',
    rows(o) {
      const all: Record<string, Row> = {
        kcm: {
          name: 'kcm',
          what: `kcm, lengthField parser; one KCM socket per connection sending with ${kcmSendWhat[o.kcmSend]}; receiver: one KCM socket, ${kcmReceiveWhat[o.kcmReceive]}`,
          sender: `kcm-${o.kcmSend}`,
          receiver: `kcm-${o.kcmReceive}`,
        },
        'kcm-bpf': {
          name: 'kcm-bpf',
          what: 'kcm as above with the Thrift framing as a compiled eBPF object instead of lengthField',
          sender: `kcm-bpf-${o.kcmSend}`,
          receiver: `kcm-bpf-${o.kcmReceive}`,
        },
        net: { name: NET, what: NET_WHAT, sender: 'hand', receiver: 'hand' },
        'net-naive': { name: 'net-naive', what: 'the same receiver; the sender calls write() once per frame', sender: 'naive', receiver: 'hand' },
        zeromq: { name: 'zeromq', what: 'zeromq.js PUSH/PULL, one PUSH socket per connection, await push.send(payload)', sender: 'zeromq', receiver: 'zeromq' },
      };
      return o.contenders.filter((c) => all[c] !== undefined).map((c) => all[c]!);
    },
    goals: [
      { row: 'kcm', against: NET, measure: 'msgs/s', min: 0.8, sizes: SMALL },
      { row: 'kcm', against: NET, measure: 'MB/s', min: 0.9, sizes: LARGE },
      { row: 'kcm', against: 'zeromq', measure: 'msgs/s', min: 10, sizes: SMALL },
      { row: 'kcm-bpf', against: 'kcm', measure: 'msgs/s', min: 0.95 },
    ],
  },
  {
    kind: 'latency',
    name: 'ping',
    title: 'ping-pong: one 64-byte message in flight, echoed back by the other process',
    baseline: NET,
    size: 64,
    rows(o) {
      const all: Record<string, PingRow> = {
        kcm: { name: 'kcm', what: 'await sock.send(frame) and sock.receive(); echo: send() from the message listener', pinger: 'kcm' },
        'kcm-bpf': { name: 'kcm-bpf', what: 'kcm as above with the eBPF Thrift parser', pinger: 'kcm-bpf' },
        net: { name: NET, what: 'hand-written framing over node:net: write() and a subarray reader', pinger: 'net' },
        zeromq: { name: 'zeromq', what: 'zeromq.js REQ/REP', pinger: 'zeromq' },
      };
      return o.contenders.filter((c) => all[c] !== undefined).map((c) => all[c]!);
    },
    goals: [{ row: 'kcm', against: NET, measure: 'p50', max: 1.1 }],
  },
  {
    kind: 'throughput',
    name: 'send',
    title: 'send side alone: what each sender writes to a peer that discards the bytes',
    baseline: NET,
    sizes: SMALL,
    connections: [1],
    counted: 'bytes that reached the discarding peer / frame size',
    rows: () => [
      ...(['many', 'many-nocopy', 'many-yield', 'send', 'try-send'] as const).map((loop) => ({
        name: `kcm ${loop}`,
        what: `${kcmSendWhat[loop]} (lengthField)`,
        sender: `kcm-${loop}`,
        receiver: 'discard',
      })),
      { name: NET, what: 'hand-written sender: copies frames into 64 KiB buffers, one write() each, waits for drain, lets the event loop run every 256 KiB', sender: 'hand', receiver: 'discard' },
    ],
    goals: (['many', 'many-yield', 'send', 'try-send'] as const).map((loop) => ({ row: `kcm ${loop}`, against: NET, measure: 'msgs/s' as const, min: 0.8, sizes: [16] })),
  },
  {
    kind: 'throughput',
    name: 'receive',
    title: 'receive side alone: each receiver fed by the hand-written batching sender',
    baseline: NET,
    sizes: SMALL,
    connections: [1],
    counted: 'messages delivered to the receiving application',
    rows: () => [
      { name: 'kcm message', what: `${kcmReceiveWhat.message} (lengthField)`, sender: 'hand', receiver: 'kcm-message' },
      { name: 'kcm many', what: `${kcmReceiveWhat.many} (lengthField)`, sender: 'hand', receiver: 'kcm-many' },
      { name: NET, what: 'hand-written reader: subarrays of each chunk to a callback', sender: 'hand', receiver: 'hand' },
    ],
    goals: [
      { row: 'kcm message', against: NET, measure: 'msgs/s', min: 0.8, sizes: [16] },
      { row: 'kcm many', against: NET, measure: 'msgs/s', min: 0.8, sizes: [16] },
    ],
  },
  {
    kind: 'throughput',
    name: 'bpf',
    title: 'eBPF parser end to end: the Thrift framing compiled from C against lengthField, kcm on both sides',
    baseline: NET,
    alsoVs: 'kcm',
    sizes: [16, 256, 4096],
    connections: [1],
    counted: 'messages delivered to the receiving application',
    rows: () => [
      { name: 'kcm', what: `kcm, lengthField({ size: 4, adjust: 4 }); ${kcmSendWhat.many}; ${kcmReceiveWhat.message}`, sender: 'kcm-many', receiver: 'kcm-message' },
      { name: 'kcm-bpf', what: 'the same with loadBpf(thrift.o): return load_word(skb, 0) + 4', sender: 'kcm-bpf-many', receiver: 'kcm-bpf-message' },
      { name: NET, what: NET_WHAT, sender: 'hand', receiver: 'hand' },
    ],
    goals: [{ row: 'kcm-bpf', against: 'kcm', measure: 'msgs/s', min: 0.95 }],
  },
];

/** The sections `kcm bench` runs when none is named. */
export const defaultSections = ['e2e', 'ping'] as const;

/** `16 B x1`. */
export function caseLabel(size: number, connections: number): string {
  return `${formatSize(size)} x${connections}`;
}
