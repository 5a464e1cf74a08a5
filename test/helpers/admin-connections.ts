/**
 * Clients of nodes as an operator (the `admin` client certificate), kept open per address so
 * tests can poll every few milliseconds over the binary protocol, as `rdbnet` itself talks
 * to nodes (NodeClient), without paying a CLI start-up per poll.
 */
import { NodeClient, operatorDialInit } from '../../src/core/client/node-client.ts';
import { parseHostPort } from '../../src/core/transport/address.ts';

export function adminConnections(certsDir: () => string, timeoutMs = 1000) {
  const open = new Map<string, NodeClient>();
  return {
    /** The open client of the node at `address`, dialled again when it closed. */
    async client(address: string): Promise<NodeClient> {
      const existing = open.get(address);
      if (existing?.isOpen) return existing;
      const fresh = await NodeClient.connect(
        await operatorDialInit({
          address: parseHostPort(address),
          certsDir: certsDir(),
          clientName: 'admin',
          insecure: false,
          timeoutMs,
          softwareVersion: 'test',
        }),
      );
      open.set(address, fresh);
      return fresh;
    },
    closeAll(): void {
      for (const client of open.values()) client.close();
      open.clear();
    },
  };
}
