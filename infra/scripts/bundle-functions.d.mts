/** Bundles `<root>/src/index.ts` into `outdir`/index.js and its chunks. */
export declare function bundleFunctions(outdir: string, root?: string): Promise<void>;
