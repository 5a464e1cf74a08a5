/**
 * `rdbnet init`: what a new cluster needs before its first start, made in one directory —
 * the CA and gossip keyring, a node certificate per node, an admin client certificate, a
 * config file per node (each joining the others, --bootstrap-expect N), and optionally the
 * systemd template unit. The plan is checked whole before anything is written.
 */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCode, RdbnetError } from '../core/errors.ts';
import { initCa, issueLeaf } from '../core/pki/local-create.ts';
import { validateName } from '../core/security/identity.ts';
import { parseHostPort } from '../core/transport/address.ts';

/** A cluster made by `init`, not a fleet: Raft's voters are a handful. */
export const INIT_NODES_MAX = 15;

const UNIT_TEMPLATE = fileURLToPath(
  new URL('../../deploy/systemd/rdbnet@.service', import.meta.url),
);

export interface InitNode {
  id: string;
  address: string;
}

export interface InitPlan {
  cluster: string;
  nodes: InitNode[];
  /** Where the files are written. */
  dir: string;
  /** Where the nodes will find them: data dirs are <root>/<id>, certificates <root>/certs. */
  root: string;
  systemd: boolean;
}

export interface InitResult {
  cluster: string;
  dir: string;
  nodes: { id: string; address: string; config: string; start: string }[];
  certsDir: string;
  adminCertificate: string;
  systemdUnit: string | null;
}

/** `n1=127.0.0.1:7001,n2=…` (ids optional: n1, n2, … in order). */
export function parseInitNodes(spec: string): InitNode[] {
  const entries = spec
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
  return entries.map((entry, i) => {
    const equals = entry.indexOf('=');
    return equals < 0
      ? { id: `n${i + 1}`, address: entry }
      : { id: entry.slice(0, equals), address: entry.slice(equals + 1) };
  });
}

/** Default nodes: n1..nN on 127.0.0.1, ports 7001 upwards. */
export function defaultInitNodes(count: number): InitNode[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `n${i + 1}`,
    address: `127.0.0.1:${7001 + i}`,
  }));
}

/** Every check, before any file: names, addresses, duplicates, an empty target directory. */
export async function checkInitPlan(plan: InitPlan): Promise<void> {
  validateName('cluster name', plan.cluster);
  if (plan.nodes.length < 1 || plan.nodes.length > INIT_NODES_MAX) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `a cluster made by init has 1 to ${INIT_NODES_MAX} nodes, got ${plan.nodes.length}`,
    );
  }
  const ids = new Set<string>();
  const addresses = new Set<string>();
  for (const node of plan.nodes) {
    validateName('node id', node.id);
    const parsed = parseHostPort(node.address);
    if (!(parsed.port > 0)) {
      throw new RdbnetError(ErrorCode.Usage, `node ${node.id}: ${node.address} has no port`);
    }
    if (ids.has(node.id)) throw new RdbnetError(ErrorCode.Usage, `node id ${node.id} is twice`);
    if (addresses.has(node.address)) {
      throw new RdbnetError(ErrorCode.Usage, `address ${node.address} is given to two nodes`);
    }
    ids.add(node.id);
    addresses.add(node.address);
  }
  const existing = await readdir(plan.dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw new RdbnetError(ErrorCode.Usage, `cannot use ${plan.dir}: ${error.message}`);
  });
  if (existing.length > 0) {
    throw new RdbnetError(ErrorCode.AlreadyExists, `${plan.dir} is not empty`, {
      hint: 'init writes a new cluster into an empty or new directory; pass another --dir',
    });
  }
}

/** Writes the plan's files; call checkInitPlan first. */
export async function writeInitPlan(plan: InitPlan): Promise<InitResult> {
  const certsDir = join(plan.dir, 'certs');
  await mkdir(certsDir, { recursive: true });
  await initCa({
    dir: certsDir,
    cluster: plan.cluster,
    days: 3650,
    keyBits: 2048,
    overwrite: false,
  });
  const leaf = { dir: certsDir, days: 825, keyBits: 2048 as const, overwrite: false };
  for (const node of plan.nodes) {
    const host = parseHostPort(node.address).host;
    await issueLeaf({ ...leaf, kind: 'node', name: node.id, hosts: [host] });
  }
  const admin = await issueLeaf({
    ...leaf,
    kind: 'client',
    name: 'admin',
    role: 'admin',
    hosts: [],
  });
  const nodes: InitResult['nodes'] = [];
  for (const node of plan.nodes) {
    const config = {
      id: node.id,
      cluster: plan.cluster,
      listen: node.address,
      dataDir: join(plan.root, node.id),
      certsDir: join(plan.root, 'certs'),
      join: plan.nodes.filter((other) => other !== node).map((other) => other.address),
      bootstrapExpect: plan.nodes.length,
    };
    const file = join(plan.dir, `${node.id}.json`);
    await writeFile(file, `${JSON.stringify(config, null, 2)}\n`, { flag: 'wx' });
    const start = plan.systemd
      ? `systemctl enable --now rdbnet@${node.id}   # with ${node.id}.json in /etc/rdbnet`
      : `rdbnet node start --config ${file}`;
    nodes.push({ id: node.id, address: node.address, config: file, start });
  }
  let systemdUnit: string | null = null;
  if (plan.systemd) {
    systemdUnit = join(plan.dir, 'rdbnet@.service');
    await writeFile(systemdUnit, await readFile(UNIT_TEMPLATE, 'utf8'), { flag: 'wx' });
  }
  return {
    cluster: plan.cluster,
    dir: plan.dir,
    nodes,
    certsDir,
    adminCertificate: admin.file,
    systemdUnit,
  };
}
