/**
 * Which deployment (the config's `name:`) wrote each source's checkpoint in an embedded log
 * (`log_meta` key `deployment:<source>`). Topics are named under the deployment but checkpoints by
 * source alone, so a renamed deployment would resume from the old position into new, empty topics,
 * without a snapshot: a sink added later would silently miss the history. Such a start is refused.
 */
import type { DatabaseSync } from "node:sqlite";
import { ConfigError } from "../errors.ts";

function keyOf(source: string): string {
  return `deployment:${source}`;
}

/** The deployment recorded for `source`'s checkpoint; null when none is (a file from before this was recorded). */
export function recordedDeployment(db: DatabaseSync, source: string): string | null {
  // A read-only open of a file older than log_meta has no such table.
  if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'log_meta'").get()) return null;
  const row = db.prepare("SELECT value FROM log_meta WHERE key = ?").get(keyOf(source)) as { value: string } | undefined;
  return row?.value ?? null;
}

/** Within a write transaction: `deployment` wrote `source`'s checkpoint. */
export function recordDeployment(db: DatabaseSync, source: string, deployment: string): void {
  db.prepare("INSERT INTO log_meta (key, value) VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value").run(keyOf(source), deployment);
}

export function renamedDeploymentError(path: string, source: string, recorded: string, deployment: string): ConfigError {
  return new ConfigError(
    `source "${source}": its checkpoint in the embedded topic log ${path} was written by deployment "${recorded}", but the config's name is "${deployment}". ` +
      `Topics are named under the deployment, so capture would resume where "${recorded}" stopped into new, empty topics, and a sink added later would miss the history. ` +
      `Put name: ${recorded} back; or run "${deployment}" as a new deployment on a new topics.path (it snapshots afresh; docs/topics.md, "Renaming a deployment").`,
    { code: "DEPLOYMENT_RENAMED", context: { component: "embedded-log", path, source, recorded, deployment } },
  );
}
