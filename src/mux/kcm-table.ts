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
 *
 * Beyond Linux, status words show replies pinned to a psock [K-3 … K-6], only where there
 * were some, so the rows of a multiplexor without them read as in Linux: `PinQ-<n>`
 * (messages waiting for the psock), `Pinned-<n>` (pinned messages handed whole to its
 * transport), `Dropped-<n>` (pinned messages dropped: for a psock, those pinned to it;
 * for a socket, those it sent); the `mux` row adds `, Pinned <n>, Dropped <n>`.
 */
export function formatKcmTable(muxes: readonly Multiplexor[]): string {
  const lines = [`*** KCM statistics (${muxes.length} MUX) ****`, row(HEADERS)];
  for (const mux of muxes) {
    const s = mux.stats();
    let pinned = 0;
    for (const p of s.psocks) pinned += p.txPinnedMsgs;
    const beyond = pinned > 0 || s.txDropped > 0 ? `, Pinned ${pinned}, Dropped ${s.txDropped}` : '';
    lines.push(row(['mux', s.rxMsgs, s.rxBytes, s.txMsgs, s.txBytes, '-', '-', '-', '-', `KCMs: ${s.sockets.length}, Psocks ${s.psocks.length}${beyond}`]));
    for (const k of s.sockets) {
      const status: string[] = [];
      if (k.txPsock >= 0) status.push(`Psck-${k.txPsock}`);
      if (k.txWait) status.push('TxWait');
      if (k.batchPending) status.push('WMore');
      if (k.rxWait) status.push('RxWait');
      if (k.rxDisabled) status.push('RxDisabled');
      if (k.txDropped > 0) status.push(`Dropped-${k.txDropped}`);
      lines.push(row([`kcm-${k.index}`, k.rxMsgs, k.rxBytes, k.txMsgs, k.txBytes, k.rxQueued, k.rxQueuedBytes, k.txQueued, '-', status.join(' ')]));
    }
    for (const p of s.psocks) {
      const status: string[] = [];
      if (p.txStopped) status.push('TxStop');
      if (p.rxStopped) status.push('RxStop');
      if (p.reservedBy >= 0) status.push(`Rsvd-${p.reservedBy}`);
      if (p.rxPaused) status.push('RxPause', 'RdyRx');
      else if (p.rxPartialBytes > 0) status.push('RxWait');
      if (p.txPinnedQueued > 0) status.push(`PinQ-${p.txPinnedQueued}`);
      if (p.txPinnedMsgs > 0) status.push(`Pinned-${p.txPinnedMsgs}`);
      if (p.txDropped > 0) status.push(`Dropped-${p.txDropped}`);
      lines.push(row([`psock-${p.index}`, p.rxMsgs, p.rxBytes, p.txMsgs, p.txBytes, '-', '-', '-', p.txQueuedBytes, status.join(' ')]));
    }
  }
  return `${lines.join('\n')}\n`;
}
