import type * as net from 'node:net';

interface HandleOwner {
  _handle?: { constructor?: { name?: string }; _parent?: { constructor?: { name?: string } } } | null;
  encrypted?: boolean;
  connecting?: boolean;
}

/**
 * Why a socket cannot be attached, or undefined when it can: it must be
 * a TCP stream (a TLS socket over TCP counts), connected or connecting, neither
 * destroyed nor ended.
 */
export function isTcpStream(transport: net.Socket): string | undefined {
  if (transport.destroyed) return 'the transport is destroyed';
  if (transport.writableEnded || transport.readableEnded) return 'the transport has ended';
  // Messages are bytes: a transport that decodes what it reads into strings cannot carry them.
  if (transport.readableEncoding !== null) return `the transport decodes its data as '${transport.readableEncoding}' (setEncoding): messages need bytes`;
  const s = transport as unknown as HandleOwner;
  const kind = s._handle?.constructor?.name;
  if (s.encrypted === true) {
    // TLS runs over the handle its TLSWrap wraps: TCP, or a UNIX-domain pipe or a JS stream.
    const under = s._handle?._parent?.constructor?.name;
    if (under !== undefined && under !== 'TCP') return `the TLS transport does not run over TCP (${under})`;
    return kind === undefined && !transport.connecting ? 'the TLS transport is not connected' : undefined;
  }
  if (kind === undefined) return transport.connecting ? undefined : 'the transport is not connected';
  if (kind === 'Pipe') return 'the transport is a local (UNIX domain) stream, not TCP';
  if (kind !== 'TCP') return `the transport is not a TCP stream (${kind})`;
  return undefined;
}
