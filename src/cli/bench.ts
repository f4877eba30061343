/** `kcm bench`: the end-to-end comparison of `npm run bench`. */
export const benchUsage = 'usage: kcm bench [--quick] [--json]';

export async function benchCommand(argv: string[]): Promise<number> {
  void argv;
  process.stderr.write('kcm bench: not built yet\n');
  return 1;
}
