/** The contenders of the end-to-end benchmark, by name. */
import type { Contender } from './contender.js';
import { kcmBpfContender, kcmContender } from './kcm.js';
import { netContender } from './net.js';
import { rawContender } from './raw.js';
import { zeromqContender } from './zeromq.js';

export const contenders: Readonly<Record<string, Contender>> = {
  kcm: kcmContender,
  'kcm-bpf': kcmBpfContender,
  net: netContender,
  raw: rawContender,
  zeromq: zeromqContender,
};
