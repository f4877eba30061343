/**
 * `kcm demo`: an echo service on 127.0.0.1 run over two multiplexors, with a live rate line
 * and, at the end, the `/proc/net/kcm` table of both and a check of every echo.
 *
 *   client mux: C KCM sockets ── M TCP connections ──> server mux: N KCM sockets (echo)
 *
 * Each message is `[u32 length of the rest][u32 sequence number][pattern bytes]`; the
 * pattern starts at an offset that depends on the sequence number, so a message delivered
 * to the wrong place, cut, or spliced with another one fails the check.
 */
import * as net from 'node:net';
import { once } from 'node:events';
import { KcmSocket, formatKcmTable, lengthField, loadBpf, type Parser, type Psock } from '../index.js';
import { parseArgs, UsageError, type OptionSpec } from './args.js';

export const demoUsage = 'usage: kcm demo [--sockets N] [--connections M] [--size BYTES] [--seconds S] [--parser length|FILE.o] [--workers] [--window N]';

const help = `${demoUsage}

Runs an echo service on 127.0.0.1: a server multiplexor with N KCM sockets echoes every
message back over M TCP connections to a client multiplexor. Prints the message rate while
it runs, then the /proc/net/kcm table of both multiplexors and checks that every echo came
back intact (sequence numbers and content).

options:
  --sockets N        server KCM sockets (default 4)
  --connections M    TCP connections, each attached to both multiplexors (default 4)
  --size BYTES       message size on the wire, 4-byte length header included
                     (default 256, at least ${8}; 4k, 64k, 1m accepted)
  --seconds S        how long to send (default 5)
  --parser P         'length' (4-byte big-endian length of the rest, the default), or an
                     eBPF object file (.o) loaded with loadBpf that frames the same way
  --workers          put the server sockets in worker threads (cloneForWorker/adopt)
  --window N         messages in flight at most (default 1024; fewer for large sizes)

exits 0 when every echo came back intact, 1 otherwise, 2 on a usage error`;

const spec: Record<string, OptionSpec> = {
  sockets: { type: 'int', min: 1, max: 256 },
  connections: { type: 'int', min: 1, max: 256 },
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
    connections: (v.connections as number | undefined) ?? 4,
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
  private readonly outstanding = new Set<number>();
  private nextSeq = 0;
  private echoed = 0;
  private echoedBytes = 0;
  private corrupt = 0;
  private duplicates = 0;
  private errors = 0;
  private readonly errorNotes: string[] = [];
  private sending = true;
  private pumpScheduled = false;
  private next = 0;
  private server: net.Server | undefined;
  private serverSock: KcmSocket | undefined;
  private readonly serverSocks: KcmSocket[] = [];
  private readonly clientSocks: KcmSocket[] = [];
  private readonly transports: net.Socket[] = [];
  private readonly workers: { terminate(): Promise<number> }[] = [];
  private drained: (() => void) | undefined;

  constructor(private readonly o: DemoOptions, private readonly parser: Parser) {
    this.pattern = Buffer.allocUnsafe(o.size - HEAD + OFFSETS);
    for (let i = 0; i < this.pattern.length; i++) this.pattern[i] = (i * 31 + 7) & 0xff;
  }

  async run(): Promise<number> {
    const o = this.o;
    const tty = process.stdout.isTTY === true;
    try {
      await this.startServer();
      await this.startClient();
    } catch (err) {
      await this.close();
      process.stderr.write(`kcm demo: cannot set up the echo service: ${describe(err)}\n`);
      return 1;
    }
    process.stdout.write(
      `kcm demo: ${o.sockets} server socket${o.sockets === 1 ? '' : 's'}${o.workers ? ' in worker threads' : ''}, ` +
        `${o.connections} connection${o.connections === 1 ? '' : 's'}, ${o.size}-byte messages, ` +
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
        `${mb.toFixed(1).padStart(8)} MB/s  echoes ${this.echoed}  errors ${this.errors + this.corrupt + this.duplicates}`;
      if (tty) process.stdout.write(`\r${line}\x1b[K${final ? '\n' : ''}`);
      else if (!final) process.stdout.write(`${line}\n`);
    };
    const ticker = setInterval(() => report(false), tty ? 250 : 1000);

    this.pump();
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    this.sending = false;
    const lastSend = performance.now();
    if (this.outstanding.size > 0) {
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
    if (this.outstanding.size > 0) reasons.push(`${this.outstanding.size} echo${this.outstanding.size === 1 ? '' : 'es'} never came back`);
    if (this.corrupt > 0) reasons.push(`${this.corrupt} echo${this.corrupt === 1 ? ' was' : 'es were'} corrupted`);
    if (this.duplicates > 0) reasons.push(`${this.duplicates} echo${this.duplicates === 1 ? ' was' : 'es were'} duplicated`);
    if (this.errors > 0) reasons.push(`${this.errors} error${this.errors === 1 ? '' : 's'}: ${this.errorNotes.join('; ')}`);
    await this.close();
    if (reasons.length > 0) {
      process.stderr.write(`kcm demo: FAILED: ${reasons.join(', ')}\n`);
      return 1;
    }
    process.stdout.write(`ok: all ${sent} echoes came back intact (sequence numbers and content checked)\n`);
    return 0;
  }

  /** The /proc/net/kcm table of both multiplexors, each block labelled, then a legend. */
  private table(): string {
    const o = this.o;
    const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    const labels = [
      o.workers
        ? `server: kcm-1..${o.sockets} in worker threads echo every message, kcm-0 takes none; ` +
          `${plural(o.connections, 'psock')}, one per accepted TCP connection`
        : `server: ${plural(o.sockets, 'KCM socket')} echo every message; ${plural(o.connections, 'psock')}, one per accepted TCP connection`,
      `client: ${plural(this.clientSocks.length, 'KCM socket')} send and read the echoes; ${plural(o.connections, 'psock')}, one per TCP connection`,
    ];
    const lines = formatKcmTable([this.serverSock!.mux, this.clientSocks[0]!.mux]).trimEnd().split('\n');
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
      for (const s of this.serverSocks) void echoLoop(s).catch((err: unknown) => this.fail(`server kcm-${s.index}: ${describe(err)}`));
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

  private async startClient(): Promise<void> {
    const o = this.o;
    const { port } = this.server!.address() as net.AddressInfo;
    const client = KcmSocket.create();
    client.mux.on('psockerror', (err: Error, psock: Psock) => this.fail(`client psock-${psock.index}: ${err.message}`));
    this.clientSocks.push(client);
    for (let i = 1; i < o.connections; i++) this.clientSocks.push(client.clone());
    const onEcho = (m: Buffer): void => this.onEcho(m);
    for (const s of this.clientSocks) s.on('message', onEcho);
    const connected: Promise<unknown>[] = [];
    for (let i = 0; i < o.connections; i++) {
      const t = net.connect({ port, host: '127.0.0.1', noDelay: true });
      this.transports.push(t);
      connected.push(once(t, 'connect'));
      client.attach(t, { parser: this.parser });
    }
    await Promise.all(connected);
  }

  /** Keeps up to `window` messages in flight, in bursts, round-robin over the client sockets. */
  private pump(): void {
    this.pumpScheduled = false;
    const o = this.o;
    while (this.sending && this.outstanding.size < o.window) {
      const n = Math.min(BATCH, o.window - this.outstanding.size);
      const batch: Buffer[] = new Array(n);
      for (let i = 0; i < n; i++) batch[i] = this.message(this.nextSeq++);
      const sock = this.clientSocks[this.next]!;
      this.next = (this.next + 1) % this.clientSocks.length;
      sock.sendMany(batch).catch((err: unknown) => this.fail(`client kcm-${sock.index}: ${describe(err)}`));
    }
  }

  private message(seq: number): Buffer {
    const size = this.o.size;
    const m = Buffer.allocUnsafe(size);
    m.writeUInt32BE(size - 4, 0);
    m.writeUInt32BE(seq, 4);
    const off = seq % OFFSETS;
    this.pattern.copy(m, HEAD, off, off + size - HEAD);
    this.outstanding.add(seq);
    return m;
  }

  private onEcho(m: Buffer): void {
    const size = this.o.size;
    this.echoed++;
    this.echoedBytes += m.length;
    if (m.length !== size || m.readUInt32BE(0) !== size - 4) {
      this.corrupt++;
    } else {
      const seq = m.readUInt32BE(4);
      const off = seq % OFFSETS;
      if (!this.outstanding.delete(seq)) {
        if (seq < this.nextSeq) this.duplicates++;
        else this.corrupt++;
      } else if (!m.subarray(HEAD).equals(this.pattern.subarray(off, off + size - HEAD))) {
        this.corrupt++;
      }
    }
    if (this.sending) {
      if (!this.pumpScheduled) {
        this.pumpScheduled = true;
        setImmediate(demoOnPump, this);
      }
    } else if (this.outstanding.size === 0 && this.drained !== undefined) {
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
    for (const s of this.clientSocks) s.close();
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

/** Echoes every message back on the socket it arrived on, in bursts, until the socket closes. */
export async function echoLoop(sock: KcmSocket): Promise<void> {
  for (;;) {
    let batch: Buffer[];
    try {
      batch = await sock.receiveMany();
    } catch (err) {
      if (sock.closed) return;
      throw err;
    }
    try {
      await sock.sendMany(batch);
    } catch (err) {
      if (sock.closed) return;
      throw err;
    }
  }
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
