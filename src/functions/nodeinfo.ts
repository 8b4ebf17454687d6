/**
 * nodeinfo: answers with the host it runs on (the seed's deploy.py test function), to check that a cluster of the
 * fabric works and to see what hardware each platform gives a function — and which training engine the platform
 * lets a package run (wasm with or without SIMD; native kernels only where a local platform hands them over).
 */
import os from 'node:os';
import { initEngine } from '../ml/index.js';

export async function handler(_params: Record<string, unknown>, ctx: { activationId?: string; functionName?: string }): Promise<Record<string, unknown>> {
  let engine: Record<string, unknown>;
  try {
    const e = await initEngine();
    engine = { engine: e.engine, simd: e.simd, engineThreads: e.threads, engineBlas: e.blas ?? null, engineFallback: e.nativeUnavailable ?? null };
  } catch (e) {
    engine = { engine: null, engineError: (e as Error).message };
  }
  return {
    hostname: os.hostname(),
    platform: process.platform,
    arch: os.arch(),
    release: os.release(),
    cores: os.availableParallelism(),
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryMb: Math.round(os.totalmem() / 2 ** 20),
    freeMemoryMb: Math.round(os.freemem() / 2 ** 20),
    node: process.version,
    pid: process.pid,
    uptimeS: Math.round(process.uptime()),
    activationId: ctx.activationId ?? null,
    ...engine,
  };
}
