/**
 * File-system failures as typed errors that name the file and tell a person what to do.
 * Node's errors from file handles carry no path ("ENOSPC: no space left on device, write"),
 * so every place that writes durable state wraps its calls with the path it is working on.
 */
import { dirname } from 'node:path';
import { ErrorCode, RdbnetError } from './errors.ts';

/** What was being done to the file, for the message: "cannot <action> <path>". */
export type FileAction = 'create' | 'write' | 'sync' | 'read' | 'rename' | 'remove' | 'truncate';

/**
 * A typed error for a failed file operation on `path`, or `error` itself when it is already
 * typed or is not an errno failure this module knows (a bug keeps its stack). `dir` is what
 * the hint names: the directory whose filesystem needs attention (default: the file's).
 */
export function fileSystemError(
  error: unknown,
  path: string,
  action: FileAction,
  dir: string = dirname(path),
): unknown {
  if (error instanceof RdbnetError) return error;
  const errno = (error as NodeJS.ErrnoException | undefined)?.code;
  const where = `cannot ${action} ${path}`;
  switch (errno) {
    case 'ENOSPC':
    case 'EDQUOT':
      return new RdbnetError(
        ErrorCode.StorageFull,
        `${where}: ${errno === 'ENOSPC' ? 'no space left on the device' : 'disk quota exceeded'} (${errno})`,
        {
          hint: `free space on the filesystem holding ${dir} (or raise the quota), then try again`,
          cause: error,
        },
      );
    case 'EROFS':
      return new RdbnetError(ErrorCode.StorageDenied, `${where}: read-only file system (EROFS)`, {
        hint: `remount the filesystem holding ${dir} read-write, or use another --data-dir`,
        cause: error,
      });
    case 'EACCES':
    case 'EPERM':
      return new RdbnetError(ErrorCode.StorageDenied, `${where}: permission denied (${errno})`, {
        hint: `let the user running rdbnet read and write ${dir}, or use another --data-dir`,
        cause: error,
      });
    case 'EIO':
      return new RdbnetError(ErrorCode.StorageIo, `${where}: input/output error (EIO)`, {
        hint: `the disk holding ${dir} reported an error; check it (dmesg) before trusting the data in it`,
        cause: error,
      });
    default:
      return error;
  }
}

/** Runs one file operation on `path`, turning its failure into fileSystemError's. */
export async function onFile<T>(
  path: string,
  action: FileAction,
  operation: () => Promise<T>,
  dir?: string,
): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    throw fileSystemError(error, path, action, dir);
  }
}
