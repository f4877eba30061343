/**
 * Diagnostics: `node:diagnostics_channel` channels and `NODE_DEBUG=kcm` logging at the
 * points of a multiplexor's life that matter when something goes wrong: creation and
 * destruction, attach (SIOCKCMATTACH), unattach (SIOCKCMUNATTACH) and psock errors.
 *
 * Both cost nothing when unused: the multiplexor checks `channel.hasSubscribers` and
 * {@link debugEnabled} before calling in here.
 *
 * ```ts
 * import diagnostics_channel from 'node:diagnostics_channel';
 * diagnostics_channel.subscribe('kcm:psock:error', ({ psock, error }) => log(psock.index, error.code));
 * ```
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { debuglog } from 'node:util';
import type * as net from 'node:net';
import type { KcmError } from './errors.js';
import type { Multiplexor } from './mux/multiplexor.js';
import type { Psock } from './mux/psock.js';

/** `kcm:mux:create` {@link MuxMessage}: a multiplexor was created (`socket(AF_KCM, …)`) [O-1]. */
export const muxCreateChannel = diagnosticsChannel.channel('kcm:mux:create');
/** `kcm:mux:destroy` {@link MuxMessage}: the last socket of a multiplexor closed; its psocks were unattached first [O-7]. */
export const muxDestroyChannel = diagnosticsChannel.channel('kcm:mux:destroy');
/** `kcm:psock:attach` {@link PsockMessage}: a transport was attached (SIOCKCMATTACH) [A-*]. */
export const psockAttachChannel = diagnosticsChannel.channel('kcm:psock:attach');
/** `kcm:psock:unattach` {@link PsockUnattachMessage}: a psock was unattached (SIOCKCMUNATTACH, or the last close) [U-*]. */
export const psockUnattachChannel = diagnosticsChannel.channel('kcm:psock:unattach');
/** `kcm:psock:error` {@link PsockErrorMessage}: a psock failed; published before its `'error'` event [E-*]. */
export const psockErrorChannel = diagnosticsChannel.channel('kcm:psock:error');

/** Names of the channels, for `diagnostics_channel.subscribe`. */
export const channelNames = {
  muxCreate: 'kcm:mux:create',
  muxDestroy: 'kcm:mux:destroy',
  psockAttach: 'kcm:psock:attach',
  psockUnattach: 'kcm:psock:unattach',
  psockError: 'kcm:psock:error',
} as const;

/** Message of `kcm:mux:create` and `kcm:mux:destroy`. */
export interface MuxMessage {
  mux: Multiplexor;
  /** A number naming the multiplexor in logs (`mux-<id>`), unique in this thread. */
  muxId: number;
}

/** Message of `kcm:psock:attach`. */
export interface PsockMessage extends MuxMessage {
  psock: Psock;
  transport: net.Socket;
}

/** Message of `kcm:psock:unattach`. */
export interface PsockUnattachMessage extends PsockMessage {
  /** It was reserved for transmit: counted in `psockUnattachRsvd`, its message restarts elsewhere [U-4]. */
  reserved: boolean;
}

/** Message of `kcm:psock:error`. */
export interface PsockErrorMessage extends PsockMessage {
  error: KcmError;
}

const log = debuglog('kcm');

/** True when `NODE_DEBUG` names `kcm` (read once, when the module loads). */
export const debugEnabled: boolean = log.enabled;

const ids = new WeakMap<Multiplexor, number>();
let nextId = 1;

/** The number naming `mux` in logs and channel messages. */
export function muxId(mux: Multiplexor): number {
  let id = ids.get(mux);
  if (id === undefined) {
    id = nextId++;
    ids.set(mux, id);
  }
  return id;
}

function endpoint(t: net.Socket): string {
  const local = t.localAddress === undefined ? '?' : `${t.localAddress}:${t.localPort}`;
  const remote = t.remoteAddress === undefined ? '?' : `${t.remoteAddress}:${t.remotePort}`;
  return t.connecting ? `${local} -> ${remote} (connecting)` : `${local} -> ${remote}`;
}

/** @internal Called by the multiplexor when a channel has subscribers or debugging is on. */
export function onMuxCreate(mux: Multiplexor): void {
  const id = muxId(mux);
  if (debugEnabled) log('mux-%d created', id);
  if (muxCreateChannel.hasSubscribers) muxCreateChannel.publish({ mux, muxId: id } satisfies MuxMessage);
}

/** @internal */
export function onMuxDestroy(mux: Multiplexor): void {
  const id = muxId(mux);
  if (debugEnabled) log('mux-%d destroyed', id);
  if (muxDestroyChannel.hasSubscribers) muxDestroyChannel.publish({ mux, muxId: id } satisfies MuxMessage);
}

/** @internal */
export function onPsockAttach(mux: Multiplexor, psock: Psock): void {
  const id = muxId(mux);
  if (debugEnabled) log('mux-%d psock-%d attached %s', id, psock.index, endpoint(psock.transport));
  if (psockAttachChannel.hasSubscribers) {
    psockAttachChannel.publish({ mux, muxId: id, psock, transport: psock.transport } satisfies PsockMessage);
  }
}

/** @internal */
export function onPsockUnattach(mux: Multiplexor, psock: Psock, reserved: boolean): void {
  const id = muxId(mux);
  if (debugEnabled) log('mux-%d psock-%d unattached%s', id, psock.index, reserved ? ' while reserved for transmit' : '');
  if (psockUnattachChannel.hasSubscribers) {
    psockUnattachChannel.publish({ mux, muxId: id, psock, transport: psock.transport, reserved } satisfies PsockUnattachMessage);
  }
}

/** @internal */
export function onPsockError(mux: Multiplexor, psock: Psock, error: KcmError): void {
  const id = muxId(mux);
  if (debugEnabled) log('mux-%d psock-%d error %s: %s', id, psock.index, error.code, error.message);
  if (psockErrorChannel.hasSubscribers) {
    psockErrorChannel.publish({ mux, muxId: id, psock, transport: psock.transport, error } satisfies PsockErrorMessage);
  }
}
