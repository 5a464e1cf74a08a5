/**
 * EMULATED Azure endpoints for provider=azure (no real Azure is reachable here), built from
 * Microsoft's documentation, on one loopback HTTP server:
 * - the identity platform's token endpoint `POST /{tenant}/oauth2/v2.0/token` with the
 *   client-credentials grant: checks tenant, client id, secret and the ARM `.default` scope,
 *   answering AADSTS errors (`{"error": "invalid_client", "error_description": "AADSTS…"}`);
 * - Resource Manager: VMSS network interfaces (Microsoft.Compute) and network interfaces of a
 *   subscription or resource group (Microsoft.Network), demanding a token it issued and an
 *   `api-version`, paging with an absolute `nextLink`, ARM's error body
 *   (`{"error": {"code", "message"}}`).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EmulatedNic {
  name: string;
  resourceGroup: string;
  /** The scale set the NIC belongs to, if any. */
  scaleSet?: string;
  vm: string;
  privateIp: string;
  tags?: Record<string, string>;
}

export interface EmulatedAzure {
  url: string;
  tenantId: string;
  clientId: string;
  clientSecret: string;
  subscriptionId: string;
  nics: EmulatedNic[];
  /** NICs per page before a nextLink. */
  pageSize: number;
  /** When set, nextLink points at this origin instead of the server's own (a hostile page). */
  nextLinkOrigin: string | undefined;
  /** ARM requests that passed authentication (path and query). */
  armRequests: string[];
  tokensIssued: number;
  close(): Promise<void>;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function aadError(res: ServerResponse, status: number, error: string, description: string): void {
  json(res, status, {
    error,
    error_description: `${description}\r\nTrace ID: ${randomUUID()}\r\nCorrelation ID: ${randomUUID()}\r\nTimestamp: ${new Date().toISOString()}`,
    error_codes: [Number(/AADSTS(\d+)/.exec(description)?.[1] ?? 0)],
    timestamp: new Date().toISOString(),
  });
}

function armError(res: ServerResponse, status: number, code: string, message: string): void {
  json(res, status, { error: { code, message } });
}

export async function startEmulatedAzure(): Promise<EmulatedAzure> {
  const state: EmulatedAzure = {
    url: '',
    tenantId: randomUUID(),
    clientId: randomUUID(),
    clientSecret: `emulated~${randomBytes(12).toString('base64url')}`,
    subscriptionId: randomUUID(),
    nics: [],
    pageSize: 1000,
    nextLinkOrigin: undefined,
    armRequests: [],
    tokensIssued: 0,
    close: async () => {},
  };
  const issued = new Set<string>();

  const nicJson = (nic: EmulatedNic) => {
    const sub = `/subscriptions/${state.subscriptionId}/resourceGroups/${nic.resourceGroup}`;
    const id =
      nic.scaleSet === undefined
        ? `${sub}/providers/Microsoft.Network/networkInterfaces/${nic.name}`
        : `${sub}/providers/Microsoft.Compute/virtualMachineScaleSets/${nic.scaleSet}/virtualMachines/${nic.vm}/networkInterfaces/${nic.name}`;
    return {
      name: nic.name,
      id,
      location: 'westeurope',
      ...(nic.tags === undefined ? {} : { tags: nic.tags }),
      properties: {
        provisioningState: 'Succeeded',
        primary: true,
        virtualMachine: {
          id:
            nic.scaleSet === undefined
              ? `${sub}/providers/Microsoft.Compute/virtualMachines/${nic.vm}`
              : `${sub}/providers/Microsoft.Compute/virtualMachineScaleSets/${nic.scaleSet}/virtualMachines/${nic.vm}`,
        },
        ipConfigurations: [
          {
            name: 'ipconfig1',
            id: `${id}/ipConfigurations/ipconfig1`,
            properties: {
              privateIPAddress: nic.privateIp,
              privateIPAllocationMethod: 'Dynamic',
              privateIPAddressVersion: nic.privateIp.includes(':') ? 'IPv6' : 'IPv4',
              primary: true,
            },
          },
        ],
      },
    };
  };

  const server = createServer((req, res) => {
    void readBody(req).then((body) => {
      const url = new URL(req.url ?? '/', 'http://127.0.0.1');
      const tokenPath = /^\/([^/]+)\/oauth2\/v2\.0\/token$/.exec(url.pathname);
      if (tokenPath !== null) {
        if (req.method !== 'POST')
          return aadError(
            res,
            405,
            'invalid_request',
            'AADSTS900561: The endpoint only accepts POST requests.',
          );
        const form = new URLSearchParams(body);
        if (tokenPath[1] !== state.tenantId) {
          return aadError(
            res,
            400,
            'invalid_request',
            `AADSTS90002: Tenant '${tokenPath[1]}' not found.`,
          );
        }
        if (form.get('grant_type') !== 'client_credentials') {
          return aadError(
            res,
            400,
            'unsupported_grant_type',
            'AADSTS70003: The app requested an unsupported grant type.',
          );
        }
        if (form.get('client_id') !== state.clientId) {
          return aadError(
            res,
            400,
            'unauthorized_client',
            `AADSTS700016: Application with identifier '${form.get('client_id')}' was not found in the directory.`,
          );
        }
        if (form.get('client_secret') !== state.clientSecret) {
          return aadError(
            res,
            401,
            'invalid_client',
            `AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${state.clientId}'.`,
          );
        }
        if (form.get('scope') !== 'https://management.azure.com/.default') {
          return aadError(
            res,
            400,
            'invalid_scope',
            `AADSTS70011: The provided value for scope ${form.get('scope')} is not valid.`,
          );
        }
        const token = `eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.emulated.${randomBytes(16).toString('base64url')}`;
        issued.add(token);
        state.tokensIssued++;
        return json(res, 200, {
          token_type: 'Bearer',
          expires_in: 3599,
          ext_expires_in: 3599,
          access_token: token,
        });
      }

      const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
      if (bearer === undefined) {
        return armError(
          res,
          401,
          'AuthenticationFailed',
          "Authentication failed. The 'Authorization' header is missing.",
        );
      }
      if (!issued.has(bearer))
        return armError(res, 401, 'InvalidAuthenticationToken', 'The access token is invalid.');
      if (!url.searchParams.has('api-version')) {
        return armError(
          res,
          400,
          'MissingApiVersionParameter',
          'The api-version query parameter (?api-version=) is required for all requests.',
        );
      }
      const m =
        /^\/subscriptions\/([^/]+)(?:\/resourceGroups\/([^/]+))?\/providers\/(Microsoft\.Compute\/virtualMachineScaleSets\/([^/]+)\/networkInterfaces|Microsoft\.Network\/networkInterfaces)$/i.exec(
          url.pathname,
        );
      if (m === null)
        return armError(res, 404, 'InvalidResourceType', 'The resource type could not be found.');
      const [, sub, group, , scaleSet] = m;
      if (sub !== state.subscriptionId) {
        return armError(
          res,
          404,
          'SubscriptionNotFound',
          `The subscription '${sub}' could not be found.`,
        );
      }
      state.armRequests.push(`${url.pathname}${url.search}`);
      let selected: EmulatedNic[];
      if (scaleSet !== undefined) {
        if (group === undefined)
          return armError(res, 404, 'InvalidResourceType', 'The resource type could not be found.');
        selected = state.nics.filter((n) => n.resourceGroup === group && n.scaleSet === scaleSet);
        if (selected.length === 0) {
          return armError(
            res,
            404,
            'ResourceNotFound',
            `The Resource 'Microsoft.Compute/virtualMachineScaleSets/${scaleSet}' under resource group '${group}' was not found.`,
          );
        }
      } else {
        selected = state.nics.filter((n) => group === undefined || n.resourceGroup === group);
      }
      const start = Number(url.searchParams.get('$skiptoken') ?? 0);
      const page = selected.slice(start, start + state.pageSize);
      const nextStart = start + state.pageSize;
      let nextLink: string | undefined;
      if (nextStart < selected.length) {
        const next = new URL(url.pathname, state.nextLinkOrigin ?? state.url);
        next.searchParams.set('api-version', url.searchParams.get('api-version')!);
        next.searchParams.set('$skiptoken', String(nextStart));
        nextLink = next.toString();
      }
      return json(res, 200, {
        value: page.map(nicJson),
        ...(nextLink === undefined ? {} : { nextLink }),
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${port}`;
  state.close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return state;
}
