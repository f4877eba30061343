/**
 * `npm run bench`: the end-to-end comparison of kcm with hand-written framing, raw TCP and
 * zeromq.js (the same code as `kcm bench`; see `e2e.ts`).
 *
 *   node dist/bench/run.js [--quick] [--json] [--sizes=16,256,4k,64k] [--connections=1,4] ...
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
