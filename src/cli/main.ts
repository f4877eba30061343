#!/usr/bin/env node
/**
 * The `kcm` command: a thin layer over the public API.
 */
const usage = `usage: kcm <command> [options]

commands:
  demo     run an echo service over a multiplexor and print its statistics
  bench    compare kcm with hand-written framing and raw TCP
  bpf      inspect, run and execute eBPF parser programs`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'bpf': {
      const { bpfCommand } = await import('./bpf.js');
      return bpfCommand(rest);
    }
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(`${usage}\n`);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`kcm: unknown command '${command}'\n${usage}\n`);
      return 2;
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
