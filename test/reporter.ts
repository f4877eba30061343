/**
 * The reporter of `npm test`: a dot per passing test, an X per failing one, then every
 * failure in full, the skipped tests with their reasons, and the runner's own summary,
 * closing on one line: `N passed, N failed, N skipped, N todo`.
 *
 *   node --test --test-reporter=./dist/test/reporter.js ...
 */
import { inspect } from 'node:util';

interface TestData {
  name: string;
  nesting: number;
  file?: string;
  line?: number;
  column?: number;
  message?: string;
  skip?: string | boolean;
  todo?: string | boolean;
  details?: { type?: string; error?: unknown };
}

interface TestEvent {
  type: string;
  data: TestData;
}

/** Dots per line. */
const WIDTH = 80;
/** The runner's closing counters, in its order. */
const SUMMARY = /^(tests|suites|pass|fail|cancelled|skipped|todo|duration_ms) (\d+(?:\.\d+)?)$/;

function where(d: TestData): string {
  return d.file === undefined ? '' : ` (${d.file}${d.line === undefined ? '' : `:${d.line}:${d.column ?? 0}`})`;
}

/** The assertion error itself, not the runner's wrapper around it. */
function describe(error: unknown): string {
  const e = error as { code?: string; failureType?: string; cause?: unknown } | undefined;
  const inner = e?.code === 'ERR_TEST_FAILURE' && e.cause !== undefined ? e.cause : error;
  const text = inspect(inner, { depth: 6, colors: false });
  return e?.failureType !== undefined && e.failureType !== 'testCodeFailure' ? `[${e.failureType}] ${text}` : text;
}

function indent(text: string): string {
  return text.replace(/^/gm, '    ');
}

export default async function* compact(source: AsyncIterable<TestEvent>): AsyncGenerator<string> {
  let column = 0;
  const failures: string[] = [];
  const skips: string[] = [];
  const counts = new Map<string, string>();
  const dot = function* (c: string): Generator<string> {
    yield c;
    if (++column === WIDTH) {
      column = 0;
      yield '\n';
    }
  };
  for await (const { type, data } of source) {
    switch (type) {
      case 'test:pass': {
        if (data.details?.type === 'suite') break;
        if (data.skip !== undefined && data.skip !== false) {
          skips.push(`  - ${data.name}${where(data)}${typeof data.skip === 'string' ? `: ${data.skip}` : ''}`);
          yield* dot('s');
        } else if (data.todo !== undefined && data.todo !== false) {
          skips.push(`  - todo: ${data.name}${where(data)}${typeof data.todo === 'string' ? `: ${data.todo}` : ''}`);
          yield* dot('t');
        } else yield* dot('.');
        break;
      }
      case 'test:fail': {
        if (data.todo !== undefined && data.todo !== false) {
          skips.push(`  - todo (failing): ${data.name}${where(data)}${typeof data.todo === 'string' ? `: ${data.todo}` : ''}`);
          yield* dot('t');
          break;
        }
        // A suite or a parent fails with its failing subtests, which are listed themselves.
        const error = data.details?.error as { failureType?: string } | undefined;
        if (data.details?.type === 'suite' || error?.failureType === 'subtestsFailed') break;
        failures.push(`✖ ${data.name}${where(data)}\n${indent(describe(data.details?.error))}`);
        yield* dot('X');
        break;
      }
      case 'test:stderr':
      case 'test:stdout': {
        // Output a test printed outside the runner's protocol: shown, never swallowed.
        if (column > 0) yield '\n';
        column = 0;
        yield `${type === 'test:stderr' ? 'stderr' : 'stdout'}${data.file === undefined ? '' : ` of ${data.file}`}: ${String(data.message).trimEnd()}\n`;
        break;
      }
      case 'test:diagnostic': {
        const m = data.nesting === 0 ? SUMMARY.exec(data.message ?? '') : null;
        if (m !== null) counts.set(m[1]!, m[2]!);
        break;
      }
      default:
        break;
    }
  }
  if (column > 0) yield '\n';
  if (failures.length > 0) yield `\nfailing tests:\n\n${failures.join('\n\n')}\n`;
  if (skips.length > 0) yield `\nskipped and todo:\n${skips.join('\n')}\n`;
  yield `\n${[...counts].map(([k, v]) => `ℹ ${k} ${v}`).join('\n')}\n`;
  const n = (k: string): string => counts.get(k) ?? '0';
  yield `${n('pass')} passed, ${n('fail')} failed, ${n('skipped')} skipped, ${n('todo')} todo, ${n('cancelled')} cancelled\n`;
}
