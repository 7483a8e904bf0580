/**
 * Which parts of a deployment's config one `sluice run` process runs: capture for some or all
 * sources, some or all sinks (`--role capture|sinks|all`, `--source NAME`, `--sink NAME`). The
 * default is everything, as before roles existed.
 */
import type { SluiceConfig } from "../config/schema.ts";

export const ROLES = ["capture", "sinks", "all"] as const;
export type Role = (typeof ROLES)[number];

export interface RunSelection {
  /** Names of the sources this process captures (config order). */
  readonly sources: readonly string[];
  /** Names of the sinks this process runs (config order). */
  readonly sinks: readonly string[];
  /** The roles as given (for /status): "capture", "sinks", or both. */
  readonly roles: readonly ("capture" | "sinks")[];
}

export interface RoleArguments {
  readonly role?: readonly string[];
  readonly source?: readonly string[];
  readonly sink?: readonly string[];
}

export class RoleError extends Error {}

/** Splits repeated and comma-separated values: `--role capture,sinks --role all` -> ["capture", "sinks", "all"]. */
export function listValues(values: readonly string[] | undefined): string[] {
  return (values ?? []).flatMap((value) => value.split(",")).map((value) => value.trim()).filter((value) => value !== "");
}

/**
 * The roles given on the command line, checked against the names a config has (before the config
 * is validated as a whole, so a sink-only process can skip the secrets of sources it does not capture).
 */
export function parseRoles(args: RoleArguments): { roles: Set<"capture" | "sinks">; sources: string[]; sinks: string[] } {
  const given = listValues(args.role);
  for (const role of given) {
    if (!(ROLES as readonly string[]).includes(role)) throw new RoleError(`unknown role "${role}"; roles are ${ROLES.join(", ")}`);
  }
  const roles = new Set<"capture" | "sinks">();
  for (const role of given.length === 0 ? ["all"] : given) {
    if (role === "all" || role === "capture") roles.add("capture");
    if (role === "all" || role === "sinks") roles.add("sinks");
  }
  const sources = listValues(args.source);
  const sinks = listValues(args.sink);
  if (sources.length > 0 && !roles.has("capture")) throw new RoleError("--source selects sources to capture: give it with --role capture (or all)");
  if (sinks.length > 0 && !roles.has("sinks")) throw new RoleError("--sink selects sinks to run: give it with --role sinks (or all)");
  return { roles, sources, sinks };
}

/** The sources and sinks of `config` a process with these roles runs; unknown names are refused, naming the config's. */
export function selectParts(config: Pick<SluiceConfig, "sources" | "sinks">, parsed: ReturnType<typeof parseRoles>): RunSelection {
  const pick = (kind: "source" | "sink", all: readonly string[], wanted: readonly string[], enabled: boolean): string[] => {
    if (!enabled) return [];
    for (const name of wanted) {
      if (!all.includes(name)) throw new RoleError(`unknown ${kind} "${name}"; the config's ${kind}s are ${all.map((n) => `"${n}"`).join(", ") || "(none)"}`);
    }
    return wanted.length === 0 ? [...all] : all.filter((name) => wanted.includes(name));
  };
  return {
    sources: pick("source", config.sources.map((s) => s.name), parsed.sources, parsed.roles.has("capture")),
    sinks: pick("sink", config.sinks.map((s) => s.name), parsed.sinks, parsed.roles.has("sinks")),
    roles: [...parsed.roles],
  };
}

/** Everything the config has: what `sluice run` runs without role options. */
export function everything(config: Pick<SluiceConfig, "sources" | "sinks">): RunSelection {
  return { sources: config.sources.map((s) => s.name), sinks: config.sinks.map((s) => s.name), roles: ["capture", "sinks"] };
}

/**
 * The capture's Kafka transactional-id suffix: none when this process captures every source (the
 * id `<deployment>.<client_id>` of a process running everything), else one per set of sources, so
 * processes capturing different sources never fence each other and processes capturing the same
 * ones (a leader and its standbys) always do.
 */
export function captureWriter(config: Pick<SluiceConfig, "sources">, selection: RunSelection): string | undefined {
  if (selection.sources.length === config.sources.length) return undefined;
  return `capture.${[...selection.sources].sort().join("+")}`;
}
