/**
 * Roles and authorization: the client role carried in certificates (and what a certificate
 * without one means), the one table saying which role each operation needs, the admin API
 * refusing before any handler runs, and the cluster name read from a CA's parsed subject.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import forge from 'node-forge';
import { type AdminSource, adminHandler, type CertificateAdmin } from '../../src/core/api/admin.ts';
import {
  type AccessRole,
  authorize,
  OPERATIONS,
  type Operation,
  operationOf,
  principalOf,
} from '../../src/core/api/authorization.ts';
import { ErrorCode, isRdbnetError, type RdbnetError } from '../../src/core/errors.ts';
import type { PeerInfo } from '../../src/core/protocol/handshake.ts';
import {
  type DecodedEnvelope,
  ENVELOPE_KINDS,
  type EnvelopeKind,
} from '../../src/core/protocol/messages.ts';
import {
  createCertificateAuthority,
  describeCertificate,
  generateRsaKey,
  identityFromSubjectAltName,
  identityUris,
  issueClientCertificate,
  issueNodeCertificate,
  roleUri,
} from '../../src/core/security/index.ts';
import { clusterOfCertificateAuthority } from '../../src/core/security/pki.ts';
import type { Connection } from '../../src/core/transport/connection.ts';

const CLUSTER = 'c1';
const ca = createCertificateAuthority({ cluster: CLUSTER });

function throwsCode(code: ErrorCode, message?: RegExp): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isRdbnetError(error, code), `expected ${code}, got ${String(error)}`);
    if (message !== undefined) assert.match((error as Error).message, message);
    return true;
  };
}

describe('the client role in certificates', () => {
  test('a client certificate names its role in a second URI SAN; read unless asked', () => {
    const admin = issueClientCertificate({ ca, cluster: CLUSTER, name: 'ops', role: 'admin' });
    const viewer = issueClientCertificate({ ca, cluster: CLUSTER, name: 'viewer' });
    const node = issueNodeCertificate({ ca, cluster: CLUSTER, nodeId: 'n1', hosts: [] });
    assert.equal(
      new X509Certificate(admin.certPem).subjectAltName,
      'URI:rdbnet://c1/client/ops, URI:urn:rdbnet:role:admin',
    );
    assert.deepEqual(describeCertificate(admin.certPem).identity, {
      cluster: CLUSTER,
      role: 'client',
      id: 'ops',
      clientRole: 'admin',
    });
    assert.equal(describeCertificate(viewer.certPem).identity?.clientRole, 'read');
    // Node certificates carry no client role.
    assert.deepEqual(describeCertificate(node.certPem).identity, {
      cluster: CLUSTER,
      role: 'node',
      id: 'n1',
    });
    assert.throws(
      () => identityUris({ cluster: CLUSTER, role: 'node', id: 'n1', clientRole: 'admin' }),
      throwsCode(ErrorCode.Usage),
    );
    assert.throws(() => roleUri('root' as 'admin'), throwsCode(ErrorCode.Usage, /read or admin/));
  });

  test('parsing: one identity URI, at most one role URI, a role only on a client', () => {
    const cases: [string, object | null][] = [
      // Made before roles existed: still an identity, with no role (read, see principalOf).
      ['URI:rdbnet://c1/client/old', { cluster: 'c1', role: 'client', id: 'old' }],
      [
        'URI:rdbnet://c1/client/a, URI:urn:rdbnet:role:read',
        { cluster: 'c1', role: 'client', id: 'a', clientRole: 'read' },
      ],
      [
        'URI:urn:rdbnet:role:admin, URI:rdbnet://c1/client/a, DNS:localhost',
        { cluster: 'c1', role: 'client', id: 'a', clientRole: 'admin' },
      ],
      ['URI:rdbnet://c1/client/a, URI:urn:rdbnet:role:root', null],
      ['URI:rdbnet://c1/client/a, URI:urn:rdbnet:role:', null],
      ['URI:rdbnet://c1/client/a, URI:urn:rdbnet:role:read, URI:urn:rdbnet:role:admin', null],
      ['URI:rdbnet://c1/client/a, URI:urn:rdbnet:role:admin, URI:urn:rdbnet:role:admin', null],
      ['URI:rdbnet://c1/node/n1, URI:urn:rdbnet:role:admin', null],
      ['URI:urn:rdbnet:role:admin', null],
      // A DNS name cannot smuggle a role in: Node quotes values holding ", ".
      [
        'DNS:"x, URI:urn:rdbnet:role:admin", URI:rdbnet://c1/client/a',
        { cluster: 'c1', role: 'client', id: 'a' },
      ],
    ];
    for (const [san, expected] of cases) {
      const parsed = identityFromSubjectAltName(san);
      if (expected === null) assert.equal(parsed, null, san);
      else assert.deepEqual(parsed, expected, san);
    }
  });
});

/** A peer as the handshake leaves it. */
function peer(
  role: 'node' | 'client',
  id: string,
  extra: Partial<PeerInfo> = { authenticated: true },
): PeerInfo {
  return {
    id,
    clusterId: CLUSTER,
    role,
    protocolVersion: 1,
    codec: 0,
    softwareVersion: 't',
    authenticated: true,
    ...extra,
  } as PeerInfo;
}

describe('who is asking', () => {
  test('the role comes from the certificate; none named is read; --insecure trusts the hello', () => {
    assert.deepEqual(principalOf(peer('client', 'ops', { clientRole: 'admin' })), {
      role: 'admin',
      name: 'client/ops',
      source: 'certificate',
    });
    assert.deepEqual(principalOf(peer('client', 'viewer', { clientRole: 'read' })), {
      role: 'read',
      name: 'client/viewer',
      source: 'certificate',
    });
    assert.deepEqual(principalOf(peer('client', 'old')), {
      role: 'read',
      name: 'client/old',
      source: 'legacy',
    });
    assert.deepEqual(principalOf(peer('node', 'n1')), {
      role: 'node',
      name: 'node/n1',
      source: 'certificate',
    });
    assert.deepEqual(principalOf(peer('client', 'x', { authenticated: false })), {
      role: 'admin',
      name: 'client/x',
      source: 'insecure',
    });
    assert.equal(principalOf(peer('node', 'n2', { authenticated: false })).role, 'node');
  });
});

describe('the operation table', () => {
  // The policy, written out as a script: R = read client, A = admin client, N = node.
  const EXPECTED: Record<Operation, string> = {
    'node.status': 'RAN',
    health: 'RA',
    echo: 'RAN',
    'cluster.members': 'RA',
    'cluster.events': 'RA',
    'cluster.status': 'RAN',
    'certs.info': 'RA',
    'certs.verify': 'RA',
    'keys.list': 'RA',
    'lb.status': 'RA',
    'node.logs': 'RA',
    'pool.stats': 'RA',
    'dataplane.ping': 'RAN',
    'dataplane.message': 'AN',
    'certs.rotate': 'A',
    'certs.install': 'A',
    'certs.trust-bundle': 'A',
    'certs.revoke': 'A',
    'keys.install': 'A',
    'keys.use': 'A',
    'keys.remove': 'A',
    'cluster.bootstrap': 'A',
    'cluster.join': 'A',
    'cluster.leave': 'A',
    'cluster.transfer-leader': 'A',
    'cluster.remove': 'A',
    'raft.batch': 'N',
    'gossip.push-pull': 'N',
    'cluster.peer-exchange': 'N',
    'cluster.bootstrap-commit': 'N',
    'member.join': 'N',
    'member.remove': 'N',
    'keys.forward': 'N',
    'cluster.transfer-leader.forward': 'N',
    'cluster.remove.forward': 'N',
    'acl.list': 'RA',
    'acl.test': 'RA',
    'audit.tail': 'RA',
    'acl.change': 'A',
    'acl.forward': 'N',
    'firewall.read': 'RA',
    'firewall.change': 'A',
  };
  const LETTER: Record<AccessRole, string> = { read: 'R', admin: 'A', node: 'N' };
  const principals = {
    read: { role: 'read', name: 'client/viewer', source: 'certificate' },
    admin: { role: 'admin', name: 'client/ops', source: 'certificate' },
    node: { role: 'node', name: 'node/n1', source: 'certificate' },
  } as const;

  test('each role may do exactly what the policy says', () => {
    assert.deepEqual(Object.keys(OPERATIONS).sort(), Object.keys(EXPECTED).sort());
    for (const [operation, allowed] of Object.entries(EXPECTED) as [Operation, string][]) {
      for (const [role, principal] of Object.entries(principals) as [
        AccessRole,
        (typeof principals)[AccessRole],
      ][]) {
        const may = allowed.includes(LETTER[role]);
        if (may) assert.doesNotThrow(() => authorize(operation, principal), `${role} ${operation}`);
        else {
          assert.throws(
            () => authorize(operation, principal),
            throwsCode(ErrorCode.Forbidden),
            `${role} ${operation}`,
          );
        }
      }
    }
  });

  test('a refusal names the operation, the role needed and the role held', () => {
    assert.throws(
      () => authorize('certs.revoke', principals.read),
      (error: RdbnetError) =>
        error.code === ErrorCode.Forbidden &&
        error.message ===
          'operation certs.revoke needs role admin; certificate client/viewer has role read',
    );
    assert.throws(
      () => authorize('cluster.leave', principals.node),
      throwsCode(ErrorCode.Forbidden, /needs role admin; certificate node\/n1 has role node$/),
    );
    assert.throws(
      () => authorize('raft.batch', principals.admin),
      throwsCode(ErrorCode.Forbidden, /needs role node; certificate client\/ops has role admin$/),
    );
    assert.throws(
      () => authorize('keys.install', { role: 'read', name: 'client/old', source: 'legacy' }),
      throwsCode(ErrorCode.Forbidden, /has role read \(it names no role: made before roles/),
    );
  });

  test('every request kind names an operation; replies and handshake messages none', () => {
    const requests = [...ENVELOPE_KINDS].filter(
      (kind) => kind.endsWith('Request') || kind === 'raftBatch',
    );
    assert.ok(requests.length >= 20, `only ${requests.length} request kinds`);
    for (const kind of ENVELOPE_KINDS) {
      const operation = operationOf({ kind: kind as EnvelopeKind, body: {} });
      if (requests.includes(kind)) assert.notEqual(operation, null, kind);
      else assert.equal(operation, null, kind);
    }
  });

  test('keyring ops and forwarded requests are told apart by their body', () => {
    const keyring = (op: string, forwarded: boolean): DecodedEnvelope => ({
      kind: 'keyringRequest',
      body: { op, key: '', forwarded },
    });
    assert.equal(operationOf(keyring('list', false)), 'keys.list');
    assert.equal(operationOf(keyring('install', false)), 'keys.install');
    assert.equal(operationOf(keyring('use', false)), 'keys.use');
    assert.equal(operationOf(keyring('remove', false)), 'keys.remove');
    // An op nobody knows is never taken for a read.
    assert.equal(operationOf(keyring('wipe', false)), 'keys.install');
    for (const op of ['list', 'install', 'use', 'remove', 'wipe']) {
      assert.equal(operationOf(keyring(op, true)), 'keys.forward');
    }
    const transfer = (forwarded: boolean): DecodedEnvelope => ({
      kind: 'transferLeaderRequest',
      body: { to: 'n2', forwarded },
    });
    assert.equal(operationOf(transfer(false)), 'cluster.transfer-leader');
    assert.equal(operationOf(transfer(true)), 'cluster.transfer-leader.forward');
    const remove = (forwarded: boolean): DecodedEnvelope => ({
      kind: 'clusterRemoveRequest',
      body: { id: 'n3', force: false, forwarded },
    });
    assert.equal(operationOf(remove(false)), 'cluster.remove');
    assert.equal(operationOf(remove(true)), 'cluster.remove.forward');
  });
});

describe('the admin API authorizes before it answers', () => {
  function fixture() {
    const calls: string[] = [];
    const refused: string[] = [];
    const certificates: CertificateAdmin = {
      beginRotation: () => {
        calls.push('beginRotation');
        return { csrPem: '', hosts: [], currentSerial: '', nodeId: 'n1', clusterId: CLUSTER };
      },
      installCertificate: async () => {
        calls.push('installCertificate');
        return { serial: '01', notAfter: '' };
      },
      setTrustBundle: async () => {
        calls.push('setTrustBundle');
        return 1;
      },
      setRevocations: async (serials) => {
        calls.push(`setRevocations:${serials.join(',')}`);
        return serials.length;
      },
      info: () => ({ certPem: '', bundlePem: '', revokedSerials: [] }),
      proveIdentity: () => ({ signature: new Uint8Array(0), algorithm: 'RSA-SHA256' }),
    };
    const source: AdminSource = {
      status: () => ({ id: 'n1' }) as ReturnType<AdminSource['status']>,
      health: () => ({ status: 'healthy', quorum: true, nodes: [] }),
      healthDiagnosed: async () => ({ status: 'healthy', quorum: true, nodes: [] }),
      certificates,
      cluster: null,
      membership: null,
    };
    const handler = adminHandler(source, {
      onForbidden: (operation, connection) => refused.push(`${operation}:${connection.peer?.id}`),
    });
    const as = (who: PeerInfo) => ({ peer: who, remoteAddress: '127.0.0.1:1' }) as Connection;
    return { handler, calls, refused, as };
  }
  const revoke: DecodedEnvelope = { kind: 'revocationsRequest', body: { serials: ['AB'] } };

  test('a read client is refused a change: nothing runs, the refusal is reported', async () => {
    const { handler, calls, refused, as } = fixture();
    const viewer = as(peer('client', 'viewer', { clientRole: 'read' }));
    assert.throws(
      () => handler(revoke, viewer),
      throwsCode(ErrorCode.Forbidden, /operation certs\.revoke needs role admin/),
    );
    assert.deepEqual(calls, []);
    assert.deepEqual(refused, ['certs.revoke:viewer']);
    // Reads are answered.
    const status = await handler({ kind: 'statusRequest', body: {} }, viewer);
    assert.deepEqual(status, { statusReply: { id: 'n1' } });
  });

  test('an admin client is answered; a node certificate is refused operator operations', async () => {
    const { handler, calls, refused, as } = fixture();
    await handler(revoke, as(peer('client', 'ops', { clientRole: 'admin' })));
    assert.deepEqual(calls, ['setRevocations:AB']);
    const node = as(peer('node', 'n2'));
    for (const request of [
      revoke,
      { kind: 'certRotateRequest', body: { keyBits: 2048 } },
      { kind: 'trustBundleRequest', body: { bundlePem: '' } },
      { kind: 'certInstallRequest', body: { certPem: '' } },
      { kind: 'healthRequest', body: {} },
    ] as DecodedEnvelope[]) {
      assert.throws(() => handler(request, node), throwsCode(ErrorCode.Forbidden), request.kind);
    }
    assert.deepEqual(calls, ['setRevocations:AB']);
    assert.equal(refused.length, 5);
    // What members ask each other is answered.
    assert.deepEqual(await handler({ kind: 'statusRequest', body: {} }, node), {
      statusReply: { id: 'n1' },
    });
  });

  test('a kind that names no operation is refused as unknown', () => {
    const { handler, as } = fixture();
    assert.throws(
      () =>
        handler(
          { kind: 'statusReply', body: {} },
          as(peer('client', 'ops', { clientRole: 'admin' })),
        ),
      throwsCode(ErrorCode.MethodUnknown),
    );
  });
});

/** A self-signed certificate with exactly the subject given (forge writes what it is told). */
function selfSigned(attributes: forge.pki.CertificateField[]): string {
  const { keyPem, publicKeyPem } = generateRsaKey();
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKeyPem);
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 86_400_000);
  cert.setSubject(attributes);
  cert.setIssuer(attributes);
  cert.setExtensions([{ name: 'basicConstraints', cA: true }]);
  cert.sign(forge.pki.privateKeyFromPem(keyPem), forge.md.sha256.create());
  return forge.pki.certificateToPem(cert);
}

describe('the cluster a CA serves', () => {
  test('is the OU of its parsed subject', () => {
    const probe = createCertificateAuthority({ cluster: 'probe' });
    // The text form of the subject is joined with ", "; a pattern over it once never matched.
    assert.equal(
      describeCertificate(probe.certPem).subject,
      'CN=rdbnet CA probe, O=rdbnet, OU=probe',
    );
    assert.equal(clusterOfCertificateAuthority(probe.certPem), 'probe');
    // A bundle (CA rotation): the first certificate's.
    const other = createCertificateAuthority({ cluster: 'other' });
    assert.equal(clusterOfCertificateAuthority(`${probe.certPem}${other.certPem}`), 'probe');
  });

  test('no OU, two, or one that is no cluster name: none', () => {
    assert.equal(
      clusterOfCertificateAuthority(selfSigned([{ name: 'commonName', value: 'x' }])),
      undefined,
    );
    assert.equal(
      clusterOfCertificateAuthority(
        selfSigned([
          { shortName: 'OU', value: 'a' },
          { shortName: 'OU', value: 'b' },
        ]),
      ),
      undefined,
    );
    assert.equal(
      clusterOfCertificateAuthority(selfSigned([{ shortName: 'OU', value: 'a b/c' }])),
      undefined,
    );
    // Text that looks like an OU inside another attribute is not one.
    assert.equal(
      clusterOfCertificateAuthority(
        selfSigned([
          { name: 'commonName', value: 'x\nOU=evil' },
          { shortName: 'OU', value: 'good' },
        ]),
      ),
      'good',
    );
  });
});
