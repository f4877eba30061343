#!/usr/bin/env node
/**
 * The `kcm` command: a thin layer over the public API.
 */
import { readFileSync } from 'node:fs';
import { UsageError } from './args.js';

const usage = `usage: kcm <command> [options]

commands:
  demo     run an echo service over a multiplexor and print its statistics
  bench    compare kcm with hand-written framing over net and with zeromq
  bpf      inspect, run and execute eBPF parser programs; 'kcm bpf include' for kcm.h

options:
  -v, --version  print the version of kcm

run 'kcm <command> --help' for a command's options`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'demo': {
      const { demoCommand, demoUsage } = await import('./demo.js');
      return withUsage('demo', demoUsage, () => demoCommand(rest));
    }
    case 'bench': {
      const { benchCommand, benchUsage } = await import('./bench.js');
      return withUsage('bench', benchUsage, () => benchCommand(rest));
    }
    case 'bpf': {
      const { bpfCommand } = await import('./bpf.js');
      return bpfCommand(rest);
    }
    case '-h':
    case '--help':
      process.stdout.write(`${usage}\n`);
      return 0;
    case '-v':
    case '--version':
      process.stdout.write(`${version()}\n`);
      return 0;
    case undefined:
      process.stderr.write(`${usage}\n`);
      return 2;
    default:
      process.stderr.write(`kcm: unknown command '${command}'\n${usage}\n`);
      return 2;
  }
}

/** The version in the package.json of the package root, three levels above this file (dist/src/cli/). */
function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  return String(pkg.version);
}

/** Runs a subcommand; an argument mistake prints its usage line on stderr and gives status 2. */
async function withUsage(name: string, usageLine: string, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`kcm ${name}: ${err.message}\n${usageLine}\n`);
      return 2;
    }
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`kcm: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
