/**
 * The OpenWhisk entry wrapper (design §2: one thin entry wrapper per platform), bundled into every `nodejs:20`
 * package: `exports.main = async (params) => result`. The activation's id and deadline come from the `__OW_*`
 * variables OpenWhisk's Node.js runtime sets for each activation; they are read before the first await, because
 * with intra-container concurrency another activation may overwrite them (process.env is process-global).
 */
import type { FunctionHandler } from '../types.js';
import { errorResult } from './errors.js';

export type OpenWhiskMain = (params: Record<string, unknown>) => Promise<Record<string, unknown>>;

export function openwhiskMain(functionName: string, handler: FunctionHandler): OpenWhiskMain {
  return async (params) => {
    const context = {
      activationId: process.env.__OW_ACTIVATION_ID ?? '',
      functionName,
      deadline: Number(process.env.__OW_DEADLINE) || Date.now() + 300_000,
    };
    try {
      return await handler(params ?? {}, context);
    } catch (e) {
      return errorResult(e);
    }
  };
}
