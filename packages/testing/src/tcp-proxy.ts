/**
 * A TCP proxy a test can take down and bring back, to make Postgres or Redis "go away" for the
 * processes that reach it through the proxy without stopping the shared server (the idea of
 * Shopify's toxiproxy, for one process and no extra binary).
 *
 * - `down()`: destroys every open connection (clients see ECONNRESET) and refuses new ones
 *   (ECONNREFUSED), as when the server's host dies;
 * - `up()`: accepts connections again on the same port.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** A running proxy; see the module comment. */
export interface TcpProxy {
  /** The port clients connect to (127.0.0.1). */
  readonly port: number;
  /** `url` with its host and port replaced by the proxy's, e.g. a `postgres://` or `redis://` URL. */
  rewrite(url: string): string;
  /** Connections accepted so far. */
  readonly connectionsAccepted: number;
  /** Open client connections now. */
  readonly openConnections: number;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Start a proxy to `target` (`host:port`) on a free local port.
 * @throws when the port cannot be bound.
 */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let port = 0;
  let server: Server | undefined;

  const listen = async (): Promise<void> => {
    const s = createServer((client) => {
      accepted++;
      const upstream = connect(target.port, target.host);
      sockets.add(client).add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    port = (s.address() as AddressInfo).port;
    server = s;
  };

  const down = async (): Promise<void> => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  await listen();
  return {
    get port() {
      return port;
    },
    rewrite(url: string): string {
      const u = new URL(url);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    get connectionsAccepted() {
      return accepted;
    },
    get openConnections() {
      return [...sockets].length / 2;
    },
    down,
    async up() {
      if (!server) await listen();
    },
    close: down,
  };
}
