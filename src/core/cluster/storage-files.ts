/**
 * Where a node keeps its Raft storage in its data dir (docs/data-dir.md lists every file).
 * Shared by the cluster service, which opens the storage, and the data-dir checks that run
 * before it (node/data-dir.ts).
 */
import { join } from 'node:path';

/** The WAL segments and snapshot files (membership/raft/wal.ts). */
export const RAFT_DIR_NAME = 'raft';
/**
 * The storage's watermark (membership/raft/watermark.ts). It sits beside the raft dir, not
 * in it, so that losing the whole dir is refused like losing the files in it.
 */
export const RAFT_WATERMARK_FILE_NAME = 'raft.watermark.json';

export function raftStoragePaths(dataDir: string): { dir: string; watermarkPath: string } {
  return {
    dir: join(dataDir, RAFT_DIR_NAME),
    watermarkPath: join(dataDir, RAFT_WATERMARK_FILE_NAME),
  };
}
