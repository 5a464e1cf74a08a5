/**
 * The left marker (`<dataDir>/left.json`): a node that left its cluster at its own request
 * writes it before stopping, and a data dir holding it is refused at open — a node belongs to
 * one cluster for the life of its data dir, and a removed member must not come back as one.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode } from '../errors.ts';
import type { NodeId } from '../membership/raft/types.ts';
import { writeFileAtomic } from '../security/certs-dir.ts';
import { fail } from './guards.ts';

const LEFT_MARKER = 'left.json';

/** RDB_CONFIG_INVALID when node `id`'s data dir holds a left marker. */
export async function refuseIfLeft(dataDir: string, id: NodeId): Promise<void> {
  const marker = await readFile(join(dataDir, LEFT_MARKER), 'utf8').catch(() => undefined);
  if (marker === undefined) return;
  let detail = '';
  try {
    const parsed = JSON.parse(marker) as { clusterId?: string; leftAt?: string };
    detail = ` ${parsed.clusterId ?? ''} at ${parsed.leftAt ?? '?'}`;
  } catch {
    // the marker's presence is what counts
  }
  fail(
    ErrorCode.ConfigInvalid,
    `node '${id}' left cluster${detail}; data dir ${dataDir} cannot be used again`,
    'start it with a fresh --data-dir to join a cluster again',
  );
}

/** Writes the marker atomically (0600): which cluster, which node, when (wall clock). */
export async function writeLeftMarker(
  dataDir: string,
  clusterId: string,
  id: NodeId,
  leftAtWallMs: number,
): Promise<void> {
  await writeFileAtomic(
    join(dataDir, LEFT_MARKER),
    `${JSON.stringify({ clusterId, id, leftAt: new Date(leftAtWallMs).toISOString() })}\n`,
    0o600,
  );
}

/**
 * Where the left marker lives, behind a seam: the data dir's left.json in production, a
 * variable in the simulator (whose nodes have no data dir), with the same refusal.
 */
export interface LeftMarkerStore {
  /** RDB_CONFIG_INVALID when node `id` left its cluster (its marker is there). */
  refuseIfLeft(id: NodeId): Promise<void>;
  /** Records that node `id` left `clusterId` at `leftAtWallMs` (wall clock). */
  write(clusterId: string, id: NodeId, leftAtWallMs: number): Promise<void>;
}

/** The marker as `<dataDir>/left.json`. */
export function leftMarkerFile(dataDir: string): LeftMarkerStore {
  return {
    refuseIfLeft: (id) => refuseIfLeft(dataDir, id),
    write: (clusterId, id, leftAtWallMs) => writeLeftMarker(dataDir, clusterId, id, leftAtWallMs),
  };
}

/** The marker in memory: survives a simulated restart as long as the store object does. */
export function memoryLeftMarker(): LeftMarkerStore & { readonly leftCluster: string | null } {
  let left: { clusterId: string; leftAtWallMs: number } | null = null;
  return {
    get leftCluster() {
      return left?.clusterId ?? null;
    },
    async refuseIfLeft(id) {
      if (left === null) return;
      fail(
        ErrorCode.ConfigInvalid,
        `node '${id}' left cluster ${left.clusterId} at ${new Date(left.leftAtWallMs).toISOString()}; its storage cannot be used again`,
        'start it with a fresh --data-dir to join a cluster again',
      );
    },
    async write(clusterId, _id, leftAtWallMs) {
      left = { clusterId, leftAtWallMs };
    },
  };
}
