import { fork, type ChildProcess } from 'node:child_process';

/**
 * The benchmark's processes talk over Node's IPC channel: the parent calls named operations, each
 * child answers them. Every child answers `usage` with its own CPU time and RSS, so a server's cost
 * is measured in the process that pays it, never in the load generator's.
 */
export interface Usage {
  cpuMicros: number;
  rssBytes: number;
  heapUsedBytes: number;
}

type Handlers = Record<string, (args: Record<string, unknown>) => unknown>;

interface Call {
  id: number;
  op: string;
  args: Record<string, unknown>;
}

interface Answer {
  id: number;
  result?: unknown;
  error?: string;
}

function usage(): Usage {
  const cpu = process.cpuUsage();
  const memory = process.memoryUsage();
  return { cpuMicros: cpu.user + cpu.system, rssBytes: memory.rss, heapUsedBytes: memory.heapUsed };
}

/** In a child: answer the parent's calls; `ready` is sent once, when the child can take calls. */
export function serve(handlers: Handlers, ready: unknown): void {
  const all: Handlers = { usage, ...handlers };
  process.on('message', (message: Call) => {
    void (async () => {
      const handler = all[message.op];
      try {
        if (!handler) throw new Error(`no operation ${message.op}`);
        process.send!({ id: message.id, result: await handler(message.args) } satisfies Answer);
      } catch (error) {
        process.send!({ id: message.id, error: error instanceof Error ? (error.stack ?? error.message) : String(error) } satisfies Answer);
      }
    })();
  });
  // The parent is gone (killed, crashed): stop as `stop()` would, so that a SIGTERM handler still
  // closes what the child started (the stand-ins' Azurite and docker-registry would outlive it).
  process.on('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  process.send!({ ready });
}

export interface Child<R = unknown> {
  pid: number;
  /** What the child sent with `serve(…, ready)`. */
  ready: Promise<R>;
  call<T>(op: string, args?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

/** Starts a module (relative to bench/, or an absolute path) in its own Node process, with an IPC channel; TypeScript through tsx by default. */
export function start<R>(module: string, env: Record<string, string> = {}, execArgv = ['--import', 'tsx']): Child<R> {
  const child: ChildProcess = fork(module.startsWith('/') ? module : new URL(module, import.meta.url), [], {
    execArgv,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  let next = 0;
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<R>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`${module} exited (${code}) before it was ready`)));
    child.on('message', (message: Answer & { ready?: R }) => {
      if ('ready' in message) return resolve(message.ready as R);
      const call = pending.get(message.id);
      pending.delete(message.id);
      if (message.error !== undefined) call?.reject(new Error(`${module}: ${message.error}`));
      else call?.resolve(message.result);
    });
  });
  ready.catch(() => undefined);
  return {
    pid: child.pid!,
    ready,
    call: <T>(op: string, args: Record<string, unknown> = {}) =>
      new Promise<T>((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
        child.send({ id, op, args } satisfies Call);
      }),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}
