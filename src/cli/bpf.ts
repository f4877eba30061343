/** `kcm bpf`: dump, run and exec eBPF parser programs (placeholder until the engine lands). */
export async function bpfCommand(argv: string[]): Promise<number> {
  void argv;
  process.stderr.write('kcm bpf: the eBPF engine is not built yet\n');
  return 1;
}
