import type { Multiplexor } from './multiplexor.js';

const HEADERS = ['Object', 'RX-Msgs', 'RX-Bytes', 'TX-Msgs', 'TX-Bytes', 'Recv-Q', 'Rmem', 'Send-Q', 'Smem', 'Status'];
const WIDTHS = [-10, 10, 16, 10, 16, 8, 8, 8, 8, 0];

function row(cells: (string | number)[]): string {
  let line = '';
  for (let i = 0; i < cells.length; i++) {
    const text = String(cells[i]);
    const w = WIDTHS[i]!;
    line += i === 0 ? text.padEnd(-w) : ` ${w === 0 ? text : text.padStart(w)}`;
  }
  return line.trimEnd();
}

/**
 * The `/proc/net/kcm` table [ST-7]: a `mux` row per multiplexor, then a `kcm-N` row per
 * socket and a `psock-N` row per psock, in index order, with the kernel's status words.
 * The counters are exact (no lag as in Linux).
 */
export function formatKcmTable(muxes: readonly Multiplexor[]): string {
  const lines = [`*** KCM statistics (${muxes.length} MUX) ****`, row(HEADERS)];
  for (const mux of muxes) {
    const s = mux.stats();
    lines.push(row(['mux', s.rxMsgs, s.rxBytes, s.txMsgs, s.txBytes, '-', '-', '-', '-', `KCMs: ${s.sockets.length}, Psocks ${s.psocks.length}`]));
    for (const k of s.sockets) {
      const status: string[] = [];
      if (k.txPsock >= 0) status.push(`Psck-${k.txPsock}`);
      if (k.txWait) status.push('TxWait');
      if (k.batchPending) status.push('WMore');
      if (k.rxWait) status.push('RxWait');
      if (k.rxDisabled) status.push('RxDisabled');
      lines.push(row([`kcm-${k.index}`, k.rxMsgs, k.rxBytes, k.txMsgs, k.txBytes, k.rxQueued, k.rxQueuedBytes, k.txQueued, '-', status.join(' ')]));
    }
    for (const p of s.psocks) {
      const status: string[] = [];
      if (p.txStopped) status.push('TxStop');
      if (p.rxStopped) status.push('RxStop');
      if (p.reservedBy >= 0) status.push(`Rsvd-${p.reservedBy}`);
      if (p.rxPaused) status.push('RxPause', 'RdyRx');
      else if (p.rxPartialBytes > 0) status.push('RxWait');
      lines.push(row([`psock-${p.index}`, p.rxMsgs, p.rxBytes, p.txMsgs, p.txBytes, '-', '-', '-', p.txQueuedBytes, status.join(' ')]));
    }
  }
  return `${lines.join('\n')}\n`;
}
