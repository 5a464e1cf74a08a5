/**
 * Revocation (`certs revoke`): serials added to revoked.txt of the operator's directory, and
 * the whole list pushed to every node, which refuses those serials on every new connection.
 */
import { certsPaths } from '../security/certs-dir.ts';
import { normalizeSerial, readRevocations, writeRevocations } from '../security/revocations.ts';
import {
  eachNode,
  type NodeStep,
  type NodeTarget,
  operatorLink,
  type PkiOperator,
  requireClientRole,
} from './operator.ts';

export interface RevokeResult {
  /** The whole list now in revoked.txt and pushed to the nodes. */
  revoked: string[];
  added: string[];
  file: string;
  nodes: NodeStep[];
}

/**
 * Adds `serials` to revoked.txt and pushes the whole list to every target. Serials and the
 * operator's role are checked first: a refused revocation writes nothing.
 */
export async function revokeSerials(
  operator: PkiOperator,
  targets: NodeTarget[],
  serials: string[],
): Promise<RevokeResult> {
  const paths = certsPaths(operator.certsDir);
  const wanted = serials.map(normalizeSerial);
  await requireClientRole(operator, 'certs.revoke');
  const before = await readRevocations(paths.revoked);
  const all = await writeRevocations(paths.revoked, [...before, ...wanted]);
  const list = [...all].sort();
  const link = operatorLink(operator);
  const steps = await eachNode(targets, async (target) => {
    const reply = await link(target, (client) =>
      client.ask('revocationsRequest', { serials: list }),
    );
    return { revoked: reply.revoked };
  });
  return {
    revoked: list,
    added: wanted.filter((serial) => !before.has(serial)),
    file: paths.revoked,
    nodes: steps,
  };
}
