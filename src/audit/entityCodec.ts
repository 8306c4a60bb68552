import * as z from 'zod';
import { memberPrefix, memberValue, type EncodedProperties } from '../tableBatch.js';

/**
 * One conversion between an audit record (its zod schema) and a Table Storage entity, for every
 * audit table: lists and documents are stored as JSON text (Azure Tables has no such types), dates
 * as Edm.DateTime, absent fields not at all. Reading back coerces by the schema's field types and
 * never drops a record: an audit search must show every row, however it was written.
 */
type Kind = 'string' | 'number' | 'boolean' | 'date' | 'list' | 'document';

/** Documents (grants, blocks before/after) are capped so that a row stays far below 1 MiB. */
const MAX_DOCUMENT_CHARS = 30_000;

function kindOf(field: z.ZodType): Kind {
  const inner = field instanceof z.ZodOptional ? (field.unwrap() as z.ZodType) : field;
  if (inner instanceof z.ZodDate) return 'date';
  if (inner instanceof z.ZodArray) return 'list';
  if (inner instanceof z.ZodNumber) return 'number';
  if (inner instanceof z.ZodBoolean) return 'boolean';
  if (inner instanceof z.ZodString || inner instanceof z.ZodEnum || inner instanceof z.ZodLiteral) return 'string';
  return 'document';
}

/** A field: its name, its kind, and the start of its member in an encoded entity (tableBatch.ts). */
type Field = [name: string, kind: Kind, prefix: string];
const fieldsBySchema = new WeakMap<z.ZodObject, Field[]>();

/** Each field of a schema, worked out once: every issuance builds an entity, on the hot path. */
function fieldsOf(schema: z.ZodObject): Field[] {
  let known = fieldsBySchema.get(schema);
  if (!known) {
    known = Object.entries(schema.shape).map(([name, field]) => {
      const kind = kindOf(field as z.ZodType);
      return [name, kind, memberPrefix(name, kind === 'date')];
    });
    fieldsBySchema.set(schema, known);
  }
  return known;
}

/** A field's value as stored: lists and documents as JSON text. */
function storedValue(kind: Kind, value: unknown): unknown {
  return kind === 'list' ? JSON.stringify(value) : kind === 'document' ? JSON.stringify(value).slice(0, MAX_DOCUMENT_CHARS) : value;
}

export function toEntityFields<S extends z.ZodObject>(schema: S, record: z.infer<S>): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [name, kind] of fieldsOf(schema)) {
    const value = (record as Record<string, unknown>)[name];
    if (value !== undefined) fields[name] = storedValue(kind, value);
  }
  return fields;
}

/** The same fields, encoded for a body of the audit writer's (tableBatch.ts). */
export function encodeRecord<S extends z.ZodObject>(schema: S, record: z.infer<S>): EncodedProperties {
  let text = '';
  for (const [name, kind, prefix] of fieldsOf(schema)) {
    const value = (record as Record<string, unknown>)[name];
    if (value !== undefined) text += prefix + memberValue(storedValue(kind, value));
  }
  return text as EncodedProperties;
}

/** A list field as stored (JSON text): its items, or none if it is absent or not a list. */
export function listField(value: unknown): string[] {
  const list = parsedJson(value);
  return Array.isArray(list) ? list.map(String) : [];
}

function parsedJson(value: unknown): unknown {
  try {
    return JSON.parse(String(value));
  } catch {
    return value;
  }
}

export function fromEntity<S extends z.ZodObject>(schema: S, entity: Record<string, unknown>): z.infer<S> {
  const record: Record<string, unknown> = {};
  for (const [name, kind] of fieldsOf(schema)) {
    const value = entity[name];
    if (value === undefined || value === null) {
      if (kind === 'list') record[name] = [];
      continue;
    }
    switch (kind) {
      case 'date':
        record[name] = value instanceof Date ? value : new Date(String(value));
        break;
      case 'list':
        record[name] = listField(value);
        break;
      case 'number':
        record[name] = Number(value);
        break;
      case 'boolean':
        if (typeof value === 'boolean') record[name] = value;
        break;
      case 'string':
        record[name] = String(value);
        break;
      case 'document':
        record[name] = parsedJson(value);
        break;
    }
  }
  return record as z.infer<S>;
}

/** The record as the admin API sends it: the schema with its dates as ISO 8601 text (what JSON.stringify gives). */
export function asJsonShape<S extends z.ZodObject>(schema: S) {
  const dates = Object.entries(schema.shape).filter(([, field]) => kindOf(field as z.ZodType) === 'date');
  return schema.extend(
    Object.fromEntries(dates.map(([name, field]) => [name, field instanceof z.ZodOptional ? z.string().optional() : z.string()])) as Record<string, z.ZodType>,
  );
}
