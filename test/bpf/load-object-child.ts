/**
 * Child process of the hostile-object tests: builds each named shape at each size, loads it
 * with `loadBpf` and prints one JSON line per object: its size, the verdict and the
 * verifier's work. Run under a small heap so that memory blow-ups fail loudly.
 *
 *   node --max-old-space-size=256 load-object-child.js SHAPE SIZE...
 */
import { SHAPES, type ShapeName } from '../../bench/hostile-elf.js';
import { KcmError } from '../../src/errors.js';
import { loadProgram } from '../../src/bpf/load-bpf.js';
import { compileParser } from '../../src/bpf/compiler.js';

const [shape, ...sizes] = process.argv.slice(2);
for (const size of sizes.map(Number)) {
  const bytes = SHAPES[shape as ShapeName](size);
  const started = process.hrtime.bigint();
  let line: Record<string, unknown>;
  try {
    const { program, analysis } = loadProgram(bytes);
    compileParser(program, analysis);
    line = { verdict: 'loaded', insns: program.insns.length, processed: analysis.processed };
  } catch (e) {
    if (!(e instanceof KcmError)) throw e;
    line = { verdict: e.code, message: e.message };
  }
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  process.stdout.write(`${JSON.stringify({ shape, bytes: bytes.length, ms, heapMB: process.memoryUsage().heapUsed / 1e6, ...line })}\n`);
}
