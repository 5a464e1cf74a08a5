/**
 * TLS 1.3 session resumption skips certificate verification callbacks such as
 * checkServerIdentity, so identity and revocation must be checked on every connection,
 * resumed or not. These tests resume a real session and check that the node still applies
 * its revocation list to it.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { ErrorCode, RdbnetError } from '../../src/core/errors.ts';
import { Codec, encodeFrame, FrameKind, makeFlags } from '../../src/core/protocol/frame.ts';
import { makeHello } from '../../src/core/protocol/handshake.ts';
import { decodeEnvelope, encodeEnvelope } from '../../src/core/protocol/messages.ts';
import {
  createCertificateAuthority,
  issueClientCertificate,
  issueNodeCertificate,
} from '../../src/core/security/pki.ts';
import { isRevoked, normalizeSerial } from '../../src/core/security/revocations.ts';
import { connectionOptions } from '../../src/core/transport/options.ts';
import { TransportServer } from '../../src/core/transport/server.ts';

const CLUSTER = 'resume';
const ca = createCertificateAuthority({ cluster: CLUSTER });
const node = issueNodeCertificate({ ca, cluster: CLUSTER, nodeId: 'n1', hosts: ['127.0.0.1'] });
const client = issueClientCertificate({ ca, cluster: CLUSTER, name: 'ops' });
const revoked = new Set<string>();
let server: TransportServer;
let port = 0;

before(async () => {
  server = new TransportServer({
    local: { id: 'n1', clusterId: CLUSTER, role: 'node', softwareVersion: 'test' },
    tls: { ca: ca.certPem, cert: node.certPem, key: node.keyPem },
    options: connectionOptions(),
    connectionsMax: 16,
    handler: () => ({ statusRequest: {} }),
    admit: (certificate) => {
      if (isRevoked(revoked, certificate.serialNumber)) {
        throw new RdbnetError(
          ErrorCode.CertificateRevoked,
          `serial ${certificate.serialNumber} is revoked`,
        );
      }
    },
  });
  ({ port } = await server.listen('127.0.0.1', 0));
});

after(() => server.close(100));

interface Outcome {
  reused: boolean;
  session: Buffer | undefined;
  /** Kind and error code of the first frame the node sent, if any. */
  reply: { kind: number; code: string | undefined } | null;
}

/** Connects (optionally resuming `session`), sends a Hello, and reports the node's answer. */
function attempt(session?: Buffer): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    let saved: Buffer | undefined;
    let reused = false;
    let buffered = Buffer.alloc(0);
    const socket: TLSSocket = connectTls({
      host: '127.0.0.1',
      port,
      ca: ca.certPem,
      cert: client.certPem,
      key: client.keyPem,
      minVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined,
      ...(session === undefined ? {} : { session }),
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer within 5 s'));
    }, 5000);
    let reply: Outcome['reply'] = null;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ reused, session: saved, reply });
    };
    socket.on('session', (ticket: Buffer) => {
      saved = ticket;
    });
    socket.on('secureConnect', () => {
      // Read now: once the node closes the socket, Node no longer knows.
      reused = socket.isSessionReused();
      const hello = makeHello({
        id: 'ops',
        clusterId: CLUSTER,
        role: 'client',
        softwareVersion: 't',
      });
      socket.write(
        encodeFrame(makeFlags(FrameKind.Request, Codec.None, false), 0, encodeEnvelope({ hello })),
      );
    });
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4 || buffered.length < 4 + buffered.readUInt32BE(0)) return;
      const kind = buffered.readUInt16BE(4) & 0b11;
      const decoded = decodeEnvelope(buffered.subarray(14, 4 + buffered.readUInt32BE(0)));
      const code = decoded.kind === 'error' ? (decoded.body as { code: string }).code : undefined;
      reply = { kind, code };
      // Give the session ticket, which arrives after the handshake, a moment to land.
      setTimeout(finish, 50);
    });
    socket.on('error', finish);
    socket.on('close', finish);
  });
}

test('a resumed TLS 1.3 session is admitted like a fresh one', async () => {
  const first = await attempt();
  assert.equal(first.reply?.kind, FrameKind.Response, 'first connection answered with HelloAck');
  assert.ok(first.session, 'the node issued a session ticket');
  const second = await attempt(first.session);
  assert.equal(second.reused, true, 'the second connection resumed the session');
  assert.equal(second.reply?.kind, FrameKind.Response);
});

test('a revoked certificate is refused on a resumed session too', async () => {
  const first = await attempt();
  assert.ok(first.session);
  revoked.add(
    normalizeSerial(new (await import('node:crypto')).X509Certificate(client.certPem).serialNumber),
  );
  try {
    const resumed = await attempt(first.session);
    assert.equal(
      resumed.reused,
      true,
      'the session was resumed, so only our own check can refuse it',
    );
    assert.equal(
      resumed.reply?.kind,
      FrameKind.Error,
      `expected an error frame, got ${JSON.stringify(resumed.reply)}`,
    );
    assert.equal(resumed.reply?.code, ErrorCode.CertificateRevoked);
  } finally {
    revoked.clear();
  }
});
