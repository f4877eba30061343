import type * as net from 'node:net';

/**
 * Why a socket cannot be attached, or undefined when it can: it must be
 * a TCP stream (a TLS socket over TCP counts), connected or connecting, neither
 * destroyed nor ended.
 *
 * A connected socket is TCP when it has an IP address (`socket.address()`: family IPv4
 * or IPv6): a `net.Socket` is either TCP or a local (UNIX-domain) stream, a TLS socket
 * reports the address of what it runs over, and a TLS socket over a JS stream has none.
 * A socket still connecting has no address yet: it is accepted and checked again
 * with {@link notTcpOnceConnected} when it connects.
 */
export function isTcpStream(transport: net.Socket): string | undefined {
  if (transport.destroyed) return 'the transport is destroyed';
  if (transport.writableEnded || transport.readableEnded) return 'the transport has ended';
  // Messages are bytes: a transport that decodes what it reads into strings cannot carry them.
  if (transport.readableEncoding !== null) return `the transport decodes its data as '${transport.readableEncoding}' (setEncoding): messages need bytes`;
  if (transport.connecting) return undefined;
  return notTcpOnceConnected(transport);
}

/**
 * Why a socket that is no longer connecting is not a connected TCP stream, or undefined
 * when it is one (the check of {@link isTcpStream} on a socket that has connected).
 */
export function notTcpOnceConnected(transport: net.Socket): string | undefined {
  if (ipFamily(transport) !== undefined) return undefined;
  const tls = (transport as { encrypted?: boolean }).encrypted === true;
  // Never connected: no I/O has started on it (`pending`); a dead TCP socket keeps its address.
  if (transport.pending) return tls ? 'the TLS transport is not connected' : 'the transport is not connected';
  return tls
    ? 'the TLS transport does not run over TCP (a UNIX-domain or JS stream)'
    : 'the transport is a local (UNIX domain) stream, not TCP';
}

/** The socket's local address family ('IPv4' or 'IPv6'), undefined when it has none. */
function ipFamily(transport: net.Socket): string | undefined {
  let family: unknown;
  try {
    family = (transport.address() as Partial<net.AddressInfo>).family;
  } catch {
    return undefined;
  }
  return family === 'IPv4' || family === 'IPv6' ? family : undefined;
}
