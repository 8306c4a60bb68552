import { isMap, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import * as z from 'zod';
import { grantBodySchema, type Grant } from '../grants/model.js';
import { isRepositoryPattern } from '../grants/pattern.js';
import { ACTIONS } from '../registries/scope.js';
import { unmatchableSegment } from './patternCoverage.js';

/**
 * Grants as code: a YAML file `grants: [ … ]` checked offline against the broker's own grant schema
 * (src/grants/model.ts) and for meaning the schema cannot see. Every finding names its line.
 */
export interface Finding {
  line: number;
  where: string;
  message: string;
}

export interface LintResult {
  grants: Grant[];
  findings: Finding[];
}

type Path = (string | number)[];

function describe(path: Path): string {
  return path.map((part, i) => (typeof part === 'number' ? `[${part}]` : i === 0 ? part : `.${part}`)).join('');
}

/** The message a person fixes the file by; zod's own where it already says it plainly. */
function messageOf(issue: z.core.$ZodIssue, value: unknown): string {
  const parent = issue.path.at(-2);
  if (issue.code === 'invalid_value' && parent === 'actions') return `unknown action ${JSON.stringify(value)}; allowed: ${ACTIONS.join(', ')}`;
  if (parent === 'subjects' || (issue.path.includes('subjects') && issue.code === 'invalid_format')) {
    return `malformed subject ${JSON.stringify(value)}: a subject is { objectId: <GUID> } or { appId: <GUID> }`;
  }
  if (issue.code === 'unrecognized_keys') return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
  return issue.message;
}

function valueAt(data: unknown, path: Path): unknown {
  return path.reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Record<string, unknown>)[key as string] : undefined), data);
}

function lineAt(doc: Document, lines: LineCounter, path: Path): number {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = doc.getIn(path.slice(0, depth), true) as { range?: [number, number, number] } | undefined;
    if (node?.range) return lines.linePos(node.range[0]).line;
  }
  return 1;
}

/**
 * Lints the file's text. `catalog`, when given (the hosts the broker serves), also makes a grant
 * for any other registry a finding.
 */
export function lintGrants(text: string, catalog?: string[]): LintResult {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return { grants: [], findings: doc.errors.map((error) => ({ line: error.linePos?.[0].line ?? 1, where: 'yaml', message: error.message.split('\n')[0]! })) };
  }
  const findings: Finding[] = [];
  const add = (path: Path, message: string) => findings.push({ line: lineAt(doc, lines, path), where: describe(path), message });
  const contents = doc.contents;
  if (!isMap(contents) || !isSeq(contents.get('grants', true)) || contents.items.length !== 1) {
    add([], 'the file must be one mapping with a single key, grants: a list of grants');
    return { grants: [], findings };
  }
  const data = doc.toJS() as { grants: unknown[] };
  const grants: Grant[] = [];
  const firstLine = new Map<string, number>();
  data.grants.forEach((raw, index) => {
    const path: Path = ['grants', index];
    const parsed = grantBodySchema.safeParse(raw);
    if (!parsed.success) {
      for (const issue of parsed.error.issues) {
        const at = [...path, ...(issue.path as Path)];
        add(at, messageOf(issue, valueAt(data, at)));
      }
    }
    const id = (raw as { id?: unknown } | null)?.id;
    if (typeof id === 'string') {
      const seen = firstLine.get(id);
      if (seen !== undefined) add([...path, 'id'], `duplicate id "${id}" (first on line ${seen})`);
      else firstLine.set(id, lineAt(doc, lines, [...path, 'id']));
    }
    // Meaning, checked on whatever parts are well-formed, so one run reports every mistake.
    const { repositories, registry } = (raw ?? {}) as { repositories?: unknown; registry?: unknown };
    if (Array.isArray(repositories)) {
      repositories.forEach((pattern: unknown, i) => {
        const segment = typeof pattern === 'string' && isRepositoryPattern(pattern) ? unmatchableSegment(pattern) : undefined;
        if (segment !== undefined) add([...path, 'repositories', i], `pattern "${String(pattern)}" can never match: no repository name has a segment "${segment}"`);
      });
    }
    const host = typeof registry === 'string' ? registry.toLowerCase() : undefined;
    if (catalog && host && !catalog.includes(host)) add([...path, 'registry'], `registry "${host}" is not in the broker's catalog (${catalog.join(', ')})`);
    if (parsed.success) grants.push(parsed.data);
  });
  findings.sort((a, b) => a.line - b.line);
  return { grants, findings };
}

export function formatFindings(file: string, findings: Finding[]): string {
  return findings.map((finding) => `${file}:${finding.line}: ${finding.where}: ${finding.message}\n`).join('');
}
