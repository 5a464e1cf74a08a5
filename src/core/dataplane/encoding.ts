/**
 * How a payload is shown to people and scripts: as a UTF-8 string when it is valid UTF-8,
 * base64 otherwise, with the encoding named (docs/CLI.md, `rdbnet request --json`).
 */
export type PayloadEncoding = 'utf8' | 'base64';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

export function payloadText(payload: Uint8Array): { text: string; encoding: PayloadEncoding } {
  try {
    return { text: strictUtf8.decode(payload), encoding: 'utf8' };
  } catch {
    return { text: Buffer.from(payload).toString('base64'), encoding: 'base64' };
  }
}
