/**
 * `provider=static`: a fixed list (`addrs=127.0.0.1:7001,127.0.0.1:7002`) or a file
 * (`file=/etc/rdbnet/peers`) holding one address per line (`#` starts a comment) or JSON (an
 * array of "host:port" strings, or of {address, id, meta} objects). The file is read at each
 * lookup; watch() re-reads it when fs.watch reports a change (debounced) and, since fs.watch
 * misses changes on some file systems and on files replaced by rename, also every
 * STATIC_FILE_POLL_MS.
 */
import { watch as watchFs } from 'node:fs';
import { open } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { ErrorCode, RdbnetError } from '../../errors.ts';
import { sleep } from '../../runtime/timers.ts';
import type {
  DiscoveredNode,
  DiscoveryProvider,
  ProviderContext,
  ProviderFactory,
} from '../provider.ts';
import { addressListValue, badValue, DISCOVERED_NODES_MAX, normalAddress } from '../values.ts';

/** A peers file larger than this is refused (it is not a list of peers). */
export const STATIC_FILE_BYTES_MAX = 1024 * 1024;
/** watch(): the file is read again at least this often, whatever fs.watch reports. */
export const STATIC_FILE_POLL_MS = 2000;
/** watch(): change events closer together than this are read once. */
export const STATIC_FILE_DEBOUNCE_MS = 100;

const NAME = 'static';

function failed(message: string, hint?: string): RdbnetError {
  return new RdbnetError(ErrorCode.DiscoveryFailed, message, hint === undefined ? {} : { hint });
}

/**
 * Parses a peers file's text: JSON when it starts with `[`, lines otherwise. A bad entry is
 * RDB_DISCOVERY_FAILED naming the file and the line or index.
 */
export function parsePeersFile(text: string, file: string): DiscoveredNode[] {
  const source = `static:${file}`;
  const nodes: DiscoveredNode[] = [];
  const seen = new Set<string>();
  const add = (address: string, where: string, id?: string, meta?: Record<string, string>) => {
    const normal = normalAddress(address);
    if (normal === null) {
      throw failed(`provider=static: ${file} ${where}: "${address}" is not host:port`);
    }
    if (seen.has(normal) || nodes.length >= DISCOVERED_NODES_MAX) return;
    seen.add(normal);
    nodes.push({ address: normal, ...(id === undefined ? {} : { id }), source, meta: meta ?? {} });
  };
  if (text.trimStart().startsWith('[')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw failed(`provider=static: ${file} is not valid JSON: ${(error as Error).message}`);
    }
    if (!Array.isArray(parsed)) throw failed(`provider=static: ${file} must hold a JSON array`);
    parsed.forEach((entry: unknown, index) => {
      const where = `entry ${index}`;
      if (typeof entry === 'string') {
        add(entry, where);
        return;
      }
      if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
        throw failed(
          `provider=static: ${file} ${where} must be "host:port" or {address, id, meta}`,
        );
      }
      const { address, id, meta } = entry as Record<string, unknown>;
      if (typeof address !== 'string') {
        throw failed(`provider=static: ${file} ${where} has no "address" string`);
      }
      if (id !== undefined && typeof id !== 'string') {
        throw failed(`provider=static: ${file} ${where}: "id" must be a string`);
      }
      const labels: Record<string, string> = {};
      if (meta !== undefined) {
        if (meta === null || typeof meta !== 'object' || Array.isArray(meta)) {
          throw failed(`provider=static: ${file} ${where}: "meta" must be an object of strings`);
        }
        for (const [key, value] of Object.entries(meta)) {
          if (typeof value !== 'string') {
            throw failed(`provider=static: ${file} ${where}: meta.${key} must be a string`);
          }
          labels[key] = value;
        }
      }
      add(address, where, id, labels);
    });
    return nodes;
  }
  text.split('\n').forEach((raw, index) => {
    const line = raw.replace(/#.*/, '').trim();
    if (line !== '') add(line, `line ${index + 1}`);
  });
  return nodes;
}

/** Reads at most STATIC_FILE_BYTES_MAX bytes of `file`; more is a failure, not a truncation. */
async function readPeersFile(file: string): Promise<string> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, 'r');
  } catch (error) {
    throw failed(
      `provider=static: cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  try {
    const buffer = Buffer.alloc(STATIC_FILE_BYTES_MAX + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > STATIC_FILE_BYTES_MAX) {
        throw failed(`provider=static: ${file} is larger than ${STATIC_FILE_BYTES_MAX} bytes`);
      }
    }
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    await handle.close();
  }
}

function sameNodes(a: DiscoveredNode[] | null, b: DiscoveredNode[]): boolean {
  return a !== null && JSON.stringify(a) === JSON.stringify(b);
}

class StaticProvider implements DiscoveryProvider {
  readonly name = NAME;
  private readonly addrs: string[] | null;
  private readonly file: string | null;
  private readonly ctx: ProviderContext;

  constructor(addrs: string[] | null, file: string | null, ctx: ProviderContext) {
    this.addrs = addrs;
    this.file = file;
    this.ctx = ctx;
  }

  async discover(signal: AbortSignal): Promise<DiscoveredNode[]> {
    signal.throwIfAborted();
    if (this.addrs !== null) {
      return this.addrs.map((address) => ({ address, source: 'static:addrs', meta: {} }));
    }
    const file = this.file as string;
    return parsePeersFile(await readPeersFile(file), file);
  }

  async watch(onChange: (nodes: DiscoveredNode[]) => void, signal: AbortSignal): Promise<void> {
    if (this.file === null) {
      onChange(await this.discover(signal));
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', () => resolve(), { once: true });
      });
      return;
    }
    const file = this.file;
    const { clock } = this.ctx;
    let last: DiscoveredNode[] | null = null;
    let lastError = '';
    let wake: (() => void) | null = null;
    let debounce: ReturnType<typeof clock.setTimer> | null = null;
    // The directory is watched, not the file: editors and config tools replace files by rename.
    let watcher: ReturnType<typeof watchFs> | null = null;
    try {
      watcher = watchFs(dirname(file), { persistent: false }, (_event, changed) => {
        if (changed !== null && changed !== basename(file)) return;
        if (debounce !== null) return;
        debounce = clock.setTimer(STATIC_FILE_DEBOUNCE_MS, () => {
          debounce = null;
          wake?.();
        });
      });
      watcher.on('error', () => {
        // The poll goes on.
      });
    } catch {
      watcher = null; // no fs.watch here: the poll alone
    }
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        try {
          const nodes = parsePeersFile(await readPeersFile(file), file);
          lastError = '';
          if (!sameNodes(last, nodes)) {
            last = nodes;
            onChange(nodes);
          }
        } catch (error) {
          const message = (error as Error).message;
          if (message !== lastError) this.ctx.log('warn', message, { provider: NAME, file });
          lastError = message;
        }
        await Promise.race([
          sleep(clock, STATIC_FILE_POLL_MS, { unref: true }),
          new Promise<void>((resolve) => {
            wake = resolve;
          }),
        ]);
        wake = null;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      watcher?.close();
      if (debounce !== null) clock.clearTimer(debounce);
    }
  }
}

export const staticProvider: ProviderFactory = {
  name: NAME,
  summary: 'A fixed list of addresses, or a file of them (lines or JSON) re-read when it changes.',
  example: 'provider=static addrs=127.0.0.1:7001,127.0.0.1:7002',
  keys: [
    {
      name: 'addrs',
      required: false,
      doc: 'comma-separated host:port list (give addrs or file)',
    },
    {
      name: 'file',
      required: false,
      doc: 'a file: one host:port a line (# comments), or a JSON array of "host:port" or {address, id, meta}; re-read when it changes',
    },
  ],
  create(args, ctx) {
    const addrs = args.get('addrs');
    const file = args.get('file');
    if ((addrs === undefined) === (file === undefined)) {
      throw badValue(NAME, 'addrs', 'or file: give exactly one of the two');
    }
    return new StaticProvider(
      addrs === undefined ? null : addressListValue(NAME, 'addrs', addrs),
      file ?? null,
      ctx,
    );
  },
};
