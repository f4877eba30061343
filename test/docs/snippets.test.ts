/**
 * Every ```js block of README.md and docs/*.md runs, as written, against the built
 * package: each is written to a module inside the package (so that `import 'kcm'`
 * resolves to this build by self-reference) and run by node, bounded in time; it must
 * exit 0. A block that is a fragment says so in its info string: ```js norun. Blocks
 * of other languages (ts, sh, c, text) are not run here.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LIMIT = 30_000;

export interface JsSnippet {
  /** `docs/connect.md:42`: the file and the line of the opening fence. */
  where: string;
  code: string;
  runnable: boolean;
}

/** The ```js blocks of a Markdown text. */
export function jsSnippets(markdown: string, file: string): JsSnippet[] {
  const out: JsSnippet[] = [];
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^```(js|javascript|mjs)(\s.*)?$/.exec(lines[i]!);
    if (m === null) continue;
    let end = i + 1;
    while (end < lines.length && !lines[end]!.startsWith('```')) end++;
    out.push({ where: `${file}:${i + 1}`, code: `${lines.slice(i + 1, end).join('\n')}\n`, runnable: !/\bnorun\b/.test(m[2] ?? '') });
    i = end;
  }
  return out;
}

function pages(): string[] {
  return ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((n) => n.endsWith('.md')).sort().map((n) => `docs/${n}`)];
}

function run(file: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [file], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), LIMIT);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('jsSnippets finds js blocks and the norun mark', () => {
  const md = ['# t', '```js', 'a()', '```', '```ts', 'b()', '```', '```js norun', 'c()', '```', '```js', '```'].join('\n');
  assert.deepEqual(jsSnippets(md, 'x.md'), [
    { where: 'x.md:2', code: 'a()\n', runnable: true },
    { where: 'x.md:8', code: 'c()\n', runnable: false },
    { where: 'x.md:11', code: '\n', runnable: true },
  ]);
});

test('every runnable js snippet of README.md and docs/ runs as written and exits 0', async (t) => {
  const dir = join(ROOT, 'dist', '.snippets');
  mkdirSync(dir, { recursive: true });
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const all = pages().flatMap((p) => jsSnippets(readFileSync(join(ROOT, p), 'utf8'), p));
  const runnable = all.filter((s) => s.runnable);
  assert.ok(runnable.some((s) => s.where.startsWith('README.md')), 'the README example is among them');
  assert.ok(runnable.filter((s) => s.where.startsWith('docs/connect.md')).length >= 3, 'docs/connect.md has runnable snippets');
  for (const [i, s] of runnable.entries()) {
    await t.test(s.where, async () => {
      const file = join(dir, `snippet-${i}.mjs`);
      writeFileSync(file, s.code);
      const r = await run(file);
      assert.equal(r.code, 0, `${s.where} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    });
  }
});
