/**
 * What `node start` checks before it writes anything (issue 16, defect 3: validate, then
 * act): the listen port is free for TCP and gossip's UDP, and a given certificates directory
 * holds this node's CA, certificate and key. Without it a start on a port in use created a
 * data dir and certificates, then failed. The real bind can still lose a race to another
 * process; that fails as before, with the same message.
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { NodeConfig } from '../config/node-config.ts';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { certsPaths, readPem } from '../security/certs-dir.ts';
import { formatHostPort, type HostPort } from '../transport/address.ts';
import { loadNodeCredentials } from './credentials.ts';
import { NODE_RECORD_FILE_NAME, readNodeRecord } from './data-dir.ts';

export async function preflightNodeStart(config: NodeConfig): Promise<void> {
  await requirePortFree(config.listen);
  if (config.insecure || config.certsDirIsDefault) return; // zero-config creates what is missing
  const recorded = await readNodeRecord(join(config.dataDir, NODE_RECORD_FILE_NAME));
  const id = config.id ?? recorded?.id;
  if (id === undefined) {
    await readPem(
      certsPaths(config.certsDir).caCert,
      'CA certificate',
      "point --certs-dir (or RDBNET_CERTS_DIR) at the directory holding the cluster's ca.crt",
    );
    throw new RdbnetError(
      ErrorCode.Usage,
      `--certs-dir ${config.certsDir} without --id: a new node would get a random id, which has no certificate there`,
      { hint: 'pass --id with the id of a node.<id>.crt in that directory' },
    );
  }
  // Reads and checks the files (CA, node certificate, key, identity); writes nothing.
  await loadNodeCredentials({
    certsDir: config.certsDir,
    nodeId: id,
    createMissing: false,
    defaultCluster: config.cluster,
    hosts: [],
  });
}

/** Binds TCP and UDP on the listen address and lets go at once; port 0 is always free. */
async function requirePortFree(listen: HostPort): Promise<void> {
  if (listen.port === 0) return;
  const where = formatHostPort(listen);
  const refuse = (error: NodeJS.ErrnoException, what: string) =>
    new RdbnetError(
      ErrorCode.ConfigInvalid,
      `cannot listen on ${where} (${what}): ${error.message}`,
      {
        ...(error.code === 'EADDRINUSE'
          ? { hint: 'another process listens there; pick another --listen port' }
          : {}),
        cause: error,
      },
    );
  await new Promise<void>((resolve, reject) => {
    const server = createServer();
    server.once('error', (error) => reject(refuse(error, 'tcp')));
    server.listen({ host: listen.host, port: listen.port, exclusive: true }, () =>
      server.close(() => resolve()),
    );
  });
  await new Promise<void>((resolve, reject) => {
    const socket = createSocket(listen.host.includes(':') ? 'udp6' : 'udp4');
    socket.once('error', (error) => {
      socket.close();
      reject(refuse(error, 'udp, for gossip'));
    });
    socket.bind({ address: listen.host, port: listen.port, exclusive: true }, () =>
      socket.close(() => resolve()),
    );
  });
}
