/**
 * The files in deploy/ are checked by the tools that would run them:
 * - the systemd unit by `systemd-analyze verify` (Debian's systemd), with ExecStart pointed at
 *   this checkout's bin/run.js (the unit names the global install's path), no warning allowed;
 * - the example node config, and the container args of the Kubernetes StatefulSet, by
 *   `rdbnet node config` (the same parser `node start` uses), with the pod's variables filled in;
 * - the Kubernetes manifests against the Kubernetes API's schemas (kubernetes-models, which
 *   generates its validators from the upstream OpenAPI spec), plus the references between them
 *   (selector, serviceName, SRV name, volumes).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { StatefulSet } from 'kubernetes-models/apps/v1';
import { Service } from 'kubernetes-models/v1';
import { parseAllDocuments } from 'yaml';
import { BIN, describeResult, REPO_ROOT, runCli } from '../helpers/processes.ts';

const DEPLOY = join(REPO_ROOT, 'deploy');

describe('deploy/', () => {
  test('systemd: the unit passes systemd-analyze verify', async () => {
    const which = spawnSync('systemd-analyze', ['--version']);
    if (which.error !== undefined) {
      assert.fail('systemd-analyze is missing (Debian package systemd; .ci/run installs it)');
    }
    const dir = await mkdtemp(join(tmpdir(), 'rdbnet-unit-'));
    try {
      const unit = await readFile(join(DEPLOY, 'systemd', 'rdbnet@.service'), 'utf8');
      assert.match(unit, /^ExecStart=\/usr\/local\/bin\/rdbnet node start --config /m);
      // An instance of the template, as `systemctl start rdbnet@n1` would load it.
      const instance = join(dir, 'rdbnet@n1.service');
      await writeFile(instance, unit.replaceAll('/usr/local/bin/rdbnet', BIN));
      const result = spawnSync('systemd-analyze', ['verify', instance], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stderr.trim(), '', 'no warnings');
      // The check can fail: an unknown directive is reported.
      await writeFile(
        instance,
        `${unit.replaceAll('/usr/local/bin/rdbnet', BIN)}\nRestartt=always\n`,
      );
      await copyFile(instance, join(dir, 'rdbnet@n2.service'));
      const bad = spawnSync('systemd-analyze', ['verify', join(dir, 'rdbnet@n2.service')], {
        encoding: 'utf8',
      });
      assert.match(bad.stderr, /Restartt/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('systemd: the example node config is valid', async () => {
    const result = await runCli(
      ['node', 'config', '--config', join(DEPLOY, 'systemd', 'n1.json'), '--json'],
      { RDBNET_HOME: tmpdir() },
    );
    assert.equal(result.code, 0, describeResult(result));
    const config = JSON.parse(result.stdout).config;
    assert.equal(config.id, 'n1');
    assert.equal(config.bootstrapExpect, 3);
  });

  test('kubernetes: the manifests match the API schemas and each other', async () => {
    const text = await readFile(join(DEPLOY, 'kubernetes', 'rdbnet.yaml'), 'utf8');
    const documents = parseAllDocuments(text).map((doc) => {
      assert.deepEqual(doc.errors, []);
      return doc.toJS() as { kind: string };
    });
    const service = new Service(documents.find((doc) => doc.kind === 'Service') as never);
    const set = new StatefulSet(documents.find((doc) => doc.kind === 'StatefulSet') as never);
    service.validate();
    set.validate();
    // The validator does fail on a wrong type.
    const broken = new StatefulSet({
      ...(set.toJSON() as object),
      spec: { replicas: 'three' },
    } as never);
    assert.throws(() => broken.validate());

    assert.equal(service.spec!.clusterIP, 'None');
    assert.equal(set.spec!.serviceName, service.metadata!.name);
    assert.deepEqual(service.spec!.selector, set.spec!.selector.matchLabels);
    assert.deepEqual(set.spec!.template.metadata!.labels, set.spec!.selector.matchLabels);
    const container = set.spec!.template.spec!.containers[0]!;
    const args = container.args!;
    const retryJoin = args[args.indexOf('--retry-join') + 1]!;
    assert.ok(
      retryJoin.includes(`_rdbnet._tcp.${service.metadata!.name}.$(POD_NAMESPACE).svc`),
      'the SRV name follows the Service and its port name',
    );
    assert.ok(service.spec!.ports!.some((port) => port.name === 'rdbnet'));
    const volumes = new Set(set.spec!.template.spec!.volumes!.map((v) => v.name));
    for (const claim of set.spec!.volumeClaimTemplates!) volumes.add(claim.metadata!.name!);
    for (const c of [...set.spec!.template.spec!.initContainers!, container]) {
      for (const mount of c.volumeMounts ?? []) assert.ok(volumes.has(mount.name), mount.name);
    }

    // The container's args, with the pod's variables filled in, are a valid node config.
    const pod: Record<string, string> = {
      POD_NAME: 'rdbnet-0',
      POD_IP: '127.0.0.1',
      POD_NAMESPACE: 'default',
    };
    const filled = args.map((arg) => arg.replace(/\$\((\w+)\)/g, (_, name: string) => pod[name]!));
    assert.deepEqual(filled.slice(0, 2), ['node', 'start']);
    const result = await runCli(['node', 'config', ...filled.slice(2), '--json'], {
      RDBNET_HOME: tmpdir(),
    });
    assert.equal(result.code, 0, describeResult(result));
    const config = JSON.parse(result.stdout).config;
    assert.equal(config.id, 'rdbnet-0');
    assert.equal(config.advertise, '127.0.0.1:7000');
    assert.equal(config.bootstrapExpect, 3);
    assert.equal(config.retryJoin.length, 1);
  });
});
