/**
 * What a running source wants an operator to know without reading its log: a state that loses changes, or may, and
 * lasts until someone acts (or decides it is meant). /status lists them per source (sources[].warnings); the daemon
 * sets a gauge for the ones that have one.
 */
export interface SourceWarning {
  readonly code: string;
  readonly message: string;
  readonly [detail: string]: unknown;
}

/** PostgreSQL: the publication leaves out operations, or does not publish via the partition root (publication-actions.ts). */
export const PUBLICATION_INCOMPLETE = "PG_PUBLICATION_INCOMPLETE";

/** A source's warnings, when it tells any. */
export function sourceWarnings(source: object): readonly SourceWarning[] {
  return (source as { warnings?: () => readonly SourceWarning[] }).warnings?.() ?? [];
}
