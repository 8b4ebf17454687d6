#!/usr/bin/env node
/**
 * Runs a fabric in the foreground: `node dist/src/fabric/cli-entry.js '<json>'` (or `-`/nothing: the JSON on stdin,
 * which keeps keys out of the process list). The JSON is `{clusters: [...]}` or a list (see spec.ts). Prints one JSON
 * line per cluster once all listen — `{"name","kind":"openwhisk","url","namespace"}` or
 * `{"name","kind":"lambda","url","region"}` — then runs until SIGTERM/SIGINT and closes cleanly.
 * Exit codes: 0 after a signal, 2 bad description or busy port, 1 anything else.
 */
import { FabricConfigError } from './errors.js';
import { parseFabricSpec, startFabric } from './main.js';

async function readInput(arg: string | undefined): Promise<string> {
  if (arg !== undefined && arg !== '-') return arg;
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

async function main(): Promise<void> {
  const text = await readInput(process.argv[2]);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new FabricConfigError(`fabric spec is not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const fabric = await startFabric(parseFabricSpec(data), process.env);
  for (const c of fabric.clusters) {
    const line = c.kind === 'lambda' ? { name: c.name, kind: c.kind, url: c.url, region: c.region } : { name: c.name, kind: c.kind, url: c.url, namespace: c.namespace };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
    // --exit-with-parent: a fabric started for one keeper must not outlive it (even after a kill -9 of the keeper).
    if (process.argv.includes('--exit-with-parent')) {
      const parent = process.ppid;
      setInterval(() => {
        if (process.ppid !== parent) resolve();
      }, 500).unref();
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
