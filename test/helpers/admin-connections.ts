/**
 * Connections to nodes as an operator (the `admin` client certificate), kept open per
 * address so tests can poll every few milliseconds over the binary protocol, as `rdbnet`
 * itself talks to nodes, without paying a CLI start-up per poll.
 */
import { loadClientCredentials } from '../../src/core/node/credentials.ts';
import { parseHostPort } from '../../src/core/transport/address.ts';
import type { Connection } from '../../src/core/transport/connection.ts';
import { dial } from '../../src/core/transport/dial.ts';
import { connectionOptions } from '../../src/core/transport/options.ts';

export function adminConnections(certsDir: () => string, timeoutMs = 1000) {
  const open = new Map<string, Connection>();
  return {
    async connection(address: string): Promise<Connection> {
      const existing = open.get(address);
      if (existing !== undefined && existing.state === 'open') return existing;
      const credentials = await loadClientCredentials(certsDir(), 'admin');
      const fresh = await dial({
        address: parseHostPort(address),
        local: {
          id: 'admin',
          clusterId: credentials.identity.cluster,
          role: 'client',
          softwareVersion: 'test',
        },
        tls: credentials.tls,
        options: connectionOptions({ handshakeTimeoutMs: timeoutMs, requestTimeoutMs: timeoutMs }),
      });
      open.set(address, fresh);
      return fresh;
    },
    closeAll(): void {
      for (const connection of open.values()) connection.close();
      open.clear();
    },
  };
}
