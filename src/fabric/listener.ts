/**
 * The listening side of a local platform's API server, shared by every kind of cluster: listen, stop listening
 * (cutting every connection), and controller outages — windows, in ms after the server first listened, during which
 * the server does not listen (connections are refused), then listens again on the same host and port.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { OutageWindow } from './profiles.js';

/** Outage counters of one cluster. */
export interface OutageCounts {
  /** Outage windows begun. */
  outages: number;
  /** Connections open when an outage began, cut by it (refused connection attempts are not countable: nothing listens). */
  outage_cut_connections: number;
}

/** The server's open connections, kept up to date. */
export function trackConnections(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  return sockets;
}

/** server.close, cutting every connection (idle or not): resolves once the server is closed. */
export function stopListening(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeAllConnections();
  return closed;
}

const RELISTEN_RETRY_MS = 100;

/**
 * Timers for the outage windows, relative to now. Transitions run one after the other; stop() cancels what has not
 * begun and waits for a transition under way (a relisten that keeps failing, e.g. the port was taken meanwhile, is
 * retried every RELISTEN_RETRY_MS until it succeeds or the server is closed).
 */
export function scheduleOutages(
  server: Server,
  host: string,
  port: number,
  windows: readonly OutageWindow[],
  counts: OutageCounts,
  sockets: Set<Socket>,
  isClosing: () => boolean,
): { stop(): Promise<void> } {
  const timers: NodeJS.Timeout[] = [];
  let chain = Promise.resolve();
  const then = (step: () => Promise<void>) => {
    chain = chain.then(() => (isClosing() ? undefined : step())).catch(() => {});
  };
  const down = async () => {
    counts.outages++;
    counts.outage_cut_connections += sockets.size;
    await stopListening(server);
  };
  const up = async () => {
    while (!isClosing()) {
      try {
        await listen(server, host, port);
        return;
      } catch {
        await new Promise((r) => setTimeout(r, RELISTEN_RETRY_MS));
      }
    }
  };
  for (const w of windows) {
    timers.push(setTimeout(() => then(down), w.startMs));
    timers.push(setTimeout(() => then(up), w.startMs + w.durationMs));
  }
  return {
    stop: async () => {
      for (const t of timers) clearTimeout(t);
      await chain;
    },
  };
}

export function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

