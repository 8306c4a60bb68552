/**
 * How long a rotation run may wait on its dependencies. A budget starts when the run renews its lease
 * and lasts half of it, and every Key Vault, Table and upstream call under it ends, answered or
 * aborted, by then: an instance that stalls is never still calling out when another one takes over.
 */
export interface CallBudget {
  /** Wall-clock epoch ms, for `upstreamFetch`. */
  deadline: number;
  /** The same moment as a signal, for the Azure SDKs' `abortSignal`. */
  signal: AbortSignal;
}

export function callBudget(ms: number): CallBudget {
  return { deadline: Date.now() + ms, signal: AbortSignal.timeout(ms) };
}

/** For work that takes no signal (it has its own, shorter timeout): the run stops waiting at the deadline. */
export function within<T>(signal: AbortSignal, work: Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => {
      work.catch(() => undefined);
      reject(signal.reason as Error);
    };
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}
