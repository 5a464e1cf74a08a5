/**
 * Rotating the cluster CA across running nodes, in two phases an operator can re-run: phase 1
 * (`certs rotate --ca`) begins or resumes a rotation, widens every node's trust bundle to
 * [new, old] before any certificate changes, then moves node and local client certificates to
 * the new CA; phase 2 (`--finish`) narrows every trust bundle to the new CA once nothing
 * depends on the old one. No node ever meets a certificate it does not trust.
 */
import { X509Certificate } from 'node:crypto';
import { basename } from 'node:path';
import { ErrorCode, RdbnetError } from '../errors.ts';
import {
  beginCaRotation,
  finishCaRotation as finishLocalCaRotation,
  isSignedBy,
  leafFiles,
  readCaState,
  resignLeaf,
  signerIn,
} from '../security/ca-rotation.ts';
import { readPem } from '../security/certs-dir.ts';
import { describeCertificate, type KeyBits } from '../security/pki.ts';
import { normalizeSerial, readRevocations } from '../security/revocations.ts';
import { rotateNode } from './node-rotation.ts';
import {
  eachNode,
  errorFields,
  type NodeLink,
  type NodeStep,
  type NodeTarget,
  type PkiOperator,
  requireClientRole,
  rotationLink,
} from './operator.ts';

export interface CaRotationInput {
  /** Validity of the new CA certificate. */
  caDays: number;
  /** Validity of the node and client certificates it signs. */
  days: number;
  keyBits: KeyBits;
}

interface CaSummary {
  serial: string;
  notAfter: string;
}

export interface CaRotationResult {
  phase: 'start' | 'finish';
  /** False when some node step failed; the command exits 1 and can be re-run. */
  ok: boolean;
  /** start: true when a rotation already in progress was continued, not begun. */
  resumed: boolean;
  cluster: string;
  ca: CaSummary;
  previousCa: CaSummary | null;
  /** Serials of the trust bundle (ca.crt) after this step. */
  bundle: string[];
  nodes: NodeStep[];
  /** Local client certificates re-signed by the new CA (start). */
  clients: { name: string; file: string; serial: string; previousSerial: string }[];
  /** Local certificates left alone: revoked ones are never re-signed, nor wait for. */
  skipped: { file: string; serial: string; reason: string }[];
  /** Files removed (finish: ca.previous.key). */
  removed: string[];
}

function summary(pem: string): CaSummary {
  const cert = new X509Certificate(pem);
  return { serial: cert.serialNumber, notAfter: cert.validToDate.toISOString() };
}

function bundleSerials(bundle: string[]): string[] {
  return bundle.map((pem) => new X509Certificate(pem).serialNumber);
}

async function nodeCertificate(link: NodeLink, target: NodeTarget) {
  return link(target, (client) => client.ask('certInfoRequest', {}));
}

/**
 * Phase 1. Begins a rotation (or resumes the one in progress), widens every named node's
 * trust bundle to [new, old] before any certificate changes, then moves each named node and
 * every local client certificate to the new CA. No node ever meets a certificate it does not
 * trust, so requests keep flowing.
 */
export async function startCaRotation(
  operator: PkiOperator,
  targets: NodeTarget[],
  opts: CaRotationInput,
): Promise<CaRotationResult> {
  let state = await readCaState(operator.certsDir);
  await requireClientRole(operator, 'certs.trust-bundle');
  const resumed = state.previous !== null;
  if (!resumed)
    state = await beginCaRotation(state, { validityDays: opts.caDays, keyBits: opts.keyBits });
  const bundlePem = state.bundle.join('');
  const result: CaRotationResult = {
    phase: 'start',
    ok: false,
    resumed,
    cluster: state.cluster,
    ca: summary(state.signing.certPem),
    previousCa: state.previous === null ? null : summary(state.previous.certPem),
    bundle: bundleSerials(state.bundle),
    nodes: [],
    clients: [],
    skipped: [],
    removed: [],
  };

  const link = await rotationLink(operator, state);
  // 1. Every node trusts both CAs before anything is signed by the new one.
  result.nodes = await eachNode(targets, async (target) => {
    const reply = await link(target, (client) => client.ask('trustBundleRequest', { bundlePem }));
    return { bundle: reply.certificates };
  });
  if (result.nodes.some((step) => !step.ok)) return result;

  // 2. Node certificates, one node at a time.
  for (const [index, step] of result.nodes.entries()) {
    const target = targets[index]!;
    try {
      const info = await nodeCertificate(link, target);
      if (isSignedBy(info.certPem, state.signing.certPem)) {
        step.serial = new X509Certificate(info.certPem).serialNumber;
        step.signedBy = result.ca.serial;
        step.skipped = 'already signed by the new CA';
        continue;
      }
      const rotation = await rotateNode(link, target, state, opts);
      step.nodeId = rotation.nodeId;
      step.serial = rotation.serial;
      step.signedBy = result.ca.serial;
      step.rotated = {
        serial: rotation.serial,
        previousSerial: rotation.previousSerial,
        notAfter: rotation.notAfter,
      };
    } catch (error) {
      Object.assign(step, { ok: false, ...errorFields(error) });
    }
  }

  // 3. Local client certificates, same key, new signature; a revoked one stays revoked.
  const revoked = await readRevocations(state.paths.revoked);
  for (const leaf of await leafFiles(state.paths.dir)) {
    if (leaf.kind !== 'client') continue;
    const certPem = await readPem(leaf.certFile, 'client certificate');
    if (isSignedBy(certPem, state.signing.certPem)) continue;
    const serial = new X509Certificate(certPem).serialNumber;
    if (revoked.has(normalizeSerial(serial))) {
      result.skipped.push({ file: leaf.certFile, serial, reason: 'revoked' });
      continue;
    }
    const resigned = await resignLeaf(state, leaf, { validityDays: opts.days });
    result.clients.push({ name: leaf.name, file: leaf.certFile, ...resigned });
  }
  result.ok = result.nodes.every((step) => step.ok);
  return result;
}

/**
 * Phase 2. Refuses (RDB_CA_STILL_IN_USE) while a named node or a local certificate is still
 * signed by another CA than the new one; otherwise narrows every named node's trust bundle
 * to the new CA, then the local one, and removes ca.previous.key.
 */
export async function finishCaRotation(
  operator: PkiOperator,
  targets: NodeTarget[],
): Promise<CaRotationResult> {
  const state = await readCaState(operator.certsDir);
  await requireClientRole(operator, 'certs.trust-bundle');
  const ca = state.signing.certPem;
  const result: CaRotationResult = {
    phase: 'finish',
    ok: false,
    resumed: false,
    cluster: state.cluster,
    ca: summary(ca),
    previousCa: state.previous === null ? null : summary(state.previous.certPem),
    bundle: bundleSerials([ca]),
    nodes: [],
    clients: [],
    skipped: [],
    removed: [],
  };

  const link = await rotationLink(operator, state);
  const asked = await eachNode(targets, async (target) => {
    const info = await nodeCertificate(link, target);
    const certificate = new X509Certificate(info.certPem);
    const signer = signerIn(info.certPem, state.bundle);
    return {
      nodeId: describeCertificate(info.certPem).identity?.id ?? '?',
      serial: certificate.serialNumber,
      signedBy: signer === undefined ? null : new X509Certificate(signer).serialNumber,
    };
  });
  const blocking: string[] = [];
  for (const step of asked) {
    if (step.ok && step.signedBy !== result.ca.serial) {
      blocking.push(`node '${step.nodeId}' at ${step.node} (serial ${step.serial})`);
    }
  }
  const revoked = await readRevocations(state.paths.revoked);
  for (const leaf of await leafFiles(state.paths.dir)) {
    const pem = await readPem(leaf.certFile, `${leaf.kind} certificate`);
    if (isSignedBy(pem, ca)) continue;
    const serial = new X509Certificate(pem).serialNumber;
    if (revoked.has(normalizeSerial(serial))) {
      result.skipped.push({ file: leaf.certFile, serial, reason: 'revoked' });
    } else {
      blocking.push(`${basename(leaf.certFile)} (serial ${serial})`);
    }
  }
  const unasked = asked.filter((step) => !step.ok);
  if (blocking.length === 0 && unasked.length > 0) {
    throw new RdbnetError(
      (unasked[0]!.code as ErrorCode | undefined) ?? ErrorCode.Internal,
      `cannot finish the CA rotation: could not ask ${unasked
        .map((step) => `${step.node} (${step.error})`)
        .join('; ')}`,
    );
  }
  for (const step of unasked) blocking.push(`${step.node} (could not ask: ${step.error})`);
  if (blocking.length > 0) {
    throw new RdbnetError(
      ErrorCode.CaStillInUse,
      `cannot finish the CA rotation: still signed by the old CA: ${blocking.join(', ')}`,
      {
        hint:
          'move them to the new CA with `rdbnet certs rotate --ca --nodes <host:port,...>` ' +
          '(it resumes the rotation in progress), or remove certificate files no longer in use',
      },
    );
  }

  result.nodes = await eachNode(targets, async (target) => {
    const reply = await link(target, (client) =>
      client.ask('trustBundleRequest', { bundlePem: ca }),
    );
    const before = asked.find((step) => step.node === target.node);
    return {
      bundle: reply.certificates,
      ...(before?.nodeId === undefined ? {} : { nodeId: before.nodeId }),
      ...(before?.serial === undefined ? {} : { serial: before.serial }),
      signedBy: before?.signedBy ?? null,
    };
  });
  if (result.nodes.some((step) => !step.ok)) return result;
  ({ removed: result.removed } = await finishLocalCaRotation(state));
  result.ok = true;
  return result;
}
