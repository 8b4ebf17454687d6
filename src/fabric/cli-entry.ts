#!/usr/bin/env node
/**
 * Runs a fabric in the foreground: `node dist/src/fabric/cli-entry.js '<json>'` (or `-`/nothing: the JSON on stdin,
 * which keeps keys out of the process list). The JSON is `{clusters: [...]}` or a list (see spec.ts). Prints one JSON
 * line per cluster once all listen — `{"name","kind":"openwhisk","url","namespace"}` or
 * `{"name","kind":"lambda","url","region"}` — then runs until SIGTERM/SIGINT and closes cleanly.
 *
 * `--exit-with-keepers` (a fabric started for keepers, keeper/fabric-launcher.ts): the fabric also stops on its own
 * once no keeper uses it. Its parent (the keeper that started it) is registered from the start; other keepers that
 * reuse it register their pids at a cluster's keepers route (main.ts). It stops as soon as the last registered keeper
 * leaves (`DELETE …/keepers/PID`), or within ~500 ms once every registered keeper is dead (the parent counts as dead
 * once this process has another parent), even after a `kill -9` of all of them. Its parent may leave and go while
 * others still use it: writes to the stdout/stderr pipes nobody reads any more (EPIPE) are dropped, not fatal.
 *
 * Exit codes: 0 after a signal or once no keeper uses it, 2 bad description or busy port, 1 anything else.
 */
import { FabricConfigError } from './errors.js';
import { FabricKeepers, parseFabricSpec, startFabric } from './main.js';

const KEEPER_POLL_MS = 500;

async function readInput(arg: string | undefined): Promise<string> {
  if (arg !== undefined && arg !== '-' && !arg.startsWith('--')) return arg;
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

/** A write to a pipe whose reader is gone fails with EPIPE: it is dropped (as are later ones) instead of killing the fabric. */
function tolerateClosedPipes(): void {
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
}

async function main(): Promise<void> {
  tolerateClosedPipes();
  const text = await readInput(process.argv[2]);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new FabricConfigError(`fabric spec is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const forKeepers = process.argv.includes('--exit-with-keepers');
  const parent = process.ppid;
  const keepers = new FabricKeepers();
  if (forKeepers) keepers.register(parent);
  const fabric = await startFabric(parseFabricSpec(data), process.env, { keepers });
  for (const c of fabric.clusters) {
    const line = c.kind === 'lambda' ? { name: c.name, kind: c.kind, url: c.url, region: c.region } : { name: c.name, kind: c.kind, url: c.url, namespace: c.namespace };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
  await new Promise<void>((resolve) => {
    const stop = () => {
      keepers.stop(); // registrations from now on are refused: the keeper starts a fabric of its own
      setImmediate(resolve); // after the answer to the request that made it stop (a leave) has been written
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    if (forKeepers) {
      const check = () => {
        if (keepers.stopping) return;
        if (process.ppid !== parent) keepers.forget(parent);
        if (keepers.live().length === 0) stop();
      };
      keepers.onChange(check);
      setInterval(check, KEEPER_POLL_MS).unref();
    }
  });
  await fabric.close();
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`fedkeeper fabric: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(e instanceof FabricConfigError ? 2 : 1);
  },
);
