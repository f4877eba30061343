/**
 * The docs as a reader meets them, in a checkout or in the installed package: each page
 * opens with its table of contents, and every link leads somewhere that is there.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blockAfter } from '../cli/snippets.js';
import { headings, tableOf, TOC_END, TOC_START, tocPages } from './toc.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOCS = join(ROOT, 'docs');
const REPOSITORY = 'https://github.com/kcm-js/kcm/';

/** README.md and every docs page. */
function pages(): string[] {
  return [join(ROOT, 'README.md'), ...readdirSync(DOCS).filter((n) => n.endsWith('.md')).sort().map((n) => join(DOCS, n))];
}

/** The lines of a page outside fenced code, with their numbers. */
function prose(markdown: string): [number, string][] {
  const out: [number, string][] = [];
  let fenced = false;
  markdown.split('\n').forEach((line, i) => {
    if (/^(```|~~~)/.test(line)) fenced = !fenced;
    else if (!fenced) out.push([i + 1, line]);
  });
  return out;
}

test('every docs page opens with its table of contents, current with its headings', () => {
  const pagesWithToc = tocPages(DOCS);
  assert.ok(pagesWithToc.length >= 7);
  for (const page of pagesWithToc) {
    const name = relative(ROOT, page);
    const text = readFileSync(page, 'utf8');
    const lines = text.split('\n');
    assert.match(lines[0]!, /^# /, `${name} starts with its title`);
    assert.equal(lines[2], TOC_START, `${name}: the table of contents comes right under the title (npm run docs:toc)`);
    const start = text.indexOf(TOC_START);
    const end = text.indexOf(TOC_END) + TOC_END.length;
    const without = text.slice(0, start) + text.slice(end);
    assert.equal(text.slice(start, end), tableOf(without), `${name}: the table of contents is stale; run npm run docs:toc`);
  }
});

test('the docs index lists every page, the walkthrough first', () => {
  const index = readFileSync(join(DOCS, 'README.md'), 'utf8');
  const linked = [...index.matchAll(/\]\(([a-z-]+\.md)\)/g)].map((m) => m[1]!);
  assert.equal(linked[0], 'walkthrough.md');
  for (const page of tocPages(DOCS)) assert.ok(linked.includes(relative(DOCS, page)), `docs/README.md links ${relative(DOCS, page)}`);
});

test('every link of the README and docs reaches a shipped file and its anchor a heading, or a file of the repository', () => {
  const { files } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { files: string[] };
  const shipped = (path: string): boolean => path === 'package.json' || files.some((f) => path === f || path.startsWith(`${f}/`));
  for (const page of pages()) {
    const name = relative(ROOT, page);
    for (const [line, text] of prose(readFileSync(page, 'utf8'))) {
      for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        const target = m[1]!;
        if (target.startsWith(REPOSITORY)) {
          // A link into the repository names a file of this checkout.
          const path = /^(?:blob|tree)\/main\/([^#]+)/.exec(target.slice(REPOSITORY.length))?.[1];
          if (path !== undefined) assert.ok(existsSync(join(ROOT, path)), `${name}:${line} links ${target}: no ${path} in the repository`);
          continue;
        }
        if (/^[a-z]+:/.test(target)) continue;
        const [path, anchor] = target.split('#') as [string, string | undefined];
        const file = path === '' ? page : join(dirname(page), path);
        const where = `${name}:${line} links ${target}`;
        assert.ok(existsSync(file), `${where}: no such file`);
        assert.ok(shipped(relative(ROOT, file)), `${where}: not in the package; link to ${REPOSITORY} instead`);
        if (anchor !== undefined) {
          const slugs = headings(readFileSync(file, 'utf8')).map((h) => h.slug);
          assert.ok(slugs.includes(anchor), `${where}: no heading with that anchor`);
        }
      }
    }
  }
});

test('the docs name files of the repository only through links to it', () => {
  for (const page of pages()) {
    const name = relative(ROOT, page);
    for (const [line, text] of prose(readFileSync(page, 'utf8'))) {
      for (const m of text.matchAll(/`((?:examples|src|test|bench)\/[^`]*)`/g)) {
        const after = text.slice(m.index + m[0].length);
        const before = text.slice(0, m.index);
        assert.ok(
          before.endsWith('[') && after.startsWith(`](${REPOSITORY}`),
          `${name}:${line} names ${m[1]}, which the package does not ship: make it a link to ${REPOSITORY}`,
        );
      }
    }
  }
});

test('the walkthrough is a program of at most 50 lines that prints what the page says', async (t) => {
  const page = readFileSync(join(DOCS, 'walkthrough.md'), 'utf8');
  const program = blockAfter(page, '## The program', 'js');
  const printed = blockAfter(page, 'It prints:', '');
  assert.ok(program.trimEnd().split('\n').length <= 50, 'at most 50 lines');
  // A project that depends on kcm: node_modules/kcm is this package.
  const project = mkdtempSync(join(tmpdir(), 'kcm-walkthrough-'));
  t.after(() => rmSync(project, { recursive: true, force: true }));
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(ROOT, join(project, 'node_modules', 'kcm'), 'dir');
  writeFileSync(join(project, 'service.mjs'), program);
  const r = spawnSync(process.execPath, ['service.mjs'], { cwd: project, encoding: 'utf8', timeout: 30_000, killSignal: 'SIGKILL' });
  assert.equal(r.status, 0, `node service.mjs exited ${r.status}: ${r.stderr}`);
  assert.equal(r.stdout, printed);
  assert.equal(r.stderr, '');
});
