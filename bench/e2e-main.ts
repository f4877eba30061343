/**
 * The end-to-end comparison alone (`kcm bench` runs the same code): kcm against
 * hand-written net framing, raw TCP and zeromq.js. See `e2e.ts` for the flags.
 */
import { UsageError } from '../src/cli/args.js';
import { benchCommand, benchUsage } from './e2e.js';

benchCommand(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError) {
      process.stderr.write(`bench: ${err.message}\n${benchUsage}\n`);
      process.exitCode = 2;
      return;
    }
    process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
