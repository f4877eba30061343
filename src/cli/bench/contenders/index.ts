/**
 * Every sender, receiver and pinger of the benchmark, by the name the peer processes
 * know them by. A new variant is one entry here and a row in a section (`../sections.ts`).
 */
import { lengthField, loadBpf } from '../../../index.js';
import { thriftObject } from '../thrift-object.js';
import type { Pinger, Receiver, Sender } from './contender.js';
import { discardReceiver, handPinger, handReceiver, handSender, naiveSender } from './hand.js';
import { kcmParts } from './kcm.js';
import { zeromqPinger, zeromqReceiver, zeromqSender } from './zeromq.js';

const kcm = kcmParts(() => lengthField({ size: 4, adjust: 4 }));
const kcmBpf = kcmParts(() => loadBpf(thriftObject()));

function prefixed<T>(prefix: string, parts: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [name, part] of Object.entries(parts)) out[`${prefix}-${name}`] = part;
  return out;
}

export const senders: Readonly<Record<string, Sender>> = {
  ...prefixed('kcm', kcm.senders),
  ...prefixed('kcm-bpf', kcmBpf.senders),
  hand: handSender,
  naive: naiveSender,
  zeromq: zeromqSender,
};

export const receivers: Readonly<Record<string, Receiver>> = {
  ...prefixed('kcm', kcm.receivers),
  ...prefixed('kcm-bpf', kcmBpf.receivers),
  hand: handReceiver,
  discard: discardReceiver,
  zeromq: zeromqReceiver,
};

export const pingers: Readonly<Record<string, Pinger>> = {
  kcm: kcm.pinger,
  'kcm-bpf': kcmBpf.pinger,
  net: handPinger,
  zeromq: zeromqPinger,
};
