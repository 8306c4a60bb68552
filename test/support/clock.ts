/**
 * Moves this process's clock forward without waiting. The broker, the in-process stand-ins and jose
 * all read the time from Date, so a test can cross a 30 s cooldown or half a token's life at once
 * and pin a boundary to the second. Out-of-process parts (Azurite, docker-registry) keep real time.
 * Install before the harness starts: some code keeps a reference to `Date.now`.
 */
const RealDate = Date;
const realNow = RealDate.now.bind(RealDate);
let offset = 0;
let installed = false;

export function installShiftableClock(): void {
  if (installed) return;
  installed = true;
  RealDate.now = () => realNow() + offset;
  globalThis.Date = new Proxy(RealDate, {
    construct: (target, args: unknown[], newTarget: NewableFunction) =>
      Reflect.construct(target, args.length === 0 ? [target.now()] : args, newTarget) as object,
    apply: () => new RealDate(RealDate.now()).toString(),
  });
}

export function advanceClock(ms: number): void {
  if (!installed) throw new Error('installShiftableClock() first');
  offset += ms;
}
