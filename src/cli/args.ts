/**
 * Command-line parsing: `fedkeeper run|deploy|remove|start -c FILE`, and the seed's spellings
 * `fedkeeper -c FILE -d|-r|-s` (deploy / remove / start).
 */
import { parseArgs } from 'node:util';

export type Command = 'run' | 'deploy' | 'remove' | 'start' | 'help' | 'version';

export interface CliArgs {
  command: Command;
  config?: string;
  debug: boolean;
}

export class UsageError extends Error {
  override name = 'UsageError';
  readonly exitCode = 2;
}

export const USAGE = `usage: fedkeeper <command> -c CONFIG [--debug]

commands:
  run      deploy the functions, run federated learning, write the run directory, remove the functions
  deploy   create the FL functions on every cluster of the config
  start    run federated learning on the deployed functions
  remove   delete the FL functions from every cluster of the config

The original FedKeeper's spellings work too: fedkeeper -c CONFIG -d | -r | -s  (deploy | remove | start).
Exit codes: 0 success, 2 bad input (config, arguments, data), 1 anything else.`;

const COMMANDS: readonly Command[] = ['run', 'deploy', 'remove', 'start', 'help'];

export function parseCli(argv: string[]): CliArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        deploy: { type: 'boolean', short: 'd' },
        remove: { type: 'boolean', short: 'r' },
        start: { type: 'boolean', short: 's' },
        debug: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    });
  } catch (e) {
    throw new UsageError(`${(e as Error).message.split('\n')[0]} (see fedkeeper --help)`);
  }
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
  if (!values.config) throw new UsageError(`${command} needs a config: fedkeeper ${command} -c CONFIG`);
  return { command, config: values.config, debug };
}
