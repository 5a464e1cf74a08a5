/**
 * The node's data directory: who this node is (node.json) and a lock so that two
 * processes never run on the same state.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { writeFileAtomic } from '../security/certs-dir.ts';

export interface NodeRecord {
  id: string;
  createdAt: string;
}

export async function readOrCreateNodeRecord(
  dataDir: string,
  requestedId: string | undefined,
): Promise<NodeRecord> {
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, 'node.json');
  let existing: NodeRecord | undefined;
  try {
    existing = JSON.parse(await readFile(path, 'utf8')) as NodeRecord;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `cannot read ${path}: ${(error as Error).message}`,
      );
    }
  }
  if (existing !== undefined) {
    if (requestedId !== undefined && requestedId !== existing.id) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `data dir ${dataDir} belongs to node '${existing.id}', not '${requestedId}'`,
        { hint: 'use another --data-dir for a different node, or drop --id' },
      );
    }
    return existing;
  }
  const record: NodeRecord = {
    id: requestedId ?? `node-${randomBytes(3).toString('hex')}`,
    createdAt: new Date().toISOString(),
  };
  await writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`, 0o600);
  return record;
}

/**
 * Takes the data-dir lock (a pid file created exclusively). A lock left by a process that
 * no longer exists is taken over; a live one is an error naming its pid.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return () => rm(path, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const pid = Number((await readFile(path, 'utf8').catch(() => '')).trim());
      if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && processExists(pid)) {
        throw new RdbnetError(
          ErrorCode.ConfigInvalid,
          `data dir ${dataDir} is in use by process ${pid}`,
          {
            hint: 'stop that node first, or start this one with another --data-dir',
          },
        );
      }
      await rm(path, { force: true });
    }
  }
  throw new RdbnetError(ErrorCode.ConfigInvalid, `cannot lock data dir ${dataDir}`);
}

function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
