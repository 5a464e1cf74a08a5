/**
 * A long-lived link to one peer that redials after failures with exponential backoff and
 * full jitter. Requests made while the link is down wait (bounded in number and time) for
 * the next connection instead of failing at once; after attemptsMax failed dials in a row
 * the link gives up and fails its waiters, and the next request starts a fresh round.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import type { DecodedEnvelope, Envelope } from '../protocol/messages.ts';
import { backoffDelayMs, type Random, systemRandom } from '../runtime/index.ts';
import { formatHostPort } from './address.ts';
import type { Connection } from './connection.ts';
import { type DialInit, dial } from './dial.ts';

export interface ReconnectOptions {
  /** Ceiling of the first retry delay; each later retry doubles it. */
  baseDelayMs: number;
  /** Largest delay between two dials. */
  capDelayMs: number;
  /** Failed dials in a row before the link gives up (until the next request). */
  attemptsMax: number;
  /** Requests that may wait for a connection; more are rejected at once. */
  waitersMax: number;
}

export const DEFAULT_RECONNECT_OPTIONS: Readonly<ReconnectOptions> = Object.freeze({
  baseDelayMs: 100,
  capDelayMs: 10_000,
  attemptsMax: 30,
  waitersMax: 1024,
});

export type LinkState = 'idle' | 'connecting' | 'open' | 'backoff' | 'failed' | 'closed';

interface Waiter {
  envelope: Envelope;
  timeoutMs: number;
  startedAtMs: number;
  deadline: NodeJS.Timeout;
  resolve(reply: DecodedEnvelope): void;
  reject(error: RdbnetError): void;
}

export class ReconnectingLink {
  state: LinkState = 'idle';
  /** Failed dials since the last successful one. */
  attempts = 0;
  lastError: RdbnetError | undefined;
  private connection: Connection | null = null;
  private readonly waiters = new Set<Waiter>();
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly init: DialInit;
  private readonly reconnect: ReconnectOptions;
  private readonly random: Random;
  private readonly dialer: typeof dial;

  constructor(
    init: DialInit,
    options: Partial<ReconnectOptions> = {},
    random: Random = systemRandom,
    dialer: typeof dial = dial,
  ) {
    this.init = init;
    this.reconnect = { ...DEFAULT_RECONNECT_OPTIONS, ...options };
    this.random = random;
    this.dialer = dialer;
  }

  get target(): string {
    return formatHostPort(this.init.address);
  }

  request(
    envelope: Envelope,
    timeoutMs = this.init.options.requestTimeoutMs,
  ): Promise<DecodedEnvelope> {
    if (this.state === 'closed') {
      return Promise.reject(
        new RdbnetError(ErrorCode.ConnectionClosed, `link to ${this.target} is closed`),
      );
    }
    if (this.connection !== null && this.connection.state === 'open') {
      return this.connection.request(envelope, timeoutMs);
    }
    if (this.waiters.size >= this.reconnect.waitersMax) {
      return Promise.reject(
        new RdbnetError(
          ErrorCode.InflightLimit,
          `${this.waiters.size} requests already wait for ${this.target}`,
        ),
      );
    }
    return new Promise<DecodedEnvelope>((resolve, reject) => {
      const waiter: Waiter = {
        envelope,
        timeoutMs,
        startedAtMs: performance.now(),
        resolve,
        reject,
        deadline: setTimeout(() => {
          this.waiters.delete(waiter);
          reject(
            new RdbnetError(
              ErrorCode.NodeUnreachable,
              `no connection to ${this.target} within ${timeoutMs} ms${this.lastError ? `: ${this.lastError.message}` : ''}`,
            ),
          );
        }, timeoutMs),
      };
      this.waiters.add(waiter);
      if (this.state === 'idle' || this.state === 'failed') {
        this.attempts = 0;
        this.connect();
      }
    });
  }

  close(): void {
    this.state = 'closed';
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.connection?.close();
    this.failWaiters(new RdbnetError(ErrorCode.ConnectionClosed, `link to ${this.target} closed`));
  }

  private connect(): void {
    this.state = 'connecting';
    this.dialer({
      ...this.init,
      hooks: {
        ...this.init.hooks,
        onClose: (connection, error) => {
          this.init.hooks?.onClose?.(connection, error);
          if (this.connection !== connection) return;
          this.connection = null;
          if (this.state === 'closed') return;
          this.lastError = error;
          // Redial only when someone is waiting; an idle link costs nothing.
          this.state = 'idle';
          if (this.waiters.size > 0) this.connect();
        },
      },
    }).then(
      (connection) => {
        if (this.state === 'closed') {
          connection.close();
          return;
        }
        this.connection = connection;
        this.state = 'open';
        this.attempts = 0;
        for (const waiter of this.waiters) {
          clearTimeout(waiter.deadline);
          // The time already spent waiting counts against the request's deadline.
          const remainingMs = waiter.timeoutMs - (performance.now() - waiter.startedAtMs);
          connection
            .request(waiter.envelope, Math.max(1, remainingMs))
            .then(waiter.resolve, waiter.reject);
        }
        this.waiters.clear();
      },
      (error: RdbnetError) => {
        if (this.state === 'closed') return;
        this.lastError = error;
        this.attempts++;
        if (this.attempts >= this.reconnect.attemptsMax) {
          this.state = 'failed';
          this.failWaiters(error);
          return;
        }
        this.state = 'backoff';
        const delay = backoffDelayMs(
          this.attempts - 1,
          this.reconnect.baseDelayMs,
          this.reconnect.capDelayMs,
          this.random,
        );
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          if (this.state === 'backoff') this.connect();
        }, delay);
      },
    );
  }

  private failWaiters(error: RdbnetError): void {
    for (const waiter of this.waiters) {
      clearTimeout(waiter.deadline);
      waiter.reject(error);
    }
    this.waiters.clear();
  }
}
