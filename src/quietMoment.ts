/**
 * Runs work that would hold up requests in the first moment without any: loading the telemetry
 * exporter takes ~350 ms of CPU on one thread, and started at once it lands in a cold instance's
 * first answer (issue 14). The work runs once nothing has been in flight for `quietMs`, counted from
 * the first answer, or from `idleMs` after start-up when no request comes (an instance kept ready);
 * and `latestMs` after start-up at the latest, busy or not, so that a loaded instance still starts it.
 */
export interface QuietMomentOptions {
  quietMs: number;
  idleMs: number;
  latestMs: number;
}

export interface RequestActivity {
  begin(): void;
  end(): void;
}

const DEFAULTS: QuietMomentOptions = { quietMs: 100, idleMs: 3000, latestMs: 10_000 };

export function inQuietMoment(work: () => void, options: QuietMomentOptions = DEFAULTS): RequestActivity {
  let inFlight = 0;
  let eligible = false;
  let done = false;
  let quiet: NodeJS.Timeout | undefined;
  const run = () => {
    if (done) return;
    done = true;
    clearTimeout(quiet);
    clearTimeout(idle);
    clearTimeout(latest);
    work();
  };
  const arm = () => {
    clearTimeout(quiet);
    if (!done && eligible && inFlight === 0) quiet = setTimeout(run, options.quietMs).unref();
  };
  const idle = setTimeout(() => {
    eligible = true;
    arm();
  }, options.idleMs).unref();
  const latest = setTimeout(run, options.latestMs).unref();
  return {
    begin() {
      inFlight += 1;
      clearTimeout(quiet);
    },
    end() {
      inFlight -= 1;
      eligible = true;
      arm();
    },
  };
}
