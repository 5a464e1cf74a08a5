import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { connect, createServer, type TLSSocket } from 'node:tls';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import {
  certsPaths,
  createCertificateAuthority,
  createCertificateRequest,
  describeBundle,
  describeCertificate,
  ensureLocalCertificates,
  generateRsaKey,
  identityFromSubjectAltName,
  identityUri,
  issueClientCertificate,
  issueNodeCertificate,
  type KeyPairPem,
  keyMatchesCertificate,
  parseIdentityUri,
  readPem,
  signCertificateRequest,
  validateName,
} from '../../src/core/security/index.ts';

const CLUSTER = 'c1';
const KEY_BITS = 2048;
const SERVER_AUTH_OID = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const NODE_HOSTS = ['localhost', 'n1.example.com', '127.0.0.1', '::1', '::ffff:192.0.2.1'];

const ca = createCertificateAuthority({ cluster: CLUSTER, keyBits: KEY_BITS });
const node = issueNodeCertificate({
  ca,
  cluster: CLUSTER,
  nodeId: 'n1',
  hosts: NODE_HOSTS,
  keyBits: KEY_BITS,
});
const client = issueClientCertificate({ ca, cluster: CLUSTER, name: 'admin', keyBits: KEY_BITS });

const tempDirs: string[] = [];
after(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'rdbnet-pki-'));
  tempDirs.push(dir);
  return dir;
}

function rejectsWithCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isRdbnetError(error, code), `expected ${code}, got ${String(error)}`);
    return true;
  };
}

describe('identity', () => {
  test('URI round trip', () => {
    const identity = { cluster: 'prod-eu.1', role: 'node', id: 'db_7' } as const;
    assert.equal(identityUri(identity), 'rdbnet://prod-eu.1/node/db_7');
    assert.deepEqual(parseIdentityUri('rdbnet://prod-eu.1/node/db_7'), identity);
    assert.deepEqual(parseIdentityUri('rdbnet://c1/client/admin'), {
      cluster: 'c1',
      role: 'client',
      id: 'admin',
    });
  });

  test('parse is strict', () => {
    for (const uri of [
      'rdbnet://c1/peer/n1',
      'rdbnet://c1/node/n1/extra',
      'rdbnet://c1/node/',
      'rdbnet://-c1/node/n1',
      'rdbnet://c1/node/n 1',
      'RDBNET://c1/node/n1',
      `rdbnet://c1/node/${'a'.repeat(64)}`,
      'https://c1/node/n1',
    ]) {
      assert.equal(parseIdentityUri(uri), null, uri);
    }
    assert.notEqual(parseIdentityUri(`rdbnet://c1/node/${'a'.repeat(63)}`), null);
  });

  test('validateName', () => {
    assert.equal(validateName('node id', 'n-1.a_b'), 'n-1.a_b');
    for (const bad of ['', '.hidden', '../etc', 'a/b', 'ü', 'x'.repeat(64)]) {
      assert.throws(() => validateName('node id', bad), rejectsWithCode(ErrorCode.Usage), bad);
    }
    assert.throws(() => validateName('cluster name', 'a b'), /invalid cluster name "a b"/);
  });

  test('identity from subjectAltName text', () => {
    assert.deepEqual(
      identityFromSubjectAltName('DNS:localhost, IP Address:127.0.0.1, URI:rdbnet://c1/node/n1'),
      { cluster: 'c1', role: 'node', id: 'n1' },
    );
    assert.equal(identityFromSubjectAltName(undefined), null);
    assert.equal(identityFromSubjectAltName('DNS:localhost'), null);
    assert.equal(
      identityFromSubjectAltName('URI:rdbnet://c1/node/n1, URI:rdbnet://c1/node/n2'),
      null,
    );
    // Node JSON-quotes values with commas; a DNS name must not smuggle in a second URI.
    assert.equal(
      identityFromSubjectAltName(
        'DNS:"x\\u002c URI:rdbnet://c1/node/evil", URI:rdbnet://c1/node/n1',
      )?.id,
      'n1',
    );
  });
});

describe('certificates', () => {
  test('CA profile and validity window', () => {
    const now = new Date('2030-01-01T00:00:00.000Z');
    const fixed = createCertificateAuthority({ cluster: 'x', keyBits: KEY_BITS, now });
    const info = describeCertificate(fixed.certPem);
    assert.equal(info.isCa, true);
    assert.equal(info.subject, 'CN=rdbnet CA x, O=rdbnet, OU=x');
    assert.equal(info.issuer, info.subject);
    assert.equal(info.notBefore, '2029-12-31T23:55:00.000Z');
    assert.equal(info.notAfter, new Date(now.getTime() + 3650 * 86_400_000).toISOString());
    assert.match(info.serial, /^[0-7][0-9A-F]{31}$/);
    assert.equal(info.identity, null);
    assert.ok(keyMatchesCertificate(fixed.certPem, fixed.keyPem));
    assert.ok(!keyMatchesCertificate(fixed.certPem, ca.keyPem));
  });

  test('node and client certificates chain to the CA', () => {
    const caCert = new X509Certificate(ca.certPem);
    for (const pair of [node, client]) {
      const cert = new X509Certificate(pair.certPem);
      assert.ok(cert.verify(caCert.publicKey));
      assert.ok(cert.checkIssued(caCert));
      assert.equal(cert.ca, false);
      assert.equal(cert.issuer, caCert.subject);
      assert.ok(keyMatchesCertificate(pair.certPem, pair.keyPem));
    }
    assert.deepEqual(new X509Certificate(node.certPem).keyUsage.sort(), [
      SERVER_AUTH_OID,
      CLIENT_AUTH_OID,
    ]);
    assert.deepEqual(new X509Certificate(client.certPem).keyUsage, [CLIENT_AUTH_OID]);
    // Leaves never outlive the default one-year validity.
    const notAfterMs = Date.parse(describeCertificate(node.certPem).notAfter);
    assert.ok(notAfterMs <= Date.now() + 366 * 86_400_000);
  });

  test('identity and SANs', () => {
    const cert = new X509Certificate(node.certPem);
    assert.deepEqual(identityFromSubjectAltName(cert.subjectAltName), {
      cluster: CLUSTER,
      role: 'node',
      id: 'n1',
    });
    assert.deepEqual(
      identityFromSubjectAltName(new X509Certificate(client.certPem).subjectAltName),
      {
        cluster: CLUSTER,
        role: 'client',
        id: 'admin',
        // issueClientCertificate grants read unless asked for more.
        clientRole: 'read',
      },
    );
    assert.equal(cert.checkHost('localhost'), 'localhost');
    assert.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
    assert.ok(cert.checkIP('::1'));
    const info = describeCertificate(node.certPem);
    assert.equal(info.subject, 'CN=n1, O=rdbnet, OU=c1');
    assert.deepEqual(info.dnsNames, ['localhost', 'n1.example.com']);
    assert.deepEqual(info.ipAddresses, ['127.0.0.1', '::1', '::ffff:c000:201']);
    assert.deepEqual(describeCertificate(client.certPem).dnsNames, []);
    assert.match(info.fingerprintSha256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });

  test('bad input is rejected with typed errors', () => {
    const issue = (hosts: string[]) =>
      issueNodeCertificate({ ca, cluster: CLUSTER, nodeId: 'n9', hosts, keyBits: KEY_BITS });
    assert.throws(() => issue(['bad host']), rejectsWithCode(ErrorCode.Usage));
    assert.throws(() => issue(['fe80::1%eth0']), rejectsWithCode(ErrorCode.Usage));
    assert.throws(
      () => issueNodeCertificate({ ca, cluster: CLUSTER, nodeId: '../x', hosts: [] }),
      rejectsWithCode(ErrorCode.Usage),
    );
    assert.throws(
      () =>
        issueClientCertificate({
          ca: { certPem: ca.certPem, keyPem: node.keyPem },
          cluster: CLUSTER,
          name: 'a',
        }),
      rejectsWithCode(ErrorCode.CertificateInvalid),
    );
    assert.throws(() => describeCertificate('nope'), rejectsWithCode(ErrorCode.CertificateInvalid));
  });

  test('describeBundle', () => {
    const infos = describeBundle(`${ca.certPem}${node.certPem}\n${client.certPem}`);
    assert.deepEqual(
      infos.map((info) => info.identity?.id ?? info.subject),
      ['CN=rdbnet CA c1, O=rdbnet, OU=c1', 'n1', 'admin'],
    );
    assert.deepEqual(describeBundle(''), []);
  });

  test('CSR round trip', () => {
    const key = generateRsaKey(KEY_BITS);
    const csrPem = createCertificateRequest({ ...key, commonName: 'rotating-node' });
    const identity = { cluster: CLUSTER, role: 'node', id: 'n2' } as const;
    const certPem = signCertificateRequest({
      ca,
      csrPem,
      cluster: CLUSTER,
      identity,
      hosts: ['127.1.2.3'],
    });
    const cert = new X509Certificate(certPem);
    assert.equal(cert.publicKey.export({ type: 'spki', format: 'pem' }), key.publicKeyPem);
    assert.ok(cert.verify(new X509Certificate(ca.certPem).publicKey));
    assert.ok(keyMatchesCertificate(certPem, key.keyPem));
    // Identity comes from the signer, not from the CSR subject.
    assert.deepEqual(identityFromSubjectAltName(cert.subjectAltName), identity);
    assert.equal(describeCertificate(certPem).subject, 'CN=n2, O=rdbnet, OU=c1');
    assert.deepEqual(describeCertificate(certPem).ipAddresses, ['127.1.2.3']);

    // Same-length edit keeps the DER parseable, so only the signature check can catch it.
    const der = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    const at = der.indexOf('rotating-node');
    assert.ok(at > 0);
    der.write('rotating-evil', at, 'latin1');
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const sign = (pem: string) =>
      signCertificateRequest({ ca, csrPem: pem, cluster: CLUSTER, identity, hosts: [] });
    assert.throws(() => sign(tampered), rejectsWithCode(ErrorCode.CertificateInvalid));
    assert.throws(() => sign('garbage'), rejectsWithCode(ErrorCode.CertificateInvalid));
    assert.throws(
      () =>
        signCertificateRequest({
          ca,
          csrPem,
          cluster: 'other',
          identity,
          hosts: [],
        }),
      rejectsWithCode(ErrorCode.ClusterMismatch),
    );
    assert.throws(
      () =>
        createCertificateRequest({
          keyPem: key.keyPem,
          publicKeyPem: generateRsaKey(KEY_BITS).publicKeyPem,
          commonName: 'x',
        }),
      rejectsWithCode(ErrorCode.Usage),
    );
  });
});

describe('certificates directory', () => {
  const fileMode = async (path: string) => (await stat(path)).mode & 0o777;

  test('ensureLocalCertificates creates, then reuses', async () => {
    const dir = await tempDir();
    const paths = certsPaths(dir);
    const first = await ensureLocalCertificates({
      dir,
      cluster: CLUSTER,
      nodeId: 'n1',
      hosts: ['127.0.0.1', 'localhost'],
    });
    const expected = [
      paths.caCert,
      paths.caKey,
      paths.nodeCert('n1'),
      paths.nodeKey('n1'),
      paths.clientCert('admin'),
      paths.clientKey('admin'),
    ];
    assert.deepEqual([...first.created].sort(), [...expected].sort());
    // No temp or lock files left behind.
    assert.deepEqual(
      (await readdir(dir)).sort(),
      expected.map((path) => path.slice(dir.length + 1)).sort(),
    );
    for (const path of [paths.caKey, paths.nodeKey('n1'), paths.clientKey('admin')]) {
      assert.equal(await fileMode(path), 0o600, path);
    }
    for (const path of [paths.caCert, paths.nodeCert('n1'), paths.clientCert('admin')]) {
      assert.equal(await fileMode(path), 0o644, path);
    }
    const caCert = new X509Certificate(await readFile(paths.caCert));
    assert.ok(new X509Certificate(await readFile(paths.nodeCert('n1'))).verify(caCert.publicKey));

    const again = await ensureLocalCertificates({ dir, cluster: CLUSTER, nodeId: 'n1', hosts: [] });
    assert.deepEqual(again.created, []);

    const second = await ensureLocalCertificates({
      dir,
      cluster: CLUSTER,
      nodeId: 'n2',
      hosts: ['127.0.0.1'],
    });
    assert.deepEqual(second.created, [paths.nodeKey('n2'), paths.nodeCert('n2')]);
    const n2 = new X509Certificate(await readFile(paths.nodeCert('n2')));
    assert.ok(n2.verify(caCert.publicKey));

    // Without ca.key nothing new can be issued, and the error says which file is missing.
    await rm(paths.caKey);
    await assert.rejects(
      ensureLocalCertificates({ dir, cluster: CLUSTER, nodeId: 'n3', hosts: [] }),
      (error) => {
        assert.ok(isRdbnetError(error, ErrorCode.CertificatesMissing));
        assert.match(error.message, /node\.n3\.crt/);
        assert.match(error.hint ?? '', /rdbnet certs issue/);
        return true;
      },
    );
    // ...but a node whose pair exists still starts.
    assert.deepEqual(
      (await ensureLocalCertificates({ dir, cluster: CLUSTER, nodeId: 'n2', hosts: [] })).created,
      [],
    );
  });

  test('concurrent callers share one CA', async () => {
    const dir = await tempDir();
    const paths = certsPaths(dir);
    await Promise.all(
      ['n1', 'n2'].map((nodeId) =>
        ensureLocalCertificates({ dir, cluster: CLUSTER, nodeId, hosts: ['127.0.0.1'] }),
      ),
    );
    const caCert = new X509Certificate(await readFile(paths.caCert));
    for (const nodeId of ['n1', 'n2']) {
      const cert = new X509Certificate(await readFile(paths.nodeCert(nodeId)));
      assert.ok(cert.verify(caCert.publicKey), nodeId);
    }
  });

  test('readPem', async () => {
    const dir = await tempDir();
    await assert.rejects(readPem(join(dir, 'ca.crt'), 'CA certificate'), (error) => {
      assert.ok(isRdbnetError(error, ErrorCode.CertificatesMissing));
      assert.equal(error.message, `CA certificate not found: ${join(dir, 'ca.crt')}`);
      return true;
    });
  });
});

describe('mutual TLS 1.3', () => {
  function startServer(pair: KeyPairPem, caPem: string) {
    const server = createServer({
      cert: pair.certPem,
      key: pair.keyPem,
      ca: caPem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3',
    });
    return new Promise<{ server: typeof server; port: number }>((resolve) => {
      server.listen(0, '127.0.0.1', () => {
        resolve({ server, port: (server.address() as AddressInfo).port });
      });
    });
  }

  function dial(port: number, pair: KeyPairPem): TLSSocket {
    return connect({
      host: '127.0.0.1',
      port,
      ca: ca.certPem,
      cert: pair.certPem,
      key: pair.keyPem,
      minVersion: 'TLSv1.3',
    });
  }

  test('both sides authenticate with cluster certificates', async () => {
    const { server, port } = await startServer(node, ca.certPem);
    try {
      const serverSide = new Promise<TLSSocket>((resolve) => {
        server.once('secureConnection', (socket: TLSSocket) => {
          socket.end('ok');
          resolve(socket);
        });
      });
      const socket = dial(port, client);
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      assert.equal(socket.authorized, true);
      assert.equal(socket.getProtocol(), 'TLSv1.3');
      const serverIdentity = new X509Certificate(socket.getPeerX509Certificate()!.raw);
      assert.equal(identityFromSubjectAltName(serverIdentity.subjectAltName)?.id, 'n1');

      const accepted = await serverSide;
      assert.equal(accepted.authorized, true);
      const peer = accepted.getPeerX509Certificate()!;
      assert.deepEqual(identityFromSubjectAltName(peer.subjectAltName), {
        cluster: CLUSTER,
        role: 'client',
        id: 'admin',
        clientRole: 'read',
      });
      socket.destroy();
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a client certificate from another CA is rejected', async () => {
    const otherCa = createCertificateAuthority({ cluster: CLUSTER, keyBits: KEY_BITS });
    const stranger = issueClientCertificate({
      ca: otherCa,
      cluster: CLUSTER,
      name: 'admin',
      keyBits: KEY_BITS,
    });
    const { server, port } = await startServer(node, ca.certPem);
    try {
      let accepted = false;
      server.on('secureConnection', (socket: TLSSocket) => {
        accepted = true;
        socket.destroy();
      });
      const rejected = new Promise<Error>((resolve) => {
        server.once('tlsClientError', resolve);
      });
      const socket = dial(port, stranger);
      socket.on('error', () => {});
      const closed = new Promise((resolve) => socket.once('close', resolve));
      // In TLS 1.3 the client finishes its handshake before the server checks the client
      // certificate; Node then destroys the socket, so the client sees a close, not an alert.
      await rejected;
      await closed;
      assert.equal(accepted, false);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
