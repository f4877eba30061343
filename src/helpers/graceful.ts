import type * as net from 'node:net';
import type { KcmSocket } from '../mux/kcm-socket.js';
import type { Multiplexor } from '../mux/multiplexor.js';
import { KcmError } from '../errors.js';
import { noop } from '../mux/noop.js';

/** An open KCM socket of `mux`, through which attach and unattach can be called. */
export function liveSocket(mux: Multiplexor, preferred?: KcmSocket): KcmSocket | undefined {
  if (preferred !== undefined && !preferred.closed) return preferred;
  if (!mux.alive) return undefined;
  for (const k of mux.sockets) if (!k.closed) return k;
  return undefined;
}

/**
 * SIOCKCMUNATTACH through any open socket of the multiplexor [E-4]. A transport no longer
 * attached (the multiplexor's last socket closed and unattached it [O-7]) is left alone.
 */
export function detach(mux: Multiplexor, transport: net.Socket, preferred?: KcmSocket): void {
  const sock = liveSocket(mux, preferred);
  if (sock === undefined) return;
  try {
    sock.unattach(transport);
  } catch (err) {
    if (!(err instanceof KcmError) || (err.code !== 'ENOENT' && err.code !== 'EBADF')) throw err;
  }
}

/**
 * Waits, at most `ms` milliseconds, until no socket of `mux` has a message queued or in
 * flight for transmit, or until no psock is left to carry them.
 */
export async function waitTxIdle(mux: Multiplexor, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 1_000_000; i++) {
    if (!mux.alive) return;
    const s = mux.stats();
    let busy = false;
    for (const k of s.sockets) if (k.txQueued > 0 || k.txPsock >= 0) busy = true;
    let usable = false;
    for (const p of s.psocks) {
      if (p.txStopped) continue;
      usable = true;
      if (p.txPinnedQueued > 0) busy = true; // [K-4] replies waiting for their connection
    }
    if (!busy || !usable || Date.now() >= deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Ends a detached transport: FIN after the bytes already written, unread bytes discarded
 * so the peer's FIN is seen, destroyed after `ms` milliseconds if the peer does not
 * close. A transport still connecting is destroyed at once. Resolves at 'close'.
 */
export function endTransport(transport: net.Socket, ms: number): Promise<void> {
  if (transport.destroyed && transport.closed) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(destroyTransport, ms, transport);
    transport.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    transport.on('error', noop);
    if (transport.connecting || transport.destroyed) {
      transport.destroy();
      return;
    }
    transport.resume();
    transport.end();
  });
}

function destroyTransport(transport: net.Socket): void {
  transport.destroy();
}

