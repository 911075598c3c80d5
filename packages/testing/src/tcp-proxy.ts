/**
 * A TCP proxy a test can take down and bring back, to make Postgres or Redis "go away" for the
 * processes that reach it through the proxy without stopping the shared server (the idea of
 * Shopify's toxiproxy, for one process and no extra binary).
 *
 * - `down()`: destroys every open connection (clients see ECONNRESET) and refuses new ones
 *   (ECONNREFUSED), as when the server's host dies;
 * - `blackhole()`: the network path goes silent, as when a NAT or conntrack entry is lost: open
 *   connections stop carrying bytes either way (nothing is closed, nothing answers), and new
 *   connections are accepted but never answered;
 * - `up()`: accepts connections again on the same port (after `down()`), or forwards new
 *   connections again (after `blackhole()`). Connections that went silent stay silent on the
 *   client's side for ever — its own timeouts must notice — while their server side is closed, as
 *   the server's TCP keepalive would eventually do (here at once, so no server session lingers).
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
  /** See the module comment. */
  blackhole(): void;
  up(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Start a proxy to `target` (`host:port`) on a free local port.
 * @throws when the port cannot be bound.
 */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  /** Open client↔server pairs, for blackholing them. */
  const pairs = new Set<{ client: Socket; upstream: Socket | undefined }>();
  /** Client sockets that went silent: never answered again, closed only by `down()`/`close()`. */
  const silent = new Set<Socket>();
  let blackholed = false;
  let accepted = 0;
  let port = 0;
  let server: Server | undefined;

  const listen = async (): Promise<void> => {
    const s = createServer((client) => {
      accepted++;
      if (blackholed) {
        silence(client);
        return;
      }
      const upstream = connect(target.port, target.host);
      const pair = { client, upstream: upstream as Socket | undefined };
      pairs.add(pair);
      sockets.add(client).add(upstream);
      const drop = (): void => {
        if (silent.has(client)) return;
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
        pairs.delete(pair);
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

  /** Keep `client` open and read (and drop) whatever it sends; answer nothing. */
  const silence = (client: Socket): void => {
    silent.add(client);
    client.on('data', () => undefined).on('error', () => undefined).on('close', () => silent.delete(client));
  };

  const down = async (): Promise<void> => {
    const s = server;
    server = undefined;
    blackholed = false;
    for (const socket of [...sockets, ...silent]) socket.destroy();
    sockets.clear();
    silent.clear();
    pairs.clear();
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
    blackhole() {
      blackholed = true;
      for (const pair of pairs) {
        pair.client.unpipe();
        pair.upstream?.unpipe();
        pair.upstream?.on('data', () => undefined);
        silence(pair.client);
      }
    },
    async up() {
      if (blackholed) {
        blackholed = false;
        // The server side of every silent connection ends; the client side stays silent.
        for (const pair of pairs) {
          pair.upstream?.destroy();
          if (pair.upstream) sockets.delete(pair.upstream);
          sockets.delete(pair.client);
        }
        pairs.clear();
      }
      if (!server) await listen();
    },
    close: down,
  };
}
