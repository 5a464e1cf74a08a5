import { isIP } from 'node:net';
import { ErrorCode, RdbnetError } from '../errors.ts';

export interface HostPort {
  host: string;
  port: number;
}

/** The largest TCP/UDP port number. */
const PORT_MAX = 65535;

/** Parses `host:port`, `[v6]:port` or `:port`. A missing host means 127.0.0.1. */
export function parseHostPort(text: string, what = 'address'): HostPort {
  const trimmed = text.trim();
  const match = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(trimmed);
  if (match === null) {
    throw new RdbnetError(ErrorCode.Usage, `invalid ${what} '${text}': expected host:port`, {
      hint: 'for example 127.0.0.1:7000 or [::1]:7000',
    });
  }
  const port = Number(match[3]);
  if (port > PORT_MAX) {
    // It is host:port; only the number is wrong, so say that (issue 16, defect 10).
    throw new RdbnetError(
      ErrorCode.Usage,
      `invalid ${what} '${text}': port ${match[3]} is out of range (0-${PORT_MAX})`,
      { hint: 'for example 127.0.0.1:7000 or [::1]:7000' },
    );
  }
  const host = match[1] ?? match[2] ?? '';
  if (match[1] !== undefined && isIP(host) !== 6) {
    throw new RdbnetError(
      ErrorCode.Usage,
      `invalid ${what} '${text}': [${host}] is not an IPv6 address`,
    );
  }
  return { host: host === '' ? '127.0.0.1' : host, port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
