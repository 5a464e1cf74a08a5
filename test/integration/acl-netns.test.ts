/**
 * The access control list from distinct source addresses: a real `rdbnet node start` in a hub
 * network namespace the test makes, and the real CLI run from two leaf namespaces joined to it
 * by veth pairs (169.254.1.2 and 169.254.2.2: never the host's interfaces). A CIDR denied is
 * refused at accept while the other address is served; the refusal is in `audit tail` with
 * its rule and counted in `acl list`; `acl remove` lifts it. An operation class denied to one
 * source refuses only that class; an identity denied at one source is refused at the handshake.
 * Bad input (a malformed CIDR, an unknown class, a taken priority, a lockout) exits 64 and
 * changes nothing.
 *
 * Needs root and iproute2 (CI installs iproute2 and runs as root: .ci/run).
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createStar,
  destroyAllNamespaces,
  netnsUnavailable,
  removeStaleNamespaces,
  type StarLeaf,
  spawnIn,
} from '../helpers/netns.ts';
import { BIN, type CliResult, describeResult, runCli, tempHome } from '../helpers/processes.ts';
import { json, ok, starCli } from '../helpers/star-cli.ts';

const skip = await netnsUnavailable();
const PORT = 7460;

let home: { dir: string; cleanup(): Promise<void> };
let hub: string;
let near: StarLeaf; // 169.254.1.2
let far: StarLeaf; // 169.254.2.2
let node: ChildProcess | undefined;

const cli = starCli({
  home: () => home.dir,
  star: () => ({ hub, near, far }),
  port: PORT,
});
const { env, local, fromNear, fromFar } = cli;

function errorOf(result: CliResult): { code: string; message: string } {
  return json<{ error: { code: string; message: string } }>(result).error;
}

interface AclList {
  defaultAction: string;
  rules: { id: string; priority: number; source: string; hits: number }[];
}
interface AuditLine {
  decision: string;
  source: string;
  rule: string;
  stage: string;
  who: string;
  what: string;
}

async function auditLines(): Promise<AuditLine[]> {
  const result = await local(['audit', 'tail', '-n', '1024']);
  assert.equal(result.code, 0, describeResult(result));
  return result.stdout
    .trim()
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as AuditLine);
}

before(async () => {
  if (skip !== undefined) return;
  await removeStaleNamespaces();
  home = await tempHome('rdbnet-acl-netns-');
  const star = await createStar('acl', 2);
  hub = star.hub;
  [near, far] = star.leaves as [StarLeaf, StarLeaf];
  // Zero config in RDBNET_HOME: CA, node and admin client certificates on the first start.
  const child = spawnIn(
    hub,
    process.execPath,
    [
      BIN,
      'node',
      'start',
      '--json',
      '--id',
      'hub1',
      '--listen',
      `0.0.0.0:${PORT}`,
      '--advertise',
      `127.0.0.1:${PORT}`,
    ],
    { env: env(), stdio: ['ignore', 'pipe', 'pipe'] },
  );
  node = child;
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  await new Promise<void>((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`node did not start\n${stderr}`)), 30_000);
    child.stdout?.on('data', (chunk) => {
      stdout += chunk;
      try {
        JSON.parse(stdout);
        clearTimeout(timer);
        resolve();
      } catch {
        // not complete yet
      }
    });
    child.on('exit', (code) => reject(new Error(`node exited with ${code}\n${stderr}`)));
  });
  // Certificates are files: made from the host, used from the namespaces.
  await ok(runCli(['certs', 'client', '--name', 'viewer', '--json'], env()));
});

after(async () => {
  if (skip !== undefined) return;
  node?.kill('SIGKILL');
  await destroyAllNamespaces();
  await home.cleanup();
});

describe('ACL from distinct source addresses (network namespaces)', { skip }, () => {
  test('both leaves are served before any rule', async () => {
    await Promise.all([ok(fromNear(['node', 'status'])), ok(fromFar(['node', 'status']))]);
  });

  test('a denied CIDR is refused at accept, the other address served; audited, counted, lifted', async () => {
    const { id } = await ok<{ id: string }>(
      local(['acl', 'add', '--source', '169.254.2.0/24', '--action', 'deny', '--priority', '100']),
    );
    assert.match(id, /^acl-\d+$/);
    const test = await ok<{ allowed: boolean; rule: string | null }>(
      local(['acl', 'test', '--source', far.address, '--op', 'admin-read']),
    );
    assert.deepEqual(test, { allowed: false, rule: id, node: 'hub1' });

    const refused = await fromFar(['node', 'status']);
    assert.notEqual(refused.code, 0, describeResult(refused));
    await ok(fromNear(['node', 'status']));

    const lines = await auditLines();
    const line = lines.find((entry) => entry.stage === 'accept' && entry.source === far.address);
    assert.ok(line !== undefined, JSON.stringify(lines));
    assert.equal(line.decision, 'deny');
    assert.equal(line.rule, id);
    assert.ok(
      lines.some(
        (entry) => entry.what === 'acl.add' && entry.decision === 'allow' && entry.rule === id,
      ),
    );

    const list = await ok<AclList>(local(['acl', 'list']));
    assert.ok((list.rules.find((rule) => rule.id === id)?.hits ?? 0) >= 1, JSON.stringify(list));

    await ok(local(['acl', 'remove', id]));
    await ok(fromFar(['node', 'status']));
  });

  test('an operation class denied to one source: its changes refused per message, its reads served', async () => {
    const { id } = await ok<{ id: string }>(
      local([
        'acl',
        'add',
        '--source',
        '169.254.1.0/24',
        '--action',
        'deny',
        '--priority',
        '50',
        '--op',
        'admin-write',
      ]),
    );
    await ok(fromNear(['node', 'status']));
    const refused = await fromNear([
      'acl',
      'add',
      '--source',
      '169.254.9.0/24',
      '--action',
      'deny',
      '--priority',
      '7',
    ]);
    assert.equal(refused.code, 1, describeResult(refused));
    assert.equal(errorOf(refused).code, 'RDB_ACL_DENIED');
    // From the other leaf the same change is allowed; undone at once.
    const added = await ok<{ id: string }>(
      fromFar(['acl', 'add', '--source', '169.254.9.0/24', '--action', 'deny', '--priority', '7']),
    );
    await ok(local(['acl', 'remove', added.id]));
    const line = (await auditLines()).find(
      (entry) => entry.stage === 'message' && entry.rule === id,
    );
    assert.ok(line !== undefined);
    assert.equal(line.who, 'client/admin');
    assert.equal(line.what, 'acl.change');
    assert.equal(line.source.split(':')[0], near.address);
    await ok(local(['acl', 'remove', id]));
  });

  test('an identity denied at one source is refused at the handshake; another identity is served', async () => {
    const { id } = await ok<{ id: string }>(
      local([
        'acl',
        'add',
        '--source',
        '169.254.1.0/24',
        '--action',
        'deny',
        '--priority',
        '60',
        '--identity',
        'client/viewer',
      ]),
    );
    const refused = await fromNear(['node', 'status', '--client', 'viewer']);
    assert.notEqual(refused.code, 0, describeResult(refused));
    assert.equal(errorOf(refused).code, 'RDB_ACL_DENIED', describeResult(refused));
    await ok(fromNear(['node', 'status']));
    await ok(fromFar(['node', 'status', '--client', 'viewer']));
    assert.ok(
      (await auditLines()).some((entry) => entry.stage === 'handshake' && entry.rule === id),
    );
    await ok(local(['acl', 'remove', id]));
  });

  test('bad input: one line, exit 64, nothing applied', async () => {
    const before = await ok<AclList>(local(['acl', 'list']));
    const { id } = await ok<{ id: string }>(
      local(['acl', 'add', '--source', '169.254.3.0/24', '--action', 'deny', '--priority', '300']),
    );
    const cases: [string[], string][] = [
      [
        ['acl', 'add', '--source', '169.254.3.1/24', '--action', 'deny', '--priority', '301'],
        'RDB_ACL_INVALID',
      ],
      [
        [
          'acl',
          'add',
          '--source',
          '169.254.3.0/24',
          '--action',
          'deny',
          '--priority',
          '302',
          '--op',
          'telnet',
        ],
        'RDB_ACL_INVALID',
      ],
      [
        ['acl', 'add', '--source', '169.254.4.0/24', '--action', 'deny', '--priority', '300'],
        'RDB_ACL_INVALID',
      ],
      [
        [
          'acl',
          'add',
          '--source',
          'any',
          '--action',
          'deny',
          '--priority',
          '1',
          '--op',
          'admin-write',
        ],
        'RDB_ACL_LOCKOUT',
      ],
      [['acl', 'default', 'deny'], 'RDB_ACL_LOCKOUT'],
      [['acl', 'remove', 'acl-999999'], 'RDB_ACL_INVALID'],
    ];
    // Every case is refused, so none depends on another: run at once (each a CLI process).
    const results = await Promise.all(cases.map(([args]) => local(args)));
    for (const [i, result] of results.entries()) {
      assert.equal(result.code, 64, describeResult(result));
      assert.equal(errorOf(result).code, cases[i]![1], describeResult(result));
    }
    const after = await ok<AclList>(local(['acl', 'list']));
    assert.deepEqual(
      after.rules.map((rule) => rule.id),
      [...before.rules.map((rule) => rule.id), id],
    );
    assert.equal(after.defaultAction, 'allow');
    await ok(local(['acl', 'remove', id]));
  });

  test('the audit file in the data dir holds the same records', async () => {
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(join(home.dir, 'node', 'audit.log'), 'utf8');
    const lines = text
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as AuditLine);
    assert.ok(
      lines.some(
        (line) =>
          line.stage === 'accept' && line.source === far.address && line.decision === 'deny',
      ),
    );
  });
});
