/**
 * The production PoolConnector: each pooled connection is one dial() (TCP or TLS 1.3 with
 * the node's certificate, then the handshake). The TLS material is read at every dial, so a
 * rotated certificate is used from the next pooled connection on.
 */
import type { LocalEndpoint } from '../protocol/handshake.ts';
import type { TlsMaterial } from '../security/tls.ts';
import { parseHostPort } from './address.ts';
import { dial } from './dial.ts';
import type { ConnectionOptions } from './options.ts';
import type { PoolConnector, PooledLink } from './pool.ts';

export interface DialPoolConnectorInit {
  local: LocalEndpoint;
  /** Current TLS material (null: --insecure), read at every dial. */
  tls(): TlsMaterial | null;
  options: ConnectionOptions;
}

export function dialPoolConnector(init: DialPoolConnectorInit): PoolConnector {
  return {
    async open(address, onClosed): Promise<PooledLink> {
      const connection = await dial({
        address: parseHostPort(address, 'peer address'),
        local: init.local,
        tls: init.tls(),
        options: init.options,
        hooks: { onClose: (_connection, error) => onClosed(error) },
      });
      return {
        request: (envelope, timeoutMs) => connection.request(envelope, timeoutMs),
        close: () => connection.close(),
        isOpen: () => connection.state === 'open',
      };
    },
  };
}
