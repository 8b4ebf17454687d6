/**
 * Progress on the console. On a terminal, one live line per round (clients done of selected, accuracy so far)
 * that becomes a permanent line when the round ends; elsewhere (pipes, CI logs) one line per round.
 */
import type { ProgressEvent } from '../keeper/keeper.js';
import { formatSize } from '../packaging/index.js';

export function consoleProgress(out: NodeJS.WriteStream = process.stdout): (e: ProgressEvent) => void {
  const tty = out.isTTY === true;
  let best: number | null = null;
  let last: number | null = null;
  let maxRounds = 0;
  const acc = () => (last === null ? 'acc —' : `acc ${last.toFixed(4)} (best ${best!.toFixed(4)})`);
  const live = (text: string) => {
    if (tty) out.write(`\r\x1b[2K${text}`);
  };
  return (e) => {
    switch (e.kind) {
      case 'packaged':
        out.write(`package ${e.functionName} (${e.target}): ${formatSize(e.size)}, sha256 ${e.sha256.slice(0, 16)}…${e.reused ? ' (unchanged, reused)' : ''}\n`);
        break;
      case 'warning':
        process.stderr.write(`fedkeeper: warning: ${e.message}\n`);
        break;
      case 'functions_kept':
        out.write(`left deployed, still in use by ${e.users}: ${e.functions.join(', ')}\n`);
        break;
      case 'run_started':
        maxRounds = e.maxRounds;
        out.write(`run ${e.runId}: up to ${e.maxRounds} rounds, ${e.clientsPerRound} clients per round\n`);
        break;
      case 'init_done':
        out.write(`init done in ${e.seconds.toFixed(1)} s (engine ${e.engine})\n`);
        break;
      case 'round_started':
        live(`round ${e.round}/${e.maxRounds}  clients 0/${e.selected}  ${acc()}`);
        break;
      case 'client_done':
        live(`round ${e.round}/${maxRounds}  clients ${e.done}/${e.selected}${e.failed ? ` (${e.failed} failed)` : ''}  ${acc()}`);
        break;
      case 'round_done':
        last = e.accuracy;
        best = e.best;
        if (tty) out.write('\r\x1b[2K');
        out.write(`round ${e.round}/${e.maxRounds}  accuracy ${e.accuracy.toFixed(4)}  loss ${e.loss.toFixed(4)}  best ${e.best.toFixed(4)}  ${e.totalSeconds.toFixed(1)} s\n`);
        break;
    }
  };
}
