import { readdirSync } from 'node:fs';
import { join } from 'node:path';

/** The files under `dir` whose names end with `suffix`, at any depth, sorted. */
export function filesEndingWith(dir: string, suffix: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesEndingWith(p, suffix));
    else if (e.name.endsWith(suffix)) out.push(p);
  }
  return out.sort();
}
