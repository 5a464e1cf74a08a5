/**
 * Writes oclif.manifest.json from the built commands in dist/, so that start-up reads
 * one JSON file instead of importing every command module. (The same job as `oclif
 * manifest`, without pulling the oclif release tooling and its cloud SDKs into the build.)
 */
import { writeFile } from 'node:fs/promises';
import { Plugin } from '@oclif/core';

const root = new URL('..', import.meta.url).pathname;
const plugin = new Plugin({
  root,
  type: 'core',
  ignoreManifest: true,
  errorOnManifestCreate: true,
  respectNoCacheDefault: true,
});
await plugin.load();
const manifest = plugin.manifest;
if (Object.keys(manifest.commands).length === 0)
  throw new Error('no commands found under dist/commands');
await writeFile(
  new URL('../oclif.manifest.json', import.meta.url),
  `${JSON.stringify(manifest, null, 2)}\n`,
);
console.log(`oclif.manifest.json: ${Object.keys(manifest.commands).length} commands`);
