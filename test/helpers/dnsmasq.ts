/**
 * A real DNS server for the discovery tests: dnsmasq on 127.0.0.1 and a free high port,
 * in the foreground, answering A records from an `--addn-hosts` file (re-read at
 * SIGHUP) and SRV records from its command line (changed by a restart). Nothing else:
 * no upstream, no /etc/hosts, no DHCP, its own pid file.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as dns from 'node:dns';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';

/** The dnsmasq binary, or undefined when it is not installed. */
export function dnsmasqPath(): string | undefined {
  for (const p of ['dnsmasq', '/usr/sbin/dnsmasq', '/sbin/dnsmasq']) {
    const r = spawnSync(p, ['--version'], { encoding: 'utf8', timeout: 5000 });
    if (r.status === 0 && /Dnsmasq version/.test(r.stdout)) return p;
  }
  return undefined;
}

/** Why the dnsmasq tests skip, or false when they can run. */
export function dnsmasqSkip(): string | false {
  return dnsmasqPath() === undefined ? 'dnsmasq is not installed (Debian: apt-get install dnsmasq)' : false;
}

export interface SrvRecord {
  name: string;
  target: string;
  port: number;
  priority?: number;
  weight?: number;
}

async function freeUdpPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export class Dnsmasq {
  readonly port: number;
  private readonly dir: string;
  private readonly hostsFile: string;
  private child: ChildProcess | undefined = undefined;
  private srv: SrvRecord[];
  private stderr = '';

  private constructor(port: number, dir: string, srv: SrvRecord[]) {
    this.port = port;
    this.dir = dir;
    this.hostsFile = join(dir, 'hosts');
    this.srv = srv;
  }

  /** Starts dnsmasq with these A records (name → addresses) and SRV records. */
  static async start(hosts: Record<string, string[]>, srv: SrvRecord[] = []): Promise<Dnsmasq> {
    const d = new Dnsmasq(await freeUdpPort(), mkdtempSync(join(tmpdir(), 'kcm-dnsmasq-')), srv);
    d.writeHosts(hosts);
    await d.spawn();
    return d;
  }

  /** A resolver that asks this server only, with short timeouts. */
  resolver(): dns.promises.Resolver {
    const r = new dns.promises.Resolver({ timeout: 500, tries: 2 });
    r.setServers([`127.0.0.1:${this.port}`]);
    return r;
  }

  /** Rewrites the A records; they take effect at {@link reload}. */
  writeHosts(hosts: Record<string, string[]>): void {
    const lines: string[] = ['127.0.0.1 ready.kcm.test'];
    for (const [name, addrs] of Object.entries(hosts)) for (const a of addrs) lines.push(`${a} ${name}`);
    writeFileSync(this.hostsFile, `${lines.join('\n')}\n`);
  }

  /** SIGHUP: dnsmasq reads the hosts file again. */
  reload(): void {
    this.child?.kill('SIGHUP');
  }

  /** Restarts dnsmasq with other SRV records (dnsmasq reads those at start only). */
  async restart(srv: SrvRecord[]): Promise<void> {
    await this.stopChild();
    this.srv = srv;
    await this.spawn();
  }

  /** Stops answering (the process exits) until {@link restart}. */
  halt(): Promise<void> {
    return this.stopChild();
  }

  async stop(): Promise<void> {
    await this.stopChild();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async spawn(): Promise<void> {
    const args = [
      '--keep-in-foreground',
      `--port=${this.port}`,
      '--listen-address=127.0.0.1',
      '--bind-interfaces',
      '--no-resolv',
      '--no-hosts',
      '--no-negcache',
      '--local-ttl=0',
      '--conf-file=/dev/null',
      `--addn-hosts=${this.hostsFile}`,
      `--pid-file=${join(this.dir, 'pid')}`,
      '--user=root',
      '--log-facility=-',
    ];
    for (const s of this.srv) args.push(`--srv-host=${s.name},${s.target},${s.port},${s.priority ?? 0},${s.weight ?? 0}`);
    const child = spawn(dnsmasqPath()!, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    this.child = child;
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    // Ready once it answers.
    const r = this.resolver();
    const deadline = Date.now() + 10000;
    for (let i = 0; i < 500; i++) {
      if (child.exitCode !== null) throw new Error(`dnsmasq exited ${child.exitCode}: ${this.stderr}`);
      try {
        await r.resolve4('ready.kcm.test');
        return;
      } catch {
        // not up yet
      }
      if (Date.now() > deadline) break;
      await new Promise((res) => setTimeout(res, 20));
    }
    throw new Error(`dnsmasq did not answer on port ${this.port}: ${this.stderr}`);
  }

  private async stopChild(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (child === undefined || child.exitCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
    const pid = join(this.dir, 'pid');
    if (existsSync(pid)) rmSync(pid, { force: true });
  }
}
