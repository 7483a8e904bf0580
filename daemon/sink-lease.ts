/**
 * How long a sink's lease on the embedded topic log lives unless renewed (SinkRunner's leaseTtlMs):
 * the environment variable SLUICE_SINK_LEASE_MS, or undefined for the runner's default (15 s).
 * A second process running the same sink gives up after it and 5 s more; a daemon restarted right
 * after a kill -9 waits up to it for its own dead process's leases (docs/operations.md).
 */
import { durationFromEnv } from "../runtime/env-duration.ts";

export function sinkLeaseTtlMs(env: NodeJS.ProcessEnv = process.env): number | undefined {
  if (!env["SLUICE_SINK_LEASE_MS"]?.trim()) return undefined;
  return durationFromEnv("SLUICE_SINK_LEASE_MS", 0, { min: 1_000, max: 3_600_000 }, env);
}
