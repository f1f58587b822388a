// Progress of a long job on stderr: a redrawn bar with an ETA on a terminal,
// one plain line per stage (and every ~10%) otherwise (logs, CI).
export interface ProgressEvent { stage: string; done: number; total: number }

function duration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  if (s < 60) return `${s.toFixed(0)}s`;
  const m = Math.floor(s / 60);
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function progressReporter(out: NodeJS.WriteStream, tty = Boolean(out.isTTY)): (p: ProgressEvent) => void {
  let stage = '', started = 0, lastTenth = -1;
  return ({ stage: s, done, total }) => {
    const now = performance.now();
    if (s !== stage) {
      if (tty && stage) out.write('\n');
      stage = s; started = now; lastTenth = -1;
      if (!tty) out.write(`[node-mamba] ${s}: started (${total} step${total === 1 ? '' : 's'})\n`);
    }
    const frac = total > 0 ? done / total : 1;
    const elapsed = (now - started) / 1000;
    const eta = done > 0 ? (elapsed / done) * (total - done) : Infinity;
    if (tty) {
      const width = 28, fill = Math.round(frac * width);
      out.write(`\r[node-mamba] ${s.padEnd(9)} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${done}/${total} ` +
        `${done === total ? `done in ${duration(elapsed)}` : `ETA ${duration(eta)}`}   `);
      if (done === total && s === 'write') out.write('\n');
    } else {
      const tenth = Math.floor(frac * 10);
      if (tenth > lastTenth && (tenth < 10 || done === total)) {
        lastTenth = tenth;
        out.write(`[node-mamba] ${s}: ${done}/${total}${done === total ? ` done in ${duration(elapsed)}` : `, ETA ${duration(eta)}`}\n`);
      }
    }
  };
}
