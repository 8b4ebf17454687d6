#!/usr/bin/env node
/** The `fedkeeper` command: parse arguments, load the config, call the keeper, turn errors into one line + exit code. */
import { createRequire } from 'node:module';
import { loadConfig } from '../config/index.js';
import { exitCodeOf } from '../keeper/errors.js';
import { fabricUp } from './fabric-up.js';
import { runFunctionsCommand } from '../keeper/functions-command.js';
import { packageCommand } from '../keeper/package-command.js';
import { DEFAULT_STORE, listRunsCommand, removeRunsCommand, storeOfConfig, storeSpecOf } from '../keeper/runs-command.js';
import { Keeper, type ProgressEvent } from '../keeper/keeper.js';
import { consoleProgress } from '../telemetry/progress.js';
import { RunMetrics, serveMetrics, type MetricsServer } from '../telemetry/metrics.js';
import { LiveDashboard } from '../telemetry/live.js';
import { writeReport } from '../report/index.js';
import { parseCli, USAGE, UsageError, type CliArgs } from './args.js';
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** The config file a run was started with (its run.json), for `--resume DIR` without -c. */
function configOfRun(dir: string): string {
  let info: { config_file?: string | null };
  try {
    info = JSON.parse(readFileSync(path.join(dir, 'run.json'), 'utf8'));
  } catch {
    throw new UsageError(`--resume ${dir}: no readable run.json there; is it a run directory?`);
  }
  if (!info.config_file) throw new UsageError(`--resume ${dir}: run.json does not name the config file; pass it with -c CONFIG`);
  return info.config_file;
}

async function main(argv: string[]): Promise<number> {
  let args: CliArgs = { command: 'help', debug: argv.includes('--debug') };
  let keeper: Keeper | undefined;
  let metricsServer: MetricsServer | undefined;
  let dashboard: LiveDashboard | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nfedkeeper: ${sig} received, stopping\n`);
    void (keeper ? keeper.interrupt().finally(() => keeper!.close()) : Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    args = parseCli(argv);
    if (args.command === 'help') {
      process.stdout.write(USAGE + '\n');
      return 0;
    }
    if (args.command === 'version') {
      process.stdout.write(createRequire(import.meta.url)('../../../package.json').version + '\n');
      return 0;
    }
    if (args.command === 'runs') {
      const spec = args.runs!.store !== undefined ? storeSpecOf(args.runs!.store, '--store') : args.config ? storeOfConfig(await loadConfig(args.config)) : { type: 'sqlite' as const, path: path.resolve(DEFAULT_STORE) };
      const hint = args.config || args.runs!.store ? 'check the path' : 'name one with -c CONFIG or --store PATH|URL';
      const lines = args.runs!.remove ? await removeRunsCommand(spec, args.runs!.remove, hint) : await listRunsCommand(spec, hint);
      for (const l of lines) process.stdout.write(`${l}\n`);
      return 0;
    }
    if (args.command === 'report') {
      process.stdout.write(`report: ${writeReport(args.report!.runDirs, args.report!.output)}\n`);
      return 0;
    }
    const cfg = await loadConfig(args.config ?? configOfRun(args.resume!));
    if (args.command === 'functions') {
      await runFunctionsCommand(
        cfg,
        args.functions!,
        '.fedkeeper',
        (o) => {
          if (o.action !== 'invoked') process.stdout.write(`${o.action} ${o.target}/${o.function}\n`);
          else process.stdout.write(`invoked ${o.target}/${o.function} activation ${o.activationId}: ${o.status} in ${o.seconds!.toFixed(3)} s ${JSON.stringify(o.result)}\n`);
        },
        (line) => process.stdout.write(`${line}\n`),
      );
      return 0;
    }
    if (args.command === 'fabric') return await fabricUp(cfg);
    if (args.command === 'package') {
      for (const line of await packageCommand(cfg, args.package!.functions, '.fedkeeper', args.package!.outDir)) process.stdout.write(`${line}\n`);
      return 0;
    }
    let metrics: RunMetrics | undefined;
    if (args.metricsPort !== undefined) {
      metrics = new RunMetrics();
      try {
        metricsServer = await serveMetrics(metrics, args.metricsPort);
      } catch (e) {
        throw new UsageError(`--metrics ${args.metricsPort}: cannot listen on 127.0.0.1:${args.metricsPort} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); choose another port, or none for a free one`);
      }
      process.stdout.write(`metrics: ${metricsServer.url}\n`);
    }
    if (args.uiPort !== undefined) {
      const d = new LiveDashboard();
      try {
        process.stdout.write(`dashboard: ${await d.listen(args.uiPort)}\n`);
      } catch (e) {
        throw new UsageError(`--ui ${args.uiPort}: cannot listen on 127.0.0.1:${args.uiPort} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); choose another port, or none for a free one`);
      }
      dashboard = d;
    }
    const onConsole = consoleProgress();
    const onProgress = dashboard ? (e: ProgressEvent) => (onConsole(e), dashboard!.observe(e)) : onConsole;
    keeper = await Keeper.open(cfg, { onProgress, configFile: args.config ?? configOfRun(args.resume!), ...(metrics ? { metrics } : {}) });
    switch (args.command) {
      case 'deploy':
        for (const f of await keeper.deploy()) process.stdout.write(`deployed ${f}\n`);
        break;
      case 'remove':
        for (const f of await keeper.remove()) process.stdout.write(`removed ${f}\n`);
        break;
      case 'start':
      case 'run': {
        const s = args.command === 'run' ? await keeper.run(args.resume) : await keeper.start(args.resume);
        process.stdout.write(
          `${s.reached_target ? 'reached' : 'did not reach'} target accuracy ${s.target_accuracy}: ` +
            `final ${s.final_accuracy?.toFixed(4)} after ${s.rounds} round(s) in ${s.wall_s.toFixed(1)} s\n` +
            `results: ${s.run_dir}\n`,
        );
        // The report is a view of the run directory: one that cannot be written is a warning, never a failed run.
        let report: string | undefined;
        try {
          report = writeReport([s.run_dir]);
          process.stdout.write(`report: ${report}\n`);
        } catch (e) {
          process.stderr.write(`fedkeeper: warning: report not written: ${(e as Error).message.split('\n')[0]}\n`);
        }
        await dashboard?.finish(s.status === 'completed' ? 'completed' : s.status === 'stopped' ? 'stopped' : 'failed', { ...(report ? { report } : {}), ...(typeof s.error === 'string' ? { error: s.error } : {}) });
        break;
      }
    }
    return 0;
  } catch (e) {
    const err = e as Error;
    if (args.debug) process.stderr.write(`${err.stack ?? err}\n`);
    process.stderr.write(`fedkeeper: error: ${err.message.split('\n')[0]}\n`);
    await dashboard?.finish('failed', { error: err.message.split('\n')[0]! }).catch(() => undefined);
    return exitCodeOf(e);
  } finally {
    await keeper?.close();
    await metricsServer?.close();
    await dashboard?.close();
  }
}

// `fedkeeper … | head`: a closed pipe ends output quietly, it is not a crash.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw e;
});

process.exitCode = await main(process.argv.slice(2));
