/**
 * `kcm demo`: an echo service on 127.0.0.1 with independent clients, each its own
 * multiplexor, with a live rate line and, at the end, the `/proc/net/kcm` table of every
 * multiplexor and a check of every echo.
 *
 *   client mux 1: M KCM sockets ── M TCP connections ─┐
 *   client mux 2: M KCM sockets ── M TCP connections ─┼─> server mux: N KCM sockets (echo to the origin)
 *   ...                                               ─┘
 *
 * Each message is `[u32 length of the rest][u32 sequence number][pattern bytes]`; the
 * pattern starts at an offset that depends on the sequence number, so a message delivered
 * to the wrong place, cut, or spliced with another one fails the check. Sequence numbers
 * are unique over all clients, so an echo that reaches another client than its sender's
 * is seen too: the server replies to the origin of each message [K-2, K-3].
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { KcmSocket, formatKcmTable, lengthField, loadBpf, type Parser, type Psock, type PsockRef } from '../index.js';
import { parseArgs, UsageError, type OptionSpec } from './args.js';

export const demoUsage = 'usage: kcm demo [--sockets N] [--clients C] [--connections M] [--size BYTES] [--seconds S] [--parser length|FILE.o] [--workers] [--window N]';

const help = `${demoUsage}

Runs an echo service on 127.0.0.1: C independent clients, each a multiplexor with M TCP
connections, send to a server multiplexor with N KCM sockets, which echoes every message
back to the connection it came from (its origin). Prints the message rate while it runs,
then the /proc/net/kcm table of every multiplexor and checks that every echo came back
intact to the client that sent it (sequence numbers and content).

options:
  --sockets N        server KCM sockets (default 4)
  --clients C        independent client multiplexors (default 2)
  --connections M    TCP connections (and KCM sockets) per client (default 2)
  --size BYTES       message size on the wire, 4-byte length header included
                     (default 256, at least ${8}; 4k, 64k, 1m accepted)
  --seconds S        how long to send (default 5)
  --parser P         'length' (4-byte big-endian length of the rest, the default), or an
                     eBPF object file (.o) loaded with loadBpf that frames the same way
  --workers          put the server sockets in worker threads (cloneForWorker/adopt)
  --window N         messages in flight at most, over all clients (default 1024; fewer
                     for large sizes)

exits 0 when every echo came back intact, 1 otherwise, 2 on a usage error`;

const spec: Record<string, OptionSpec> = {
  sockets: { type: 'int', min: 1, max: 256 },
  connections: { type: 'int', min: 1, max: 256 },
  clients: { type: 'int', min: 1, max: 64 },
  size: { type: 'int', min: 8, max: 8 * 1024 * 1024 },
  seconds: { type: 'number', min: 0.1, max: 86400 },
  parser: { type: 'string' },
  workers: { type: 'boolean' },
  window: { type: 'int', min: 1, max: 1 << 20 },
};

/** Bytes of the header: the length field and the sequence number. */
const HEAD = 8;
/** Pattern offsets cycle over a prime, so neighbouring messages differ. */
const OFFSETS = 251;
/** Echoes still missing this long after the last send count as lost. */
const DRAIN_MS = 5000;
/** Messages in one sendMany burst. */
const BATCH = 64;

interface DemoOptions {
  sockets: number;
  clients: number;
  connections: number;
  size: number;
  seconds: number;
  parser: string;
  workers: boolean;
  window: number;
}

/** Runs `kcm demo`; resolves to the exit status. Throws {@link UsageError} on argument mistakes. */
export async function demoCommand(argv: string[]): Promise<number> {
  const v = parseArgs(argv, spec);
  if (v.help === true) {
    process.stdout.write(`${help}\n`);
    return 0;
  }
  const size = (v.size as number | undefined) ?? 256;
  const opts: DemoOptions = {
    sockets: (v.sockets as number | undefined) ?? 4,
    clients: (v.clients as number | undefined) ?? 2,
    connections: (v.connections as number | undefined) ?? 2,
    size,
    seconds: (v.seconds as number | undefined) ?? 5,
    parser: (v.parser as string | undefined) ?? 'length',
    workers: (v.workers as boolean | undefined) ?? false,
    window: (v.window as number | undefined) ?? Math.max(1, Math.min(1024, Math.floor((16 * 1024 * 1024) / size))),
  };

  let parser: Parser;
  if (opts.parser === 'length') {
    parser = lengthField({ size: 4, adjust: 4 });
  } else {
    try {
      parser = loadBpf(opts.parser);
    } catch (err) {
      process.stderr.write(`kcm demo: cannot load the parser '${opts.parser}': ${describe(err)}\n`);
      return 1;
    }
  }
  return new Demo(opts, parser).run();
}

class Demo {
  private readonly pattern: Buffer;
  /** Per client: the sequence numbers it sent whose echo has not come back. */
  private readonly outstanding: Set<number>[];
  private inFlight = 0;
  private nextSeq = 0;
  private echoed = 0;
  private echoedBytes = 0;
  private corrupt = 0;
  private duplicates = 0;
  /** Echoes that reached another client than the one that sent them. */
  private misrouted = 0;
  private errors = 0;
  private readonly errorNotes: string[] = [];
  private sending = true;
  private pumpScheduled = false;
  private next = 0;
  private server: net.Server | undefined;
  private serverSock: KcmSocket | undefined;
  private readonly serverSocks: KcmSocket[] = [];
  /** Per client, its KCM sockets (one multiplexor per client). */
  private readonly clientSocks: KcmSocket[][] = [];
  private readonly nextSock: number[] = [];
  private readonly transports: net.Socket[] = [];
  private readonly workers: { terminate(): Promise<number> }[] = [];
  private drained: (() => void) | undefined;

  constructor(private readonly o: DemoOptions, private readonly parser: Parser) {
    this.pattern = Buffer.allocUnsafe(o.size - HEAD + OFFSETS);
    for (let i = 0; i < this.pattern.length; i++) this.pattern[i] = (i * 31 + 7) & 0xff;
    this.outstanding = Array.from({ length: o.clients }, () => new Set<number>());
  }

  async run(): Promise<number> {
    const o = this.o;
    const tty = process.stdout.isTTY === true;
    try {
      await this.startServer();
      for (let c = 0; c < o.clients; c++) await this.startClient(c);
    } catch (err) {
      await this.close();
      process.stderr.write(`kcm demo: cannot set up the echo service: ${describe(err)}\n`);
      return 1;
    }
    process.stdout.write(
      `kcm demo: ${o.sockets} server socket${o.sockets === 1 ? '' : 's'}${o.workers ? ' in worker threads' : ''}, ` +
        `${o.clients} client${o.clients === 1 ? '' : 's'} with ${o.connections} connection${o.connections === 1 ? '' : 's'} each, ${o.size}-byte messages, ` +
        `parser ${o.parser}, ${o.seconds} s\n`,
    );

    const start = performance.now();
    let lastT = start;
    let lastN = 0;
    let lastB = 0;
    const report = (final: boolean): void => {
      const now = performance.now();
      const dt = (now - lastT) / 1000;
      const rate = dt > 0 ? (this.echoed - lastN) / dt : 0;
      const mb = dt > 0 ? (this.echoedBytes - lastB) / dt / 1e6 : 0;
      lastT = now;
      lastN = this.echoed;
      lastB = this.echoedBytes;
      const line =
        `${((now - start) / 1000).toFixed(1).padStart(5)} s  ${fmt(rate).padStart(9)} messages/s  ` +
        `${mb.toFixed(1).padStart(8)} MB/s  echoes ${this.echoed}  errors ${this.errors + this.corrupt + this.duplicates + this.misrouted}`;
      if (tty) process.stdout.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
      else if (!final) process.stdout.write(`${line}\n`);
    };
    const ticker = setInterval(() => report(false), tty ? 250 : 1000);

    this.pump();
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    this.sending = false;
    const lastSend = performance.now();
    if (this.inFlight > 0) {
      await Promise.race([
        new Promise<void>((r) => (this.drained = r)),
        new Promise((r) => setTimeout(r, DRAIN_MS).unref()),
      ]);
    }
    clearInterval(ticker);
    if (tty) report(true);
    const elapsed = (lastSend - start) / 1000;

    process.stdout.write(`\n${this.table()}\n`);
    const sent = this.nextSeq;
    process.stdout.write(
      `sent ${sent} messages in ${elapsed.toFixed(2)} s (${fmt(sent / elapsed)} messages/s, ` +
        `${((sent * o.size) / elapsed / 1e6).toFixed(1)} MB/s each way); echoes back ${this.echoed}\n`,
    );
    const reasons: string[] = [];
    if (sent === 0) reasons.push('no message was sent');
    if (this.inFlight > 0) reasons.push(`${this.inFlight} echo${this.inFlight === 1 ? '' : 'es'} never came back`);
    if (this.misrouted > 0) reasons.push(`${this.misrouted} echo${this.misrouted === 1 ? '' : 'es'} reached another client`);
    if (this.corrupt > 0) reasons.push(`${this.corrupt} echo${this.corrupt === 1 ? ' was' : 'es were'} corrupted`);
    if (this.duplicates > 0) reasons.push(`${this.duplicates} echo${this.duplicates === 1 ? ' was' : 'es were'} duplicated`);
    if (this.errors > 0) reasons.push(`${this.errors} error${this.errors === 1 ? '' : 's'}: ${this.errorNotes.join('; ')}`);
    await this.close();
    if (reasons.length > 0) {
      process.stderr.write(`kcm demo: FAILED: ${reasons.join(', ')}\n`);
      return 1;
    }
    process.stdout.write(`ok: all ${sent} echoes came back intact, each to the client that sent it (sequence numbers and content checked)\n`);
    return 0;
  }

  /** The /proc/net/kcm table of both multiplexors, each block labelled, then a legend. */
  private table(): string {
    const o = this.o;
    const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    const psocks = o.clients * o.connections;
    const labels = [
      o.workers
        ? `server: kcm-1..${o.sockets} in worker threads echo every message to its origin, kcm-0 takes none; ` +
          `${plural(psocks, 'psock')}, one per accepted TCP connection`
        : `server: ${plural(o.sockets, 'KCM socket')} echo every message to its origin; ${plural(psocks, 'psock')}, one per accepted TCP connection`,
      ...this.clientSocks.map((socks, c) =>
        `client ${c + 1}: ${plural(socks.length, 'KCM socket')} send and read their own echoes; ${plural(o.connections, 'psock')}, one per TCP connection`),
    ];
    const lines = formatKcmTable([this.serverSock!.mux, ...this.clientSocks.map((socks) => socks[0]!.mux)]).trimEnd().split('\n');
    let block = 0;
    const out: string[] = [];
    for (const line of lines) {
      if (/^mux\s/.test(line)) out.push(`-- ${labels[block++] ?? ''}`);
      out.push(line);
    }
    return `${out.join('\n')}\n${tableLegend(out.join('\n'))}`;
  }

  private async startServer(): Promise<void> {
    const o = this.o;
    const first = KcmSocket.create();
    this.serverSock = first;
    first.mux.on('psockerror', (err: Error, psock: Psock) => this.fail(`server psock-${psock.index}: ${err.message}`));
    if (o.workers) {
      // The main thread's socket takes no messages: the workers' sockets take them all.
      first.setRecvDisable(true);
      await this.startWorkers(first);
    } else {
      this.serverSocks.push(first);
      for (let i = 1; i < o.sockets; i++) this.serverSocks.push(first.clone());
      for (const s of this.serverSocks) echoToOrigin(s, (err) => this.fail(`server kcm-${s.index}: ${describe(err)}`));
    }
    const server = net.createServer({ noDelay: true });
    this.server = server;
    server.on('connection', (conn) => {
      this.transports.push(conn);
      try {
        first.attach(conn, { parser: this.parser });
      } catch (err) {
        this.fail(`server attach: ${describe(err)}`);
        conn.destroy();
      }
    });
    server.on('error', (err) => this.fail(`server: ${err.message}`));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  }

  private async startWorkers(first: KcmSocket): Promise<void> {
    const { Worker } = await import('node:worker_threads');
    for (let i = 0; i < this.o.sockets; i++) {
      const port = first.cloneForWorker();
      const worker = new Worker(new URL('./demo-worker.js', import.meta.url), {
        workerData: { port },
        transferList: port.transferList,
      });
      worker.on('error', (err) => this.fail(`worker ${i}: ${err.message}`));
      this.workers.push(worker);
    }
  }

  /** Client `c`: its own multiplexor, M sockets over M connections. */
  private async startClient(c: number): Promise<void> {
    const o = this.o;
    const { port } = this.server!.address() as net.AddressInfo;
    const client = KcmSocket.create();
    client.mux.on('psockerror', (err: Error, psock: Psock) => this.fail(`client ${c + 1} psock-${psock.index}: ${err.message}`));
    const socks = [client];
    for (let i = 1; i < o.connections; i++) socks.push(client.clone());
    this.clientSocks.push(socks);
    this.nextSock.push(0);
    const onEcho = (m: Buffer): void => this.onEcho(c, m);
    for (const s of socks) s.on('message', onEcho);
    const connected: Promise<unknown>[] = [];
    for (let i = 0; i < o.connections; i++) {
      const t = net.connect({ port, host: '127.0.0.1', noDelay: true });
      this.transports.push(t);
      connected.push(once(t, 'connect'));
      client.attach(t, { parser: this.parser });
    }
    await Promise.all(connected);
  }

  /** Keeps up to `window` messages in flight, in bursts, round-robin over the clients and their sockets. */
  private pump(): void {
    this.pumpScheduled = false;
    const o = this.o;
    while (this.sending && this.inFlight < o.window) {
      const c = this.next;
      this.next = (this.next + 1) % o.clients;
      const n = Math.min(BATCH, o.window - this.inFlight);
      const batch: Buffer[] = new Array(n);
      for (let i = 0; i < n; i++) batch[i] = this.message(c, this.nextSeq++);
      const socks = this.clientSocks[c]!;
      const sock = socks[this.nextSock[c]!]!;
      this.nextSock[c] = (this.nextSock[c]! + 1) % socks.length;
      sock.sendMany(batch).catch((err: unknown) => this.fail(`client ${c + 1} kcm-${sock.index}: ${describe(err)}`));
    }
  }

  private message(client: number, seq: number): Buffer {
    const size = this.o.size;
    const m = Buffer.allocUnsafe(size);
    m.writeUInt32BE(size - 4, 0);
    m.writeUInt32BE(seq, 4);
    const off = seq % OFFSETS;
    this.pattern.copy(m, HEAD, off, off + size - HEAD);
    this.outstanding[client]!.add(seq);
    this.inFlight++;
    return m;
  }

  private onEcho(client: number, m: Buffer): void {
    const size = this.o.size;
    this.echoed++;
    this.echoedBytes += m.length;
    if (m.length !== size || m.readUInt32BE(0) !== size - 4) {
      this.corrupt++;
    } else {
      const seq = m.readUInt32BE(4);
      const off = seq % OFFSETS;
      if (this.outstanding[client]!.delete(seq)) {
        this.inFlight--;
        if (!m.subarray(HEAD).equals(this.pattern.subarray(off, off + size - HEAD))) this.corrupt++;
      } else if (this.outstanding.some((set) => set.has(seq))) {
        this.misrouted++; // another client's echo: its sender never gets it
      } else if (seq < this.nextSeq) {
        this.duplicates++;
      } else {
        this.corrupt++;
      }
    }
    if (this.sending) {
      if (!this.pumpScheduled) {
        this.pumpScheduled = true;
        setImmediate(demoOnPump, this);
      }
    } else if (this.inFlight === 0 && this.drained !== undefined) {
      this.drained();
    }
  }

  /** @internal */
  pumpNow(): void {
    this.pump();
  }

  private fail(note: string): void {
    this.errors++;
    if (this.errorNotes.length < 5) this.errorNotes.push(note);
  }

  private async close(): Promise<void> {
    for (const socks of this.clientSocks) for (const s of socks) s.close();
    for (const s of this.serverSocks) s.close();
    this.serverSock?.close();
    await Promise.all(this.workers.map((w) => w.terminate()));
    for (const t of this.transports) t.destroy();
    const server = this.server;
    if (server !== undefined) await new Promise<void>((r) => server.close(() => r()));
  }
}

function demoOnPump(demo: Demo): void {
  demo.pumpNow();
}

/**
 * Echoes every message steered to `sock` back to the connection it came from [K-2, K-3],
 * until the socket closes. While its send queue is full [T-9] the socket stops taking
 * messages (`pause()`), so a slow client throttles the server instead of growing a queue.
 */
export function echoToOrigin(sock: KcmSocket, onError: (err: unknown) => void): void {
  const resume = (): void => void sock.resume();
  const failed = (err: unknown): void => {
    if (!sock.closed) onError(err);
  };
  sock.on('message', (m: Buffer, origin: PsockRef) => {
    try {
      if (sock.trySend(m, { psock: origin })) return;
    } catch (err) {
      failed(err);
      return;
    }
    sock.pause();
    sock.send(m, { psock: origin }).then(resume, failed);
  });
}

/** What the status words of a /proc/net/kcm table mean, for the ones the table shows. */
const STATUS_WORDS: readonly [RegExp, string][] = [
  [/\bRxWait\b/, 'RxWait: a socket waits in receive for a message (on a psock: a message has partly arrived)'],
  [/\b(Psck|Rsvd)-\d+/, 'Psck-N / Rsvd-N: a socket holds psock N for its sends until its queue is empty'],
  [/\bTxWait\b/, 'TxWait: a socket waits for a free psock'],
  [/\bWMore\b/, 'WMore: a batch is pending'],
  [/\bTxStop\b/, 'TxStop: a psock failed and sends nothing more'],
  [/\bRxStop\b/, 'RxStop: a psock failed and parses nothing more'],
  [/\bRdyRx\b/, 'RxPause RdyRx: a psock holds a message no socket can take yet, and stopped reading'],
  [/\bRxDisabled\b/, 'RxDisabled: receiving turned off on the socket (KCM_RECV_DISABLE)'],
  [/\bPinned[- ][1-9]/, 'Pinned-N: replies pinned to that psock (sent to the origin of their request) and handed to its connection'],
  [/\bPinQ-\d+/, 'PinQ-N: messages pinned to a psock waiting for it'],
  [/\bDropped[- ][1-9]/, 'Dropped-N: pinned messages dropped because their connection failed first'],
];

/** The legend printed under the demo's table. */
export function tableLegend(table: string): string {
  const shown = STATUS_WORDS.filter(([word]) => word.test(table)).map(([, text]) => `  ${text}`);
  return [
    'legend: RX/TX-Msgs, RX/TX-Bytes: messages and bytes received and sent by the mux, each KCM socket (kcm-N)',
    '  and each psock (psock-N, one TCP connection; RX counts what its parser cut from the stream)',
    '  Recv-Q, Rmem: messages and bytes waiting to be read on a socket; Send-Q: messages waiting to be sent',
    "  Smem: bytes a psock's TCP connection still holds for writing; '-': not kept for that row",
    ...shown,
  ].join('\n') + '\n';
}

function fmt(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}

function describe(err: unknown): string {
  if (err instanceof Error) return 'code' in err && typeof err.code === 'string' && !err.message.includes(err.code) ? `${err.code}: ${err.message}` : err.message;
  return String(err);
}
