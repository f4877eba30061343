/**
 * The tables of contents at the top of the docs/ pages: built from each page's `##` and
 * `###` headings, between the markers below, right under the page's title.
 *
 *   npm run docs:toc        rewrites them in place
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TOC_START = '<!-- toc: npm run docs:toc -->';
export const TOC_END = '<!-- /toc -->';

export interface Heading {
  level: number;
  text: string;
  slug: string;
}

/** The anchor a Markdown renderer (GitHub, npm) gives a heading: lower case, punctuation dropped, spaces to '-'. */
export function slug(text: string): string {
  return text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/ /g, '-');
}

/** The headings of a page outside fenced code, with their anchors made unique as renderers do. */
export function headings(markdown: string): Heading[] {
  const out: Heading[] = [];
  const seen = new Map<string, number>();
  let fenced = false;
  for (const line of markdown.split('\n')) {
    if (/^(```|~~~)/.test(line)) fenced = !fenced;
    if (fenced) continue;
    const m = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (m === null) continue;
    const base = slug(m[2]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.push({ level: m[1]!.length, text: m[2]!, slug: n === 0 ? base : `${base}-${n}` });
  }
  return out;
}

/** The table of a page: a nested list of its `##` and `###` headings. */
export function tableOf(markdown: string): string {
  const items = headings(markdown)
    .filter((h) => h.level === 2 || h.level === 3)
    .map((h) => `${h.level === 3 ? '  ' : ''}- [${h.text}](#${h.slug})`);
  return [TOC_START, ...items, TOC_END].join('\n');
}

/** The page with its table put (or replaced) right under its `#` title. */
export function withToc(markdown: string): string {
  const start = markdown.indexOf(TOC_START);
  if (start >= 0) {
    const end = markdown.indexOf(TOC_END, start);
    if (end < 0) throw new Error(`${TOC_START} without ${TOC_END}`);
    const without = markdown.slice(0, start) + markdown.slice(end + TOC_END.length);
    return markdown.slice(0, start) + tableOf(without) + markdown.slice(end + TOC_END.length);
  }
  const title = /^# .*\n/m.exec(markdown);
  if (title === null) throw new Error('a page needs a # title');
  const at = title.index + title[0].length;
  return `${markdown.slice(0, at)}\n${tableOf(markdown)}\n${markdown.slice(at)}`;
}

/** The pages that carry a table: every docs/*.md but the index. */
export function tocPages(docsDir: string): string[] {
  return readdirSync(docsDir)
    .filter((n) => n.endsWith('.md') && n !== 'README.md')
    .sort()
    .map((n) => join(docsDir, n));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const docs = fileURLToPath(new URL('../../../docs', import.meta.url));
  for (const page of tocPages(docs)) {
    const before = readFileSync(page, 'utf8');
    const after = withToc(before);
    if (after !== before) {
      writeFileSync(page, after);
      process.stdout.write(`updated ${page}\n`);
    }
  }
}
