/**
 * Progress on the console. On a terminal, one live line per round — clients done of selected, per platform:cluster
 * when the round spans several, failures, re-invocations, seconds elapsed, accuracy so far — redrawn as clients end
 * and once a second, that becomes a permanent line when the round ends; elsewhere (pipes, CI logs) one plain line
 * per round.
 */
import type { ProgressEvent } from '../keeper/keeper.js';
import { formatSize } from '../packaging/index.js';

export function consoleProgress(out: NodeJS.WriteStream = process.stdout, now: () => number = Date.now): (e: ProgressEvent) => void {
  const tty = out.isTTY === true;
  // The round being drawn on a terminal: what each cluster has of it, what has ended, when it began.
  let state: { round: number; selected: number; done: number; failed: number; retries: number; started: number; clusters: Record<string, number>; ended: Record<string, number> } | undefined;
  let ticker: NodeJS.Timeout | undefined;
  const stopTicker = () => {
    if (ticker) clearInterval(ticker);
    ticker = undefined;
  };
  const draw = () => {
    if (!state) return;
    const names = Object.keys(state.clusters).sort();
    const per = names.length > 1 ? ` (${names.map((n) => `${n} ${state!.ended[n] ?? 0}/${state!.clusters[n]}`).join(', ')})` : '';
    const extra = `${state.failed ? `  ${state.failed} failed` : ''}${state.retries ? `  ${state.retries} re-invoked` : ''}`;
    live(`round ${state.round}/${maxRounds}  clients ${state.done}/${state.selected}${per}${extra}  ${((now() - state.started) / 1000).toFixed(0)} s  ${acc()}`);
  };
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
        maxRounds = e.maxRounds;
        state = { round: e.round, selected: e.selected, done: 0, failed: 0, retries: 0, started: now(), clusters: { ...e.clusters }, ended: {} };
        if (tty) {
          draw();
          stopTicker();
          ticker = setInterval(draw, 1000);
          ticker.unref();
        }
        break;
      case 'client_done':
        if (state && state.round === e.round) {
          state.done = e.done;
          state.failed = e.failed;
          state.retries = e.retries;
          state.ended[e.where] = (state.ended[e.where] ?? 0) + 1;
          if (tty) draw();
        }
        break;
      case 'round_done':
        last = e.accuracy;
        best = e.best;
        state = undefined;
        stopTicker();
        if (tty) out.write('\r\x1b[2K');
        out.write(`round ${e.round}/${e.maxRounds}  accuracy ${e.accuracy.toFixed(4)}  loss ${e.loss.toFixed(4)}  best ${e.best.toFixed(4)}  ${e.totalSeconds.toFixed(1)} s\n`);
        break;
    }
  };
}
