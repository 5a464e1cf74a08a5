import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import { ErrorCode, isRdbnetError } from '../../src/core/errors.ts';
import { SUPPORTED_CODECS } from '../../src/core/protocol/compression.ts';
import { Codec } from '../../src/core/protocol/frame.ts';
import {
  acceptHello,
  checkHelloAck,
  type LocalEndpoint,
  MIN_PROTOCOL_VERSION,
  makeHello,
  PROTOCOL_VERSION,
} from '../../src/core/protocol/handshake.ts';
import {
  decodeEnvelope,
  encodeEnvelope,
  type Hello,
  type HelloAck,
  RoleCode,
} from '../../src/core/protocol/messages.ts';
import {
  createCertificateAuthority,
  type Identity,
  identityFromSubjectAltName,
  issueClientCertificate,
  issueNodeCertificate,
} from '../../src/core/security/index.ts';

const CLUSTER = 'c1';

const node1: LocalEndpoint = {
  id: 'n1',
  clusterId: CLUSTER,
  role: 'node',
  softwareVersion: '0.1.0',
};
const node2: LocalEndpoint = { ...node1, id: 'n2', softwareVersion: '0.2.0' };
const admin: LocalEndpoint = {
  id: 'admin',
  clusterId: CLUSTER,
  role: 'client',
  softwareVersion: 'x',
};
const anonymous: LocalEndpoint = { ...admin, clusterId: '' };

const certNode2: Identity = { cluster: CLUSTER, role: 'node', id: 'n2' };
const certAdmin: Identity = { cluster: CLUSTER, role: 'client', id: 'admin' };

function throwsCode(code: ErrorCode): (error: unknown) => boolean {
  return (error) => {
    assert.ok(isRdbnetError(error, code), `expected ${code}, got ${String(error)}`);
    return true;
  };
}

function hello(overrides: Partial<Hello> = {}, from: LocalEndpoint = node2): Hello {
  return { ...makeHello(from), ...overrides };
}

/** What the accepting side really sees: the Hello after a trip through protobuf. */
function overTheWire(message: Hello): Hello {
  const decoded = decodeEnvelope(encodeEnvelope({ hello: message }));
  assert.equal(decoded.kind, 'hello');
  return decoded.body as Hello;
}

function ack(overrides: Partial<HelloAck> = {}): HelloAck {
  return {
    protocolVersion: PROTOCOL_VERSION,
    peerId: 'n1',
    clusterId: CLUSTER,
    codec: Codec.Lz4,
    softwareVersion: '0.1.0',
    ...overrides,
  };
}

describe('makeHello', () => {
  test('carries the local endpoint and our codecs', () => {
    const message = makeHello(node2);
    assert.deepEqual(message, {
      protocolVersion: PROTOCOL_VERSION,
      minProtocolVersion: MIN_PROTOCOL_VERSION,
      peerId: 'n2',
      clusterId: CLUSTER,
      role: RoleCode.Node,
      codecs: [...SUPPORTED_CODECS],
      softwareVersion: '0.2.0',
    });
    assert.notEqual(message.codecs, SUPPORTED_CODECS, 'the codec list is a copy');
    assert.equal(makeHello(admin).role, RoleCode.Client);
    assert.deepEqual(makeHello({ ...admin, codecs: [Codec.Zstd] }).codecs, [Codec.Zstd]);
  });
});

describe('acceptHello: versions', () => {
  test('a peer offering 1..3 gets version 1', () => {
    const { ack: reply, peer } = acceptHello(
      overTheWire(hello({ protocolVersion: 3, minProtocolVersion: 1 })),
      node1,
      null,
    );
    assert.equal(reply.protocolVersion, 1);
    assert.equal(peer.protocolVersion, 1);
  });

  test('a peer requiring at least version 2 is incompatible', () => {
    for (const [min, max] of [
      [2, 3],
      [2, 2],
      [5, 9],
    ] as const) {
      assert.throws(
        () => acceptHello(hello({ protocolVersion: max, minProtocolVersion: min }), node1, null),
        throwsCode(ErrorCode.VersionIncompatible),
        `${min}..${max}`,
      );
    }
  });

  test('a peer that only speaks version 0 is incompatible', () => {
    assert.throws(
      () =>
        acceptHello(overTheWire(hello({ protocolVersion: 0, minProtocolVersion: 0 })), node1, null),
      throwsCode(ErrorCode.VersionIncompatible),
    );
  });

  test('a hello without version fields (all proto3 defaults) is incompatible', () => {
    const decoded = decodeEnvelope(
      encodeEnvelope({
        hello: { peerId: 'n2', clusterId: CLUSTER, role: RoleCode.Node } as unknown as Hello,
      }),
    ).body as Hello;
    assert.equal(decoded.protocolVersion, 0);
    assert.throws(
      () => acceptHello(decoded, node1, null),
      throwsCode(ErrorCode.VersionIncompatible),
    );
  });
});

describe('acceptHello: role, id and cluster', () => {
  test('an unknown role is rejected', () => {
    for (const role of [RoleCode.Unspecified, 3, 99]) {
      assert.throws(
        () => acceptHello(hello({ role: role as RoleCode }), node1, null),
        throwsCode(ErrorCode.HandshakeRejected),
        `role ${role}`,
      );
    }
  });

  test('an empty peer id is rejected', () => {
    assert.throws(
      () => acceptHello(overTheWire(hello({ peerId: '' })), node1, null),
      throwsCode(ErrorCode.HandshakeRejected),
    );
  });

  test('a node of another cluster is a cluster mismatch', () => {
    for (const clusterId of ['c2', '', 'C1', 'c1 ']) {
      assert.throws(
        () => acceptHello(hello({ clusterId }), node1, null),
        throwsCode(ErrorCode.ClusterMismatch),
        JSON.stringify(clusterId),
      );
    }
  });

  test('a client naming another cluster is a cluster mismatch', () => {
    assert.throws(
      () => acceptHello(makeHello({ ...admin, clusterId: 'c2' }), node1, null),
      throwsCode(ErrorCode.ClusterMismatch),
    );
  });

  test('an insecure client with an empty cluster is accepted into ours', () => {
    const { ack: reply, peer } = acceptHello(overTheWire(makeHello(anonymous)), node1, null);
    assert.deepEqual(peer, {
      id: 'admin',
      clusterId: CLUSTER,
      role: 'client',
      protocolVersion: 1,
      codec: Codec.Lz4,
      softwareVersion: 'x',
      authenticated: false,
    });
    assert.deepEqual(reply, {
      protocolVersion: 1,
      peerId: 'n1',
      clusterId: CLUSTER,
      codec: Codec.Lz4,
      softwareVersion: '0.1.0',
    });
  });

  test('an insecure node of the same cluster is accepted, unauthenticated', () => {
    const { peer } = acceptHello(overTheWire(hello()), node1, null);
    assert.equal(peer.id, 'n2');
    assert.equal(peer.role, 'node');
    assert.equal(peer.softwareVersion, '0.2.0');
    assert.equal(peer.authenticated, false);
  });
});

describe('acceptHello: certificate identity', () => {
  test('matching node certificate is accepted and authenticated', () => {
    const { peer } = acceptHello(hello(), node1, certNode2);
    assert.equal(peer.authenticated, true);
    assert.equal(peer.id, 'n2');
  });

  test('matching client certificate is accepted, with or without a cluster in the hello', () => {
    assert.equal(acceptHello(makeHello(admin), node1, certAdmin).peer.authenticated, true);
    const { peer } = acceptHello(makeHello(anonymous), node1, certAdmin);
    assert.equal(peer.clusterId, CLUSTER);
    assert.equal(peer.role, 'client');
  });

  test('a client certificate posing as a node is an invalid identity', () => {
    assert.throws(
      () => acceptHello(makeHello({ ...node2, id: 'admin' }), node1, certAdmin),
      throwsCode(ErrorCode.IdentityInvalid),
    );
  });

  test('a node certificate claiming another node id is an invalid identity', () => {
    assert.throws(
      () => acceptHello(makeHello({ ...node2, id: 'n3' }), node1, certNode2),
      throwsCode(ErrorCode.IdentityInvalid),
    );
  });

  test('a node certificate claiming to be a client is an invalid identity', () => {
    assert.throws(
      () => acceptHello(makeHello({ ...admin, id: 'n2' }), node1, certNode2),
      throwsCode(ErrorCode.IdentityInvalid),
    );
  });

  test('a certificate of another cluster is a cluster mismatch', () => {
    assert.throws(
      () => acceptHello(hello(), node1, { ...certNode2, cluster: 'c2' }),
      throwsCode(ErrorCode.ClusterMismatch),
    );
    // Even when the hello names the certificate's cluster.
    assert.throws(
      () => acceptHello(hello({ clusterId: 'c2' }), node1, { ...certNode2, cluster: 'c2' }),
      throwsCode(ErrorCode.ClusterMismatch),
    );
    // And for a client that leaves its cluster empty.
    assert.throws(
      () => acceptHello(makeHello(anonymous), node1, { ...certAdmin, cluster: 'c2' }),
      throwsCode(ErrorCode.ClusterMismatch),
    );
  });

  test('identities taken from real certificates', () => {
    const ca = createCertificateAuthority({ cluster: CLUSTER, keyBits: 2048 });
    const nodeCert = issueNodeCertificate({ ca, cluster: CLUSTER, nodeId: 'n2', hosts: [] });
    const clientCert = issueClientCertificate({ ca, cluster: CLUSTER, name: 'admin' });
    const nodeId = identityFromSubjectAltName(new X509Certificate(nodeCert.certPem).subjectAltName);
    const clientId = identityFromSubjectAltName(
      new X509Certificate(clientCert.certPem).subjectAltName,
    );
    assert.deepEqual(nodeId, certNode2);
    // The certificate names its role (read unless asked); the hello checks ignore it.
    assert.deepEqual(clientId, { ...certAdmin, clientRole: 'read' });
    assert.equal(acceptHello(hello(), node1, nodeId).peer.authenticated, true);
    assert.throws(
      () => acceptHello(makeHello({ ...node2, id: 'admin' }), node1, clientId),
      throwsCode(ErrorCode.IdentityInvalid),
    );
    assert.throws(
      () => checkHelloAck(ack({ peerId: 'admin' }), admin, clientId),
      throwsCode(ErrorCode.IdentityInvalid),
    );
  });
});

describe('acceptHello: codec negotiation', () => {
  const cases: [readonly Codec[], readonly Codec[] | undefined, Codec][] = [
    [[Codec.Lz4, Codec.Zstd, Codec.None], undefined, Codec.Lz4],
    [[Codec.None, Codec.Zstd, Codec.Lz4], undefined, Codec.Lz4],
    [[Codec.Zstd, Codec.None], undefined, Codec.Zstd],
    [[Codec.None], undefined, Codec.None],
    [[], undefined, Codec.None],
    [[Codec.Lz4, Codec.Zstd], [Codec.Zstd, Codec.Lz4, Codec.None], Codec.Zstd],
    [[Codec.Lz4, Codec.Zstd], [Codec.None], Codec.None],
  ];
  for (const [offered, ours, expected] of cases) {
    test(`peer offers [${offered}], we prefer [${ours ?? 'default'}] → ${expected}`, () => {
      const local = ours === undefined ? node1 : { ...node1, codecs: ours };
      const { ack: reply, peer } = acceptHello(
        overTheWire(hello({ codecs: [...offered] })),
        local,
        null,
      );
      assert.equal(reply.codec, expected);
      assert.equal(peer.codec, expected);
    });

    // Codec none is always decodable (payloads under the threshold go raw whatever was
    // negotiated), and it is what acceptHello falls back to, so the dialer must accept it.
    test(`a dialer offering [${offered}] accepts the node's choice ${expected}`, {}, () => {
      const local = ours === undefined ? node1 : { ...node1, codecs: ours };
      const { ack: reply } = acceptHello(hello({ codecs: [...offered] }), local, null);
      const dialer = { ...node2, codecs: offered };
      assert.equal(checkHelloAck(reply, dialer, null).codec, expected);
    });
  }
});

describe('checkHelloAck', () => {
  test('a good ack yields the node as peer', () => {
    assert.deepEqual(checkHelloAck(ack(), node2, { cluster: CLUSTER, role: 'node', id: 'n1' }), {
      id: 'n1',
      clusterId: CLUSTER,
      role: 'node',
      protocolVersion: 1,
      codec: Codec.Lz4,
      softwareVersion: '0.1.0',
      authenticated: true,
    });
    assert.equal(checkHelloAck(ack(), node2, null).authenticated, false);
  });

  test('a version outside ours is incompatible', () => {
    for (const protocolVersion of [0, 2, 3]) {
      assert.throws(
        () => checkHelloAck(ack({ protocolVersion }), node2, null),
        throwsCode(ErrorCode.VersionIncompatible),
        `version ${protocolVersion}`,
      );
    }
  });

  test('another cluster is a mismatch unless we left ours empty', () => {
    assert.throws(
      () => checkHelloAck(ack({ clusterId: 'c2' }), node2, null),
      throwsCode(ErrorCode.ClusterMismatch),
    );
    assert.equal(checkHelloAck(ack({ clusterId: 'c2' }), anonymous, null).clusterId, 'c2');
  });

  test('the node certificate must match the ack', () => {
    assert.throws(
      () => checkHelloAck(ack(), node2, { cluster: CLUSTER, role: 'client', id: 'n1' }),
      throwsCode(ErrorCode.IdentityInvalid),
    );
    assert.throws(
      () => checkHelloAck(ack(), node2, { cluster: CLUSTER, role: 'node', id: 'n9' }),
      throwsCode(ErrorCode.IdentityInvalid),
    );
    assert.throws(
      () =>
        checkHelloAck(ack({ clusterId: 'c2' }), anonymous, {
          cluster: CLUSTER,
          role: 'node',
          id: 'n1',
        }),
      throwsCode(ErrorCode.ClusterMismatch),
    );
  });

  test('a codec we did not offer is refused', () => {
    assert.throws(
      () => checkHelloAck(ack({ codec: Codec.Lz4 }), { ...node2, codecs: [Codec.None] }, null),
      throwsCode(ErrorCode.CodecUnsupported),
    );
    assert.throws(
      () => checkHelloAck(ack({ codec: 3 as Codec }), node2, null),
      throwsCode(ErrorCode.CodecUnsupported),
    );
    assert.equal(
      checkHelloAck(ack({ codec: Codec.None }), { ...node2, codecs: [Codec.None] }, null).codec,
      Codec.None,
    );
  });

  test('the full exchange, both sides, over the wire', () => {
    const { ack: reply } = acceptHello(overTheWire(makeHello(admin)), node1, certAdmin);
    const wireAck = decodeEnvelope(encodeEnvelope({ helloAck: reply }));
    assert.equal(wireAck.kind, 'helloAck');
    const peer = checkHelloAck(wireAck.body as HelloAck, admin, {
      cluster: CLUSTER,
      role: 'node',
      id: 'n1',
    });
    assert.equal(peer.id, 'n1');
    assert.equal(peer.codec, Codec.Lz4);
  });
});
