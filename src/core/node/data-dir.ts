/**
 * The node's data directory: who this node is (node.json) and a lock so that two
 * processes never run on the same state. docs/data-dir.md lists every file in it and what
 * happens when one is lost.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { raftStoragePaths } from '../cluster/storage-files.ts';
import { ErrorCode, RdbnetError } from '../errors.ts';
import { fileSystemError, onFile } from '../fs-errors.ts';
import { readWatermark } from '../membership/raft/watermark.ts';
import { writeFileAtomic } from '../security/certs-dir.ts';

export interface NodeRecord {
  id: string;
  createdAt: string;
}

export const NODE_RECORD_FILE_NAME = 'node.json';

/**
 * Reads node.json, or writes it on the first start. A data dir that holds Raft state
 * without a node.json lost it: taking a new id would run that state as another node, so
 * it is refused unless --id names the node again (checked against the Raft watermark).
 * Nothing is written unless every check passed.
 */
export async function readOrCreateNodeRecord(
  dataDir: string,
  requestedId: string | undefined,
): Promise<NodeRecord> {
  await onFile(dataDir, 'create', () => mkdir(dataDir, { recursive: true, mode: 0o700 }));
  const path = join(dataDir, NODE_RECORD_FILE_NAME);
  const existing = await readNodeRecord(path);
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
  const owner = await raftStateOwner(dataDir);
  if (owner !== undefined) {
    const known = owner.nodeId === '' ? undefined : owner.nodeId;
    if (requestedId === undefined) {
      throw new RdbnetError(
        ErrorCode.StorageLost,
        `data dir ${dataDir} holds the Raft state of ${known === undefined ? 'a node' : `node '${known}'`} (${owner.evidence}) but ${path} is missing`,
        {
          hint:
            known === undefined
              ? 'start it once with --id <the id this node had> to write node.json again'
              : `start it once with --id ${known} to write node.json again`,
        },
      );
    }
    if (known !== undefined && requestedId !== known) {
      throw new RdbnetError(
        ErrorCode.ConfigInvalid,
        `data dir ${dataDir} holds the Raft state of node '${known}' (${owner.evidence}), not '${requestedId}'`,
        { hint: `start it with --id ${known}, or use another --data-dir for a different node` },
      );
    }
  }
  const record: NodeRecord = {
    id: requestedId ?? `node-${randomBytes(3).toString('hex')}`,
    createdAt: new Date().toISOString(),
  };
  await writeFileAtomic(path, `${JSON.stringify(record, null, 2)}\n`, 0o600);
  return record;
}

/** node.json, or undefined when there is none; a damaged one is RDB_STORAGE_CORRUPT. */
export async function readNodeRecord(path: string): Promise<NodeRecord | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    const typed = fileSystemError(error, path, 'read');
    if (typed instanceof RdbnetError) throw typed;
    throw new RdbnetError(
      ErrorCode.ConfigInvalid,
      `cannot read ${path}: ${(error as Error).message}`,
    );
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // fall through: reported below with the rest of the damage
  }
  const record = parsed as Partial<NodeRecord> | undefined;
  if (typeof record?.id !== 'string' || record.id === '') {
    throw new RdbnetError(
      ErrorCode.StorageCorrupt,
      `${path} is damaged (${text.trim() === '' ? 'empty' : 'no node id in it'})`,
      {
        hint: `restore it from a backup, or remove it and start the node once with --id <its id> to write it again`,
      },
    );
  }
  return { id: record.id, createdAt: String(record.createdAt ?? '') };
}

/**
 * Evidence that the data dir holds Raft state, and whose: the watermark's node id, or ''
 * when only WAL files tell (a data dir from before watermarks).
 */
async function raftStateOwner(
  dataDir: string,
): Promise<{ nodeId: string; evidence: string } | undefined> {
  const paths = raftStoragePaths(dataDir);
  // A damaged watermark is reported here already: nothing would start on it anyway.
  const watermark = await readWatermark(paths.watermarkPath);
  if (watermark !== undefined) return { nodeId: watermark.nodeId, evidence: paths.watermarkPath };
  let names: string[];
  try {
    names = await readdir(paths.dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fileSystemError(error, paths.dir, 'read');
  }
  const files = names.filter((name) => name.endsWith('.wal') || name.endsWith('.snap'));
  return files.length === 0 ? undefined : { nodeId: '', evidence: join(paths.dir, files[0]!) };
}

/**
 * Takes the data-dir lock (a pid file created exclusively). A lock left by a process that
 * no longer exists is taken over; a live one is an error naming its pid.
 */
export async function lockDataDir(dataDir: string): Promise<() => Promise<void>> {
  const path = join(dataDir, 'LOCK');
  for (let attempt = 0; attempt < 2; attempt++) {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(path, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw fileSystemError(error, path, 'create', dataDir);
      }
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
      await onFile(path, 'remove', () => rm(path, { force: true }), dataDir);
      continue;
    }
    try {
      await handle.writeFile(`${process.pid}\n`);
    } catch (error) {
      // An empty LOCK would only be taken over next time; leave nothing behind.
      await handle.close();
      await rm(path, { force: true }).catch(() => {});
      throw fileSystemError(error, path, 'write', dataDir);
    }
    await handle.close();
    return () => rm(path, { force: true });
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
