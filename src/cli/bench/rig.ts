/**
 * The two processes of a benchmark run, a receiver and a sender (`peer.ts`), kept for the
 * whole run and replaced after a failure, so that a case measures one side's work on one
 * core and the other side's on the other.
 */
import { fork, type ChildProcess } from 'node:child_process';

/** Longest wait for a peer's answer (beyond the measured time) before the case fails. */
const COMMAND_TIMEOUT_MS = 15_000;
/** Measurement windows tried before a case with no message counts as failed. */
const MEASURE_ATTEMPTS = 3;
/** How long a sender runs past the measured time unless stopped before. */
const SENDER_SLACK_MS = 1_000;
/** Longest wait for a sender to stop. */
const STOP_TIMEOUT_MS = 5_000;

interface Reply {
  id: number;
  error?: string;
  [key: string]: unknown;
}

/** One forked peer process and its pending commands. */
class Peer {
  private readonly child: ChildProcess;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private exited = false;

  constructor(role: string, profile: string | undefined) {
    const execArgv = profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profile, '--cpu-prof-name', `${role}-${process.pid}-${Date.now()}.cpuprofile`];
    this.child = fork(new URL('./peer.js', import.meta.url), [role], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.child.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (p === undefined) return;
      this.pending.delete(r.id);
      clearTimeout(p.timer);
      if (r.error !== undefined) p.reject(new Error(r.error));
      else p.resolve(r);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`the ${role} process exited (${signal ?? code})`));
      }
      this.pending.clear();
    });
  }

  request(command: Record<string, unknown>, timeoutMs = COMMAND_TIMEOUT_MS): Promise<Reply> {
    if (this.exited) return Promise.reject(new Error('the peer process is gone'));
    const id = this.nextId++;
    return new Promise<Reply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no answer to '${String(command.cmd)}' within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.send({ id, ...command });
    });
  }

  /** Ends the process: its IPC channel first (it exits then), a kill if it stays. */
  kill(): void {
    if (this.exited) return;
    if (this.child.connected) this.child.disconnect();
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    timer.unref();
    this.child.once('exit', () => clearTimeout(timer));
  }
}

/** How long one throughput case runs. */
export interface Timing {
  warmupMs: number;
  measureMs: number;
}

/** The receiver and the sender processes. */
export class PeerPair {
  private receiver: Peer;
  private sender: Peer;

  constructor(private readonly profile: string | undefined) {
    this.receiver = new Peer('receiver', profile);
    this.sender = new Peer('sender', profile);
  }

  /**
   * Messages per second that arrived at `receiver` from `sender` in one measured run: the
   * messages it delivered, or for a receiver that only counts bytes, bytes / frame size.
   * `stalled` is set when the sender did not answer 'stop' in time (its loop keeps the
   * event loop from running): the figure stands, the caller restarts the processes.
   */
  async throughput(sender: string, receiver: string, size: number, connections: number, t: Timing): Promise<{ rate: number; stalled?: string }> {
    const { address } = await this.receiver.request({ cmd: 'receive', receiver, size, connections });
    let rate: number;
    try {
      // The sender ends by itself a while after the last measurement, should it not hear 'stop'.
      const durationMs = t.warmupMs + MEASURE_ATTEMPTS * t.measureMs + SENDER_SLACK_MS;
      await this.sender.request({ cmd: 'send', sender, size, connections, address, durationMs });
      let messages = 0;
      let seconds = 0;
      // A sender slow to start (a busy machine, a library connecting lazily) gets another window.
      for (let attempt = 0; attempt < MEASURE_ATTEMPTS && messages === 0; attempt++) {
        const warmupMs = attempt === 0 ? t.warmupMs : 0;
        const m = await this.receiver.request({ cmd: 'measure', warmupMs, measureMs: t.measureMs }, COMMAND_TIMEOUT_MS + warmupMs + t.measureMs);
        seconds = m.seconds as number;
        messages = m.bytesOnly === true ? (m.bytes as number) / (size + 4) : (m.messages as number);
      }
      if (messages === 0) throw new Error(`no message arrived in ${MEASURE_ATTEMPTS} windows of ${t.measureMs} ms`);
      rate = messages / seconds;
    } catch (err) {
      await this.stopBoth().catch(() => undefined);
      throw err;
    }
    try {
      await this.stopBoth();
    } catch (err) {
      return { rate, stalled: `the sender did not stop within ${STOP_TIMEOUT_MS} ms: its loop starves its event loop (${(err as Error).message})` };
    }
    return { rate };
  }

  private async stopBoth(): Promise<void> {
    try {
      await this.sender.request({ cmd: 'stop' }, STOP_TIMEOUT_MS);
    } finally {
      await this.receiver.request({ cmd: 'stop' }, STOP_TIMEOUT_MS);
    }
  }

  /** Round-trip times in microseconds of `count` ping-pongs after `warmup` more. */
  async pingPong(pinger: string, size: number, warmup: number, count: number): Promise<number[]> {
    const { address } = await this.receiver.request({ cmd: 'echo', pinger, size });
    try {
      const r = await this.sender.request({ cmd: 'ping', pinger, address, size, warmup, count }, COMMAND_TIMEOUT_MS + (warmup + count) / 10);
      return r.rtts as number[];
    } finally {
      await this.stopBoth();
    }
  }

  async restart(): Promise<void> {
    this.kill();
    await new Promise((r) => setTimeout(r, 100));
    this.receiver = new Peer('receiver', this.profile);
    this.sender = new Peer('sender', this.profile);
  }

  kill(): void {
    this.receiver.kill();
    this.sender.kill();
  }
}
