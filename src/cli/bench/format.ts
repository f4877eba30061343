/**
 * Numbers and plain-text tables for the benchmark reports. Nothing here knows about kcm.
 */

/** The median, smallest and largest of a set of rounds. */
export interface Spread {
  median: number;
  min: number;
  max: number;
}

/** The median of `values` (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median, min and max of `values`; NaN for all three when there are none. */
export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN };
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** The value at fraction `p` of the sorted `values` (nearest rank). */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
}

/** `1234567` → `1.23 M`, `4321` → `4.32 k`. */
export function formatCount(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 1e9) return `${(n / 1e9).toFixed(2)} G`;
  if (abs >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (abs >= 1e3) return `${(n / 1e3).toFixed(2)} k`;
  return n.toFixed(n === Math.round(n) ? 0 : 2);
}

/** `16` → `16 B`, `4096` → `4 KiB`, `65536` → `64 KiB`, `1536` → `1.5 KiB`. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

/** A plain-text table: first column left-aligned, the others right-aligned. */
export function formatTable(headers: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  // A last column with nothing in it (no notes this time) is left out.
  while (headers.length > 1 && headers[headers.length - 1] === '' && rows.every((r) => (r[headers.length - 1] ?? '') === '')) headers = headers.slice(0, -1);
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.slice(0, widths.length).map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
