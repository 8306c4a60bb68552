/**
 * Table Storage row keys that sort newest first (the audit tables, rotation trails): inverted
 * milliseconds, so a plain ascending key range reads the latest entries first. Digits and `-` only.
 */
const MAX_MILLIS = 9_999_999_999_999;

/** The row-key prefix for a moment: later moments sort first. */
export function invertedTime(time: Date): string {
  return String(MAX_MILLIS - time.getTime()).padStart(13, '0');
}

/** A unique row key for an entry at `time` with the id `id` (a ULID). */
export function newestFirstKey(time: Date, id: string): string {
  return `${invertedTime(time)}-${id}`;
}
