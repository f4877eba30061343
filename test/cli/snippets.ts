/** Code blocks of the docs, and whether clang can build the C ones here. */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Snippet {
  /** Position among all C snippets, from 0. */
  index: number;
  /** `docs/<file>.md:<line>`, for messages. */
  where: string;
  code: string;
}

/** Every ```c block of the Markdown files in `docsDir`, in file then line order. */
export function cSnippets(docsDir: string): Snippet[] {
  const out: Snippet[] = [];
  for (const name of readdirSync(docsDir).filter((n) => n.endsWith('.md')).sort()) {
    const lines = readFileSync(join(docsDir, name), 'utf8').split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (!/^```c\s*$/.test(lines[i]!)) continue;
      const start = i + 1;
      let end = start;
      while (end < lines.length && !lines[end]!.startsWith('```')) end++;
      out.push({ index: out.length, where: `docs/${name}:${start}`, code: `${lines.slice(start, end).join('\n')}\n` });
      i = end;
    }
  }
  return out;
}

let clang: boolean | undefined;

/** Whether `clang` runs (it builds eBPF objects; CI installs it). */
export function hasClang(): boolean {
  if (clang === undefined) {
    try {
      execFileSync('clang', ['--version'], { stdio: 'ignore', timeout: 10_000 });
      clang = true;
    } catch {
      clang = false;
    }
  }
  return clang;
}

/** The text of the first fenced block tagged `lang` ('' for untagged) after `marker` in a page. */
export function blockAfter(markdown: string, marker: string, lang: string): string {
  const at = markdown.indexOf(marker);
  if (at < 0) throw new Error(`no '${marker}' in the page`);
  const open = markdown.indexOf(`\`\`\`${lang}\n`, at);
  if (open < 0) throw new Error(`no \`\`\`${lang} block after '${marker}'`);
  const start = open + lang.length + 4;
  return markdown.slice(start, markdown.indexOf('\n```', start) + 1);
}
