// Compiled by test/public-types.test.ts with `tsc --noEmit` against the shipped
// declarations (dist/src/**/*.d.ts, reached through the package's own name). Every
// `@ts-expect-error` line must be a type error, every other line must compile.
import type * as net from 'node:net';
import {
  KcmError, KcmSocket, lengthField, listen, type ErrnoName, type KcmConnector, type KcmServer, type KcmWorkerPort,
  type Multiplexor, type Psock,
} from 'kcm';

declare const sock: KcmSocket;
declare const psock: Psock;
declare const mux: Multiplexor;
declare const connector: KcmConnector;
declare const server: KcmServer;
declare const transport: net.Socket;
declare const err: KcmError;

// ---- typed events: KcmSocket
sock.on('message', (m: Buffer) => void m.length);
sock.once('message', (m) => void m.readUInt8(0));
sock.on('close', () => {});
sock.off('message', (m: Buffer) => void m);
// @ts-expect-error a misspelt event name
sock.on('mesage', (m: Buffer) => void m);
// @ts-expect-error a message is a Buffer, not a string
sock.on('message', (m: string) => void m);
// @ts-expect-error 'close' has no arguments
sock.on('close', (x: number) => void x);

// ---- typed events: Psock, Multiplexor, KcmConnector, KcmServer
psock.on('error', (e: KcmError) => void e.errno);
// @ts-expect-error a misspelt event name
psock.on('eror', (e: KcmError) => void e);
mux.on('psockerror', (e, p) => void [e.code, p.index]);
// @ts-expect-error a misspelt event name
mux.on('psock-error', (e: KcmError) => void e);
// @ts-expect-error the second argument is a Psock
mux.on('psockerror', (e: KcmError, p: string) => void [e, p]);
connector.on('reconnecting', (e) => void [e.delay, e.attempt, e.slot]);
connector.on('error', (e, slot) => void [e.code, slot + 1]);
// @ts-expect-error a misspelt event name
connector.on('reconect', () => {});
server.on('attach', (e) => void e.psock.index);
server.on('disconnect', (e) => void e.error.code);
// @ts-expect-error an attach event carries no error
server.on('attach', (e) => void e.error);

// ---- read-only members
const index: number = sock.index;
const closed: boolean = sock.closed;
void [index, closed];
// @ts-expect-error index is read-only
sock.index = 3;
// @ts-expect-error closed is read-only
sock.closed = true;

// ---- no internals in the shipped types
// @ts-expect-error internal
void sock.rx;
// @ts-expect-error internal
void sock.tx;
// @ts-expect-error internal
void sock.endpoint;
// @ts-expect-error internal
void sock.rxFlush;
// @ts-expect-error internal
void mux.rxWaiters;
// @ts-expect-error internal
void mux.enter;
// @ts-expect-error internal
void psock.txKcm;

// ---- KcmError.code is an errno name
const code: ErrnoName = err.code;
void code;
if (err.code === 'EMSGSIZE') void err.errno;
// @ts-expect-error not an errno name kcm reports
if (err.code === 'ENOTANERRNO') void err;
new KcmError('EPIPE', 'x');
// @ts-expect-error not an errno name
new KcmError('EWHATEVER');

// ---- KcmWorkerPort is exported; cloneForWorker / adopt keep their signatures
const port: KcmWorkerPort = sock.cloneForWorker();
const adopted: KcmSocket = KcmSocket.adopt(port);
void adopted;
// @ts-expect-error adopt takes a port
KcmSocket.adopt('port');

// ---- the rest of the contract's shapes
const created: KcmSocket = KcmSocket.create({ type: 'seqpacket', sendBufferSize: 1, receiveBufferSize: 1 });
// @ts-expect-error an unknown socket type
KcmSocket.create({ type: 'stream' });
const p: Psock = created.attach(transport, { parser: lengthField({ size: 4 }), maxMessageSize: 1024 });
void p;
// @ts-expect-error a parser is required
created.attach(transport, {});
void created.send(Buffer.alloc(1), { eor: false, batch: true });
void created.send([Buffer.alloc(1), new Uint8Array(2)]);
// @ts-expect-error a string is not a message
void created.send('hello');
const many: Promise<Buffer[]> = created.receiveMany(8);
void many;
const c: KcmConnector = created.connect({ port: 1, parser: lengthField() });
void c;
const s: Promise<KcmServer> = listen({ parser: lengthField() });
void s;

// ---- replies to the origin [K-1 … K-6]
const pid: number = psock.id;
void pid;
sock.on('message', (m, origin) => void sock.send(m, { psock: origin }));
sock.on('message', (m: Buffer, origin: { readonly id: number }) => void [m, origin.id]);
void sock.receiveFrom().then(({ message, origin }) => sock.trySend(message, { psock: origin }));
void sock.sendMany([Buffer.alloc(4)], { psock: { id: 1 } });
void sock.send(Buffer.alloc(4), { psock });
const dropped: number = sock.stats().txDropped + mux.stats().txDropped + psock.stats().txDropped;
void dropped;
// @ts-expect-error a psock reference has a numeric id
void sock.send(Buffer.alloc(4), { psock: { id: '1' } });
// @ts-expect-error psock.id is read-only
psock.id = 2;
