/**
 * The wire between a socket's proxy in the multiplexor's thread and the socket adopted
 * in a worker: message kinds posted on their MessagePort, and the batch layouts.
 *
 * Messages cross in batches, one ArrayBuffer per burst, transferred (not cloned):
 *
 *     received batch (proxy -> worker)
 *     +---------+----------------+-------------------+------+
 *     | u32 n   | u32 end[0..n)  | u32 origin[0..n)  | data |
 *     +---------+----------------+-------------------+------+
 *     sent batch (worker -> proxy)
 *     +---------+----------------+-------------------+------------+------+
 *     | u32 n   | u32 end[0..n)  | u32 pin[0..n)     | u8 flag[n] | data |
 *     +---------+----------------+-------------------+------------+------+
 *
 * `end[i]` is the offset in `data` where message i ends (message 0 starts at 0).
 * `origin[i]` is the id of the psock message i was parsed from [K-2]; `pin[i]` the id of
 * the psock a sent message is pinned to, 0 for none [K-3] (ids start at 1). A sent
 * message whose flag is {@link FLAG_BURST_END} ends one transmit burst of the worker's
 * socket: the proxy writes it without MSG_BATCH, so burst boundaries stay as the worker
 * made them [T-8, T-13].
 */

/** proxy -> worker: a batch of received messages `{ t, buf }`. */
export const MSG_DATA = 0;
/** proxy -> worker: transmit bytes left the proxy's send queue `{ t, bytes }` (negative on a retry). */
export const MSG_CREDIT = 1;
/** worker -> proxy: a batch of messages to send `{ t, buf }`. */
export const MSG_SEND = 2;
/** worker -> proxy: messages fully read so far `{ t, consumed }`; sent when the worker's queue empties. */
export const MSG_ACK = 3;
/**
 * worker -> proxy: receive disabled [D-3] `{ t, consumed, keep, n }`: the worker hands
 * back `n` messages that follow the `keep` it still holds after its `consumed` ones.
 */
export const MSG_DISABLE = 4;
/** worker -> proxy: a batch that reached a disabled worker, handed back `{ t, consumed, keep, n }`. */
export const MSG_RETURN = 5;
/** worker -> proxy: receive enabled again [D-6] `{ t }`. */
export const MSG_ENABLE = 6;
/**
 * proxy -> worker: the psocks able to send changed `{ t, live, next }`: the ids of those
 * that can, and the next id the multiplexor will give, so the worker tells a done psock
 * (`EPIPE`) from an unknown one (`ENOENT`) at the call [K-5].
 */
export const MSG_PSOCKS = 7;
/** proxy -> worker: one psock was attached (`up`) or is done `{ t, id, up }` [K-5]. */
export const MSG_PSOCK = 8;

/** Flag of a sent message that ends a transmit burst. */
export const FLAG_BURST_END = 1;

/**
 * Slots of the Int32Array over the shared buffer. `GONE`: messages the worker has read
 * or started reading (int32, wrapping), stored before user code sees each one, so that
 * the proxy can tell, after the worker died, which messages it never saw.
 */
export const SHARED_GONE = 0;
/** Pinned messages of the socket the proxy dropped [K-6] (the socket's `txDropped`). */
export const SHARED_DROPPED = 1;
export const SHARED_SLOTS = 2;

/** A posted protocol message. */
export interface WireMessage {
  t: number;
  buf?: ArrayBuffer;
  bytes?: number;
  consumed?: number;
  keep?: number;
  n?: number;
  live?: number[];
  next?: number;
  id?: number;
  up?: boolean;
}

/** Packs received messages and the ids of their origins [K-2] into one transferable buffer. */
export function packReceived(messages: readonly Buffer[], origins: readonly number[], bytes: number): ArrayBuffer {
  const n = messages.length;
  const head = 4 * (2 * n + 1);
  const buf = newBuffer(head + bytes);
  const index = new Uint32Array(buf, 0, 2 * n + 1);
  const data = new Uint8Array(buf, head);
  index[0] = n;
  let pos = 0;
  for (let i = 0; i < n; i++) {
    const m = messages[i]!;
    data.set(m, pos);
    pos += m.length;
    index[i + 1] = pos;
    index[n + i + 1] = origins[i]!;
  }
  return buf;
}

/**
 * Calls `each` once per run of consecutive messages of a received batch with the same
 * origin [K-2], in order: `data` holds every message of the batch back to back, message
 * `i` ends at `ends[i]`, the run is messages `from` to `to - 1`, the first starting where
 * message `from - 1` ends (0 for the first). No view per message is made here.
 */
export function unpackReceived(
  buf: ArrayBuffer,
  each: (data: Buffer, ends: Uint32Array, from: number, to: number, origin: number) => void,
): number {
  const n = new Uint32Array(buf, 0, 1)[0]!;
  if (n === 0) return 0;
  const index = new Uint32Array(buf, 4, 2 * n);
  const head = 4 * (2 * n + 1);
  const data = Buffer.from(buf, head, index[n - 1]!);
  let from = 0;
  for (let i = 1; i <= n; i++) {
    if (i === n || index[n + i]! !== index[n + from]!) {
      each(data, index, from, i, index[n + from]!);
      from = i;
    }
  }
  return n;
}

/**
 * Packs messages to send (each an array of parts) with the psock ids they are pinned to
 * (0: none) and their burst flags into one transferable buffer.
 */
export function packSent(messages: readonly (readonly Buffer[])[], pins: readonly number[], flags: readonly number[], bytes: number): ArrayBuffer {
  const n = messages.length;
  const head = 4 * (2 * n + 1) + n;
  const buf = newBuffer(head + bytes);
  const index = new Uint32Array(buf, 0, 2 * n + 1);
  const flagView = new Uint8Array(buf, 4 * (2 * n + 1), n);
  const data = new Uint8Array(buf, head);
  index[0] = n;
  let pos = 0;
  for (let i = 0; i < n; i++) {
    for (const part of messages[i]!) {
      data.set(part, pos);
      pos += part.length;
    }
    index[i + 1] = pos;
    index[n + i + 1] = pins[i]!;
    flagView[i] = flags[i]!;
  }
  return buf;
}

/** Calls `each` with a view of every message of a sent batch, its pin (0: none) and its flag, in order. */
export function unpackSent(buf: ArrayBuffer, each: (message: Buffer, flag: number, pin: number) => void): void {
  const n = new Uint32Array(buf, 0, 1)[0]!;
  const index = new Uint32Array(buf, 4, 2 * n);
  const flagView = new Uint8Array(buf, 4 * (2 * n + 1), n);
  const head = 4 * (2 * n + 1) + n;
  let start = 0;
  for (let i = 0; i < n; i++) {
    const end = index[i]!;
    each(Buffer.from(buf, head + start, end - start), flagView[i]!, index[n + i]!);
    start = end;
  }
}

/** A fresh, unpooled ArrayBuffer (transferable), not zero-filled: every byte is written. */
function newBuffer(size: number): ArrayBuffer {
  return Buffer.allocUnsafeSlow(size).buffer as ArrayBuffer;
}
