/**
 * Command-line parsing: `fedkeeper run|deploy|remove|start -c FILE`, and the seed's spellings
 * `fedkeeper -c FILE -d|-r|-s` (deploy / remove / start).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export type Command = 'run' | 'deploy' | 'remove' | 'start' | 'functions' | 'fabric' | 'package' | 'runs' | 'report' | 'help' | 'version';

export interface CliArgs {
  command: Command;
  config?: string;
  debug: boolean;
  /** `run|start --resume RUN_DIR` */
  resume?: string;
  /** `run|start --metrics [PORT]`: serve Prometheus metrics on 127.0.0.1:PORT (0: a free port). */
  metricsPort?: number;
  /** `run|start --ui [PORT]`: serve the live dashboard on 127.0.0.1:PORT (0: a free port). */
  uiPort?: number;
  /** `functions deploy|remove …` */
  functions?: { action: 'deploy' | 'remove'; scenario: string; functions: string[]; targets: 'all' | string[]; invoke: boolean };
  /** `package -c CONFIG [-f FN1,FN2] [-o DIR]` */
  package?: { functions: string[]; outDir?: string };
  /** `runs [rm RUN_ID…] [-c CONFIG | --store PATH|URL]` */
  runs?: { remove: string[] | undefined; store?: string };
  /** `report RUN_DIR [RUN_DIR …] [-o FILE]` */
  report?: { runDirs: string[]; output?: string };
}

export class UsageError extends Error {
  override name = 'UsageError';
  readonly exitCode = 2;
}

export const USAGE = `usage: fedkeeper <command> -c CONFIG [--debug]

commands:
  run        deploy the functions, run federated learning, write the run directory, remove the functions
             run|start --resume RUN_DIR [-c CONFIG] continues an interrupted run from its last completed round
             run|start --metrics [PORT] serves Prometheus metrics on http://127.0.0.1:PORT/metrics (default: a free port)
             run|start --ui [PORT] serves a live dashboard of the run on http://127.0.0.1:PORT/ (default: a free port)
  deploy     create the FL functions on every cluster of the config
  start      run federated learning on the deployed functions
  remove     delete the FL functions from every cluster of the config
  package    build the self-contained package of every function the config deploys, per platform kind, and
             print its size and sha256: package -c CONFIG [-f FN1,FN2] [-o DIR] (-o: copy the zips to DIR)
  runs       list the runs in the config's store (status, rounds, size, live keeper): runs [-c CONFIG | --store PATH|URL]
             (default store .fedkeeper/store.sqlite); runs rm RUN_ID… deletes runs whose keeper is not alive
  report     write one self-contained report.html (accuracy and loss per round, time split, client durations
             per platform:cluster, cold starts/failures/retries/dropped, the paper's curve for its setups):
             report RUN_DIR [RUN_DIR …] [-o FILE] (default: RUN_DIR/report.html for one run, ./report.html for several)
  fabric up  start the config's local OpenWhisk and Lambda clusters and keep them running (Ctrl-C stops them)
  functions deploy|remove -c CONFIG (-a | -p openwhisk:NAME,google:NAME) -s SCENARIO -f FN1,FN2 [--invoke]
             deploy or remove any function of a scenario on all or some clusters (the original deploy.py);
             --invoke calls each deployed function once and prints its answer (e.g. -s test -f nodeinfo)

The original FedKeeper's spellings work too: fedkeeper -c CONFIG -d | -r | -s  (deploy | remove | start).
Exit codes: 0 success, 2 bad input (config, arguments, data), 1 anything else.`;

const COMMANDS: readonly Command[] = ['run', 'deploy', 'remove', 'start', 'functions', 'fabric', 'package', 'runs', 'report', 'help'];

/** parseArgs with positionals, strict, its error turned into one usage line. */
function strictArgs<O extends ParseArgsConfig['options']>(args: string[], options: O) {
  try {
    return parseArgs({ args, allowPositionals: true, strict: true, options });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('\n')[0]} (see fedkeeper --help)`);
  }
}

function list(v: string | undefined): string[] {
  return (v ?? '').split(',').map((x) => x.trim()).filter(Boolean);
}

/** `functions deploy|remove …` and `fabric up …` have their own flags (-s is the scenario there, as in deploy.py). */
function parseSubcommand(command: 'functions' | 'fabric', argv: string[]): CliArgs {
  const parsed = strictArgs(argv, {
    config: { type: 'string', short: 'c' },
    all: { type: 'boolean', short: 'a' },
    providers: { type: 'string', short: 'p' },
    openwhisk: { type: 'string', short: 'o' },
    google: { type: 'string', short: 'g' },
    scenario: { type: 'string', short: 's' },
    functions: { type: 'string', short: 'f' },
    deploy: { type: 'boolean', short: 'd' },
    remove: { type: 'boolean', short: 'r' },
    invoke: { type: 'boolean' },
    debug: { type: 'boolean' },
  });
  const { values: v, positionals } = parsed;
  const debug = v.debug === true;
  if (!v.config) throw new UsageError(`${command} needs a config: fedkeeper ${command} ${command === 'fabric' ? 'up' : 'deploy'} -c CONFIG …`);
  if (command === 'fabric') {
    if (positionals.join(' ') !== 'up') throw new UsageError('usage: fedkeeper fabric up -c CONFIG');
    return { command, config: v.config, debug };
  }
  const verb = positionals[0] ?? (v.deploy ? 'deploy' : v.remove ? 'remove' : undefined);
  if (verb !== 'deploy' && verb !== 'remove') throw new UsageError('usage: fedkeeper functions deploy|remove -c CONFIG (-a | -p LIST) -s SCENARIO -f FN1,FN2');
  const picked = [...list(v.providers), ...list(v.openwhisk).map((n) => `openwhisk:${n}`), ...list(v.google).map((n) => `google:${n}`)];
  if (v.all && picked.length) throw new UsageError('choose -a (all clusters) or -p/-o/-g (some), not both');
  if (!v.all && !picked.length) throw new UsageError('name the clusters: -a for all, or -p openwhisk:NAME,google:NAME');
  if (!v.scenario) throw new UsageError('name the scenario whose functions to use: -s SCENARIO (e.g. -s test)');
  const fns = list(v.functions);
  if (!fns.length) throw new UsageError('name the functions: -f FN1,FN2 (e.g. -f nodeinfo)');
  if (v.invoke && verb === 'remove') throw new UsageError('--invoke goes with deploy');
  return { command, config: v.config, debug, functions: { action: verb, scenario: v.scenario, functions: fns, targets: v.all ? 'all' : picked, invoke: v.invoke === true } };
}

function parsePackage(argv: string[]): CliArgs {
  const { values: v, positionals } = strictArgs(argv, {
    config: { type: 'string', short: 'c' },
    functions: { type: 'string', short: 'f' },
    output: { type: 'string', short: 'o' },
    debug: { type: 'boolean' },
  });
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}" (usage: fedkeeper package -c CONFIG [-f FN1,FN2] [-o DIR])`);
  if (!v.config) throw new UsageError('package needs a config: fedkeeper package -c CONFIG [-f FN1,FN2] [-o DIR]');
  if (v.output !== undefined && !v.output.trim()) throw new UsageError('-o needs a directory: fedkeeper package -c CONFIG -o DIR');
  return { command: 'package', config: v.config, debug: v.debug === true, package: { functions: list(v.functions), ...(v.output ? { outDir: v.output } : {}) } };
}

function parseRuns(argv: string[]): CliArgs {
  const { values: v, positionals } = strictArgs(argv, {
    config: { type: 'string', short: 'c' },
    store: { type: 'string' },
    debug: { type: 'boolean' },
  });
  if (v.config !== undefined && v.store !== undefined) throw new UsageError('name the store once: -c CONFIG (its store) or --store PATH|URL, not both');
  if (v.store !== undefined && !v.store.trim()) throw new UsageError('--store needs a SQLite file path or a postgres:// URL');
  const common = { command: 'runs' as const, debug: v.debug === true, ...(v.config !== undefined ? { config: v.config } : {}) };
  const store = v.store !== undefined ? { store: v.store } : {};
  if (positionals.length === 0) return { ...common, runs: { remove: undefined, ...store } };
  if (positionals[0] !== 'rm') throw new UsageError(`unexpected argument "${positionals[0]}" (usage: fedkeeper runs [rm RUN_ID…] [-c CONFIG | --store PATH|URL])`);
  if (positionals.length === 1) throw new UsageError('name the runs to delete: fedkeeper runs rm RUN_ID… (fedkeeper runs lists them)');
  return { ...common, runs: { remove: positionals.slice(1), ...store } };
}

function parseReport(argv: string[]): CliArgs {
  const { values: v, positionals } = strictArgs(argv, {
    output: { type: 'string', short: 'o' },
    debug: { type: 'boolean' },
  });
  if (!positionals.length) throw new UsageError('report needs a run directory: fedkeeper report RUN_DIR [RUN_DIR …] [-o FILE]');
  if (v.output !== undefined && !v.output.trim()) throw new UsageError('-o needs a file: fedkeeper report RUN_DIR [RUN_DIR …] -o FILE');
  return { command: 'report', debug: v.debug === true, report: { runDirs: positionals, ...(v.output !== undefined ? { output: v.output } : {}) } };
}

export function parseCli(argv: string[]): CliArgs {
  if (argv[0] === 'functions' || argv[0] === 'fabric') return parseSubcommand(argv[0], argv.slice(1));
  if (argv[0] === 'package') return parsePackage(argv.slice(1));
  if (argv[0] === 'runs') return parseRuns(argv.slice(1));
  if (argv[0] === 'report') return parseReport(argv.slice(1));
  // --metrics and --ui take an optional port: a bare flag means a free one.
  for (const flag of ['--metrics', '--ui']) {
    const i = argv.indexOf(flag);
    if (i >= 0 && !/^\d+$/.test(argv[i + 1] ?? '')) argv = [...argv.slice(0, i + 1), '0', ...argv.slice(i + 1)];
  }
  const parsed = strictArgs(argv, {
    metrics: { type: 'string' },
    ui: { type: 'string' },
    config: { type: 'string', short: 'c' },
    deploy: { type: 'boolean', short: 'd' },
    remove: { type: 'boolean', short: 'r' },
    start: { type: 'boolean', short: 's' },
    resume: { type: 'string' },
    debug: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
    version: { type: 'boolean', short: 'V' },
  });
  const { values, positionals } = parsed;
  const debug = values.debug === true;
  if (values.help) return { command: 'help', debug };
  if (values.version) return { command: 'version', debug };
  const seedFlags = (['deploy', 'remove', 'start'] as const).filter((f) => values[f]);
  if (positionals.length > 1) throw new UsageError(`unexpected argument "${positionals[1]}" (see fedkeeper --help)`);
  let command: Command;
  if (positionals.length === 1) {
    const c = positionals[0] as Command;
    if (!COMMANDS.includes(c)) throw new UsageError(`unknown command "${positionals[0]}"; expected one of ${COMMANDS.join(', ')}`);
    if (seedFlags.length) throw new UsageError(`-${seedFlags[0]![0]} cannot be combined with the command "${c}"`);
    command = c;
  } else if (seedFlags.length === 1) {
    command = seedFlags[0]!;
  } else if (seedFlags.length > 1) {
    throw new UsageError(`choose one of -d, -r, -s (got ${seedFlags.map((f) => `-${f[0]}`).join(' ')})`);
  } else {
    return { command: 'help', debug };
  }
  if (command === 'help') return { command, debug };
  if (command === 'report') throw new UsageError('usage: fedkeeper report RUN_DIR [RUN_DIR …] [-o FILE] (the command first, then the run directories)');
  if (values.resume !== undefined && command !== 'run' && command !== 'start') throw new UsageError(`--resume goes with run or start, not ${command}`);
  const metrics: { metricsPort?: number; uiPort?: number } = {};
  for (const [flag, value, key] of [['--metrics', values.metrics, 'metricsPort'], ['--ui', values.ui, 'uiPort']] as const) {
    if (value === undefined) continue;
    if (command !== 'run' && command !== 'start') throw new UsageError(`${flag} goes with run or start, not ${command}`);
    const port = Number(value);
    if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new UsageError(`${flag} ${value}: expected a port 0–65535 (0 or none: a free port)`);
    metrics[key] = port;
  }
  if (values.resume !== undefined) return { command, ...(values.config ? { config: values.config } : {}), debug, resume: values.resume, ...metrics };
  if (!values.config) throw new UsageError(`${command} needs a config: fedkeeper ${command} -c CONFIG`);
  return { command, config: values.config, debug, ...metrics };
}
