/**
 * `node start --register`: the node registers itself with each provider that can (etcd,
 * consul) once it is up, retrying a failed registration a bounded number of times with
 * jittered backoff (each failure logged), and deregisters on `cluster leave` and on a
 * graceful stop, within REGISTER_CLOSE_DEADLINE_MS so a stop still ends in time.
 */
import { ErrorCode, RdbnetError } from '../errors.ts';
import { backoffDelayMs, type Logger, type Random } from '../runtime/index.ts';
import { sleep, type TimedClock } from '../runtime/timers.ts';
import type { Registration, SelfRegistration } from './provider.ts';
import type { DiscoverySource } from './resolve.ts';

/** Tries of one registration before the node gives up on it (and says so). */
export const REGISTER_ATTEMPTS_MAX = 5;
export const REGISTER_BACKOFF_BASE_MS = 500;
export const REGISTER_BACKOFF_CAP_MS = 10_000;
/** How long a stop waits for every deregistration together. */
export const REGISTER_CLOSE_DEADLINE_MS = 1500;

/** Refuses (exit 64, before anything runs) a --register spec whose provider cannot register. */
export function checkRegistrable(sources: readonly DiscoverySource[]): void {
  for (const source of sources) {
    if (source.instance.register === undefined) {
      throw new RdbnetError(
        ErrorCode.DiscoverySyntax,
        `provider=${source.provider} cannot register a node (--register ${source.text})`,
        { hint: 'providers that register: etcd, consul' },
      );
    }
  }
}

export interface SelfRegistrationsInit {
  sources: readonly DiscoverySource[];
  clock: TimedClock;
  random: Random;
  log: Logger;
}

export class SelfRegistrations {
  private readonly init: SelfRegistrationsInit;
  private readonly controller = new AbortController();
  private readonly live: { source: DiscoverySource; registration: Registration }[] = [];
  private running: Promise<void>[] = [];
  private closed = false;

  constructor(init: SelfRegistrationsInit) {
    this.init = init;
  }

  /** Registers `self` everywhere, in the background. */
  start(self: SelfRegistration): void {
    this.running = this.init.sources.map((source) => this.registerOne(source, self));
  }

  private async registerOne(source: DiscoverySource, self: SelfRegistration): Promise<void> {
    const { clock, random, log } = this.init;
    const signal = this.controller.signal;
    for (let attempt = 0; attempt < REGISTER_ATTEMPTS_MAX && !signal.aborted; attempt++) {
      try {
        const registration = await source.instance.register!(self, signal);
        if (this.closed) {
          await registration.close();
          return;
        }
        this.live.push({ source, registration });
        log.info('registered with discovery', {
          provider: source.provider,
          id: self.id,
          address: self.address,
        });
        return;
      } catch (error) {
        if (signal.aborted) return;
        const last = attempt + 1 === REGISTER_ATTEMPTS_MAX;
        const waitMs = backoffDelayMs(
          attempt,
          REGISTER_BACKOFF_BASE_MS,
          REGISTER_BACKOFF_CAP_MS,
          random,
        );
        log[last ? 'error' : 'warn'](
          last ? 'registration failed; giving up' : 'registration failed; retrying',
          {
            provider: source.provider,
            attempt: attempt + 1,
            attemptsMax: REGISTER_ATTEMPTS_MAX,
            code: (error as RdbnetError).code,
            reason: (error as Error).message,
            ...(last ? {} : { nextAttemptMs: waitMs }),
          },
        );
        if (last) return;
        await Promise.race([
          sleep(clock, waitMs, { unref: true }),
          new Promise<void>((resolve) =>
            signal.addEventListener('abort', () => resolve(), { once: true }),
          ),
        ]);
      }
    }
  }

  /** Deregisters everywhere (idempotent), bounded by REGISTER_CLOSE_DEADLINE_MS. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.controller.abort();
    const { clock, log } = this.init;
    const work = (async () => {
      await Promise.allSettled(this.running);
      await Promise.all(
        this.live.map(async ({ source, registration }) => {
          try {
            await registration.close();
            log.info('deregistered from discovery', { provider: source.provider });
          } catch (error) {
            log.warn('deregistration failed', {
              provider: source.provider,
              reason: (error as Error).message,
            });
          }
        }),
      );
    })();
    let timer: ReturnType<TimedClock['setTimer']> | null = null;
    await Promise.race([
      work,
      new Promise<void>((resolve) => {
        timer = clock.setTimer(REGISTER_CLOSE_DEADLINE_MS, () => {
          log.warn('deregistration did not finish in time', {
            deadlineMs: REGISTER_CLOSE_DEADLINE_MS,
          });
          resolve();
        });
      }),
    ]);
    if (timer !== null) clock.clearTimer(timer);
  }
}
