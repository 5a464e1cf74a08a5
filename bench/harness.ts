/**
 * What every bench:* script shares.
 *
 * Quick mode (env BENCH_QUICK=1) runs the real benchmark, peers included where installed, with
 * small numbers, so that `npm run bench:smoke` can prove in CI that each bench still works.
 * Its figures mean nothing; they go to bench/results/<name>.quick.json so a full run's file
 * is never overwritten by them.
 */
import { mkdir, writeFile } from 'node:fs/promises';

export const QUICK = process.env['BENCH_QUICK'] === '1';

/** A numeric setting: the env variable when set, else the full or the quick-mode default. */
export function setting(envName: string, full: number, quick: number): number {
  const raw = process.env[envName];
  if (raw === undefined || raw === '') return QUICK ? quick : full;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${envName} must be a non-negative number, got '${raw}'`);
  }
  return value;
}

/** Writes bench/results/<name>.json (<name>.quick.json in quick mode); returns its path. */
export async function writeResults(name: string, data: unknown): Promise<string> {
  const dir = new URL('results/', import.meta.url);
  await mkdir(dir, { recursive: true });
  const file = new URL(`${name}${QUICK ? '.quick' : ''}.json`, dir);
  await writeFile(file, `${JSON.stringify(data, null, 2)}\n`);
  return `bench/results/${name}${QUICK ? '.quick' : ''}.json`;
}
