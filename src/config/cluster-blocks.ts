/**
 * Two blocks of the seed's cluster config that any cluster (under any provider) may carry, read by the keeper (not
 * by the providers):
 *
 *   prometheus_config:                  the Prometheus servers that watch the cluster
 *     host: ""                          empty or absent: this machine (127.0.0.1); a host name, an IP, or http(s)://host
 *     port_openwhisk_metrics: "30325"   the Prometheus holding OpenWhisk's metrics (user-events names)
 *     port_node_metrics: "30471"        the Prometheus holding node-exporter's metrics (may be the same one)
 *     scrape_wait: 30s                  FedKeeper's: how long after a round a scrape newer than its end is waited for
 *   configurations:                     what the platform is, kept with the run (summary.json, the report)
 *     num_hosts, each_host_cores, each_host_ram, gpu_enabled, cuda_cores, platform, host_names, concurrency
 *
 * The seed writes empty strings for what it does not know (`each_host_cores: ""`): they count as absent.
 */
import { z } from 'zod';
import { describeValue } from './errors.js';
import { int, maybe, strict, withDefault } from './fields.js';
import { parseDurationMs, parseMemoryMB } from './units.js';
import type { ClusterConfigurations, PrometheusConfig } from './types.js';

/** `""` and null count as "not given" (the seed's way of leaving a value out). */
const blank = (v: unknown): unknown => (v === null || (typeof v === 'string' && v.trim() === '') ? undefined : v);
const optional = <T extends z.ZodType>(schema: T) => z.preprocess(blank, schema.optional());

const port = () => optional(int((n) => n.min(1).max(65535)));

/** A host name, an IPv4/IPv6 address, or an http(s) URL with no path; returned as the URL base to query. */
const prometheusHost = () =>
  z.preprocess(
    blank,
    z
      .unknown()
      .optional()
      .transform((v, ctx) => {
        if (v === undefined) return 'http://127.0.0.1';
        if (typeof v === 'string') {
          const t = v.trim();
          const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(t) ? t : `http://${/^[0-9a-f:]+$/i.test(t) && t.includes(':') ? `[${t}]` : t}`;
          try {
            const u = new URL(withScheme);
            if ((u.protocol === 'http:' || u.protocol === 'https:') && !u.port && (u.pathname === '/' || u.pathname === '') && !u.search && !u.username) {
              return `${u.protocol}//${u.hostname}`;
            }
          } catch {
            // reported below
          }
        }
        ctx.addIssue({
          code: 'custom',
          message: `expected the host of the Prometheus servers (a name or an IP such as 10.0.0.5, or http(s)://host, without a port: the ports are port_openwhisk_metrics and port_node_metrics; empty for this machine), found ${describeValue(v)}`,
        });
        return z.NEVER;
      }),
  );

/** A wait: a duration ("30s", 30000 ms) or 0 for none. */
const waitMs = () =>
  z.unknown().transform((v, ctx) => {
    if (v === 0 || v === '0') return 0;
    const ms = parseDurationMs(v);
    if (ms !== undefined) return ms;
    ctx.addIssue({ code: 'custom', message: `expected a duration such as "30s" or 30000 (ms), or 0 not to wait, found ${describeValue(v)}` });
    return z.NEVER;
  });

/** How long the keeper waits, after a round, for a scrape newer than the round's end (see telemetry/prometheus-rounds.ts). */
export const DEFAULT_SCRAPE_WAIT_MS = 30_000;

export const PrometheusConfigSchema = strict({
  host: prometheusHost(),
  port_openwhisk_metrics: port(),
  port_node_metrics: port(),
  scrape_wait: withDefault(waitMs(), DEFAULT_SCRAPE_WAIT_MS),
}).transform((p, ctx): PrometheusConfig => {
  if (p.port_openwhisk_metrics === undefined && p.port_node_metrics === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['port_openwhisk_metrics'],
      message: 'expected port_openwhisk_metrics or port_node_metrics (the port of a Prometheus server on host), found neither; add one, or remove prometheus_config',
    });
    return z.NEVER;
  }
  return {
    host: p.host,
    ...(p.port_openwhisk_metrics !== undefined ? { port_openwhisk_metrics: p.port_openwhisk_metrics } : {}),
    ...(p.port_node_metrics !== undefined ? { port_node_metrics: p.port_node_metrics } : {}),
    scrape_wait: p.scrape_wait,
  };
});

const flag = () =>
  optional(
    z.preprocess((v) => (typeof v === 'string' && /^(true|false|yes|no)$/i.test(v.trim()) ? /^(true|yes)$/i.test(v.trim()) : v), z.boolean()),
  );

/** A memory size kept as written ("755gb"), checked to be one. */
const ramText = () =>
  optional(
    z.unknown().transform((v, ctx) => {
      if (parseMemoryMB(v) !== undefined) return typeof v === 'number' ? `${v}MB` : String(v).trim();
      ctx.addIssue({ code: 'custom', message: `expected a memory size such as "755gb" or "64GB" (a bare number is MB), found ${describeValue(v)}` });
      return z.NEVER;
    }),
  );

const names = () =>
  optional(
    z.preprocess(
      (v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : typeof v === 'number' ? [String(v)] : v),
      z.array(z.preprocess((x) => (typeof x === 'number' ? String(x) : x), z.string().min(1))).min(1),
    ),
  );

export const ConfigurationsSchema = strict({
  num_hosts: optional(int((n) => n.min(1))),
  each_host_cores: optional(int((n) => n.min(1))),
  each_host_ram: ramText(),
  gpu_enabled: flag(),
  cuda_cores: optional(int((n) => n.min(0))),
  platform: optional(z.preprocess((v) => (typeof v === 'number' ? String(v) : v), z.string().min(1))),
  host_names: names(),
  concurrency: optional(int((n) => n.min(1))),
}).transform((c): ClusterConfigurations => Object.fromEntries(Object.entries(c).filter(([, v]) => v !== undefined)) as ClusterConfigurations);

/** The two blocks, for the cluster schemas of schema.ts to carry (`maybe`: absent or empty is no block). */
export const clusterBlockShape = {
  prometheus_config: maybe(PrometheusConfigSchema),
  configurations: maybe(ConfigurationsSchema),
};

/** Every cluster's `configurations`, keyed "platform:cluster" (summary.json `configurations`); empty without any. */
export function clusterConfigurations(providers: Record<string, unknown>): Record<string, ClusterConfigurations> {
  const out: Record<string, ClusterConfigurations> = {};
  for (const [platform, clusters] of Object.entries(providers)) {
    for (const [cluster, block] of Object.entries((clusters ?? {}) as Record<string, { configurations?: ClusterConfigurations }>)) {
      if (block?.configurations && Object.keys(block.configurations).length) out[`${platform}:${cluster}`] = block.configurations;
    }
  }
  return out;
}
