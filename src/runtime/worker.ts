/**
 * A worker process: loads function modules on first use (cold start), runs one invocation at a time, replies over IPC.
 * A handler that throws is an application error; one that returns a non-object is a developer error (as OpenWhisk).
 */
import { pathToFileURL } from 'node:url';
import type { FunctionHandler, RunReply, RunRequest } from './protocol.js';

const loaded = new Map<string, FunctionHandler>();

function send(msg: RunReply): void {
  process.send!(msg);
}

async function load(req: RunRequest): Promise<{ handler: FunctionHandler; cold: boolean }> {
  const exportName = req.code.exportName ?? 'handler';
  const key = `${req.code.module}#${exportName}`;
  const hit = loaded.get(key);
  if (hit) return { handler: hit, cold: false };
  const url = req.code.module.startsWith('file:') ? req.code.module : pathToFileURL(req.code.module).href;
  const mod = (await import(url)) as Record<string, unknown>;
  const handler = mod[exportName];
  if (typeof handler !== 'function') throw new Error(`module ${req.code.module} has no exported function "${exportName}"`);
  loaded.set(key, handler as FunctionHandler);
  return { handler: handler as FunctionHandler, cold: true };
}

process.on('message', (req: RunRequest) => {
  if (req?.type !== 'run') return;
  void (async () => {
    let cold = false;
    try {
      const got = await load(req);
      cold = got.cold;
      const result = await got.handler(req.params, req.context);
      if (result === null || typeof result !== 'object' || Array.isArray(result)) {
        send({ type: 'done', taskId: req.taskId, coldStart: cold, outcome: 'developer error', result: { error: 'The action did not return a dictionary.' } });
        return;
      }
      send({ type: 'done', taskId: req.taskId, coldStart: cold, outcome: 'ok', result });
    } catch (e) {
      const err = e as Error & { code?: string; exitCode?: number };
      send({
        type: 'done',
        taskId: req.taskId,
        coldStart: cold,
        outcome: 'application error',
        result: { error: err?.message ?? String(e), errorName: err?.name, errorCode: err?.code ?? (err?.exitCode === 2 ? 'bad_input' : undefined) },
      });
    }
  })();
});

process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
