/**
 * The answer to a request for a sink (query, rebuild, abandon a rebuild, erase, release a halt) that this process
 * does not run. With scale-out roles (`--role capture`, `--role sinks --sink NAME`) a sink of the config runs in some
 * processes only; "no rebuildable sink" sent the operator looking for a typo in a name that was right.
 */
import { hostname } from "node:os";
import type { InstanceReport } from "./instances.ts";

/** The sinks of the config, and those this process runs (RunSelection). */
export interface SinkPlacement {
  readonly configured: readonly string[];
  readonly here: readonly string[];
  readonly roles: readonly string[];
}

/** An instance as InstanceDirectory.instances() gives it. */
export type SeenInstance = Pick<InstanceReport, "id" | "sinks" | "api"> & Partial<Pick<InstanceReport, "host">> & { readonly stale: boolean; readonly self: boolean };

/** Null when the sink runs in this process; else why not, and where it runs if the instance reports say. */
export function sinkNotHere(name: string, placement: SinkPlacement, instances: readonly SeenInstance[]): string | null {
  if (placement.here.includes(name)) return null;
  if (!placement.configured.includes(name)) return `no sink "${name}" in the config; sinks: ${placement.configured.join(", ") || "(none)"}`;
  const notHere = `sink "${name}" is in the config but does not run in this process (roles: ${placement.roles.join(", ") || "none"}; sinks run here: ${placement.here.join(", ") || "none"})`;
  const holders = instances.filter((i) => !i.self && i.sinks.some((s) => s.name === name));
  const live = holders.filter((i) => !i.stale);
  if (live.length > 0) {
    return `${notHere}. It runs in ${live.map((i) => i.id).join(", ")} (host:pid, from the deployment's instance reports); send the request there: ${live.map(reachedBy).join("; ")}`;
  }
  if (holders.length > 0) {
    return `${notHere}. ${holders.map((i) => i.id).join("; ")} announced it but has not reported for a while (stale): that process is probably gone; start one with --role sinks --sink ${name}`;
  }
  return `${notHere}, and no other process of the deployment announces it (instance reports need the Kafka topic log): send the request to the process started with --role sinks (or all) running it`;
}

/**
 * How a sluice command reaches a process running the sink. The report's `api` is what that process listens on: on
 * loopback (http.listen's default, 127.0.0.1:8080) no other host reaches it, and naming it would point a command on
 * this host at its own process; a host name may be one only its own network resolves (a pod's name).
 */
function reachedBy(i: SeenInstance): string {
  const api = /^(https?):\/\/(.+):(\d+)$/.exec(i.api ?? "");
  if (api === null) return `${i.id} does not report its admin API (an earlier version): run the command with the config of that process`;
  const host = api[2]!;
  const listen = `${host}:${api[3]!}`;
  const tls = api[1] === "https" ? ", and the http.tls settings of that process (it serves TLS)" : "";
  if (isLoopback(host)) {
    return `${i.id} listens on loopback only (${listen}): run the command on host ${i.host ?? i.id.slice(0, i.id.lastIndexOf(":"))}, with http.listen ${listen}${tls}`;
  }
  return `${i.id} listens on ${listen}: run the command with http.listen ${listen}${tls}`;
}

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "[::1]" || /^127\./.test(host);
}

/** The admin API's address for other hosts, scheme://host:port: the host name where it listens on every interface. */
export function apiAddress(bound: { address: string; port: number }, tls: boolean): string {
  const host = bound.address === "0.0.0.0" || bound.address === "::" ? hostname() : bound.address.includes(":") ? `[${bound.address}]` : bound.address;
  return `${tls ? "https" : "http"}://${host}:${bound.port}`;
}
