/**
 * The chaos program (issue 12): a random workload on PostgreSQL while the daemon is SIGKILLed at
 * random moments, or while the servers it depends on go away; then every sink compared with
 * PostgreSQL row by row and value by value. Prints the seed and the figures (kills, rows compared,
 * lost / extra / stale / wrong, rows that went backwards); exits 1 when any of them is not 0.
 *
 *   node test/chaos/chaos.ts [--config embedded-duckdb|kafka-clickhouse-es|all] [--kills 10] [--seed N]
 *                            [--preload 40000] [--max-big-rows 50000] [--snapshot-kills 2] [--until <ISO time>]
 *                            [--pace-ms 12] [--big-every-s 4] [--partitions 3]
 *
 * SIGINT / SIGTERM (like --until) end the kills early; the run then catches up and compares as usual.
 *   node test/chaos/chaos.ts --outage [--outage-seconds 60] [--seed N]
 *
 * --outage runs against PRIVATE instances of PostgreSQL, Kafka, ClickHouse and Elasticsearch that
 * it starts itself (other ports, its own services directory) and stops one after the other while
 * the workload runs; see outage.ts. The shared services are never touched.
 *
 * A failing run is reproduced with its --seed (same workload and kill plan; the timing differs).
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import type { Configuration, KillFigures } from "./run.ts";
import { CONFIGURATIONS, runKills } from "./run.ts";

export function failures(figures: KillFigures): string[] {
  const out: string[] = [];
  for (const name of ["lost", "extra", "stale", "wrong", "backwards"] as const) if (figures[name] > 0) out.push(`${figures[name]} ${name}`);
  if (figures.unexpectedExits.length > 0) out.push(`${figures.unexpectedExits.length} unexpected exits: ${figures.unexpectedExits.join(" | ")}`);
  return out;
}

export function summary(figures: KillFigures): string {
  const kinds = Object.entries(figures.killKinds).map(([k, n]) => `${n} ${k}`).join(", ");
  return [
    `${figures.configuration} seed ${figures.seed}: ${figures.kills} kills (${kinds}) in ${figures.seconds} s, ${figures.rowsCompared} rows compared: ` +
      `lost ${figures.lost}, extra ${figures.extra}, stale ${figures.stale}, wrong ${figures.wrong}, backwards ${figures.backwards}, unexpected exits ${figures.unexpectedExits.length}`,
    ...figures.sinks.map((s) => `  ${s.sink}: ${s.compared} rows compared, lost ${s.lost}, extra ${s.extra}, stale ${s.stale}, wrong ${s.wrong}; ${s.samples} samples, backwards ${s.backwards} (older rev ${s.olderRev}, came back ${s.cameBack})`),
    `  workload: ${JSON.stringify(figures.workload)}`,
    ...figures.examples.map((e) => `  ${e}`),
    ...figures.unexpectedExits.map((e) => `  ${e}`),
    ...(figures.dir ? [`  run directory kept: ${figures.dir}`] : []),
  ].join("\n");
}

async function main(): Promise<void> {
  const { values: args } = parseArgs({
    options: {
      config: { type: "string", default: "all" },
      kills: { type: "string", default: "10" },
      seed: { type: "string" },
      preload: { type: "string", default: "40000" },
      "max-big-rows": { type: "string", default: "50000" },
      "snapshot-kills": { type: "string", default: "2" },
      /** Stop killing at this time (e.g. 2026-12-05T02:10:00Z); the figures give the kills made. */
      until: { type: "string" },
      "pace-ms": { type: "string", default: "12" },
      "big-every-s": { type: "string", default: "4" },
      partitions: { type: "string", default: "3" },
      outage: { type: "boolean", default: false },
      "outage-seconds": { type: "string", default: "60" },
    },
  });
  const seed = args.seed === undefined ? randomBytes(4).readUInt32LE(0) : Number(args.seed);
  const log = (line: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`);
  if (args.outage) {
    const { runOutage } = await import("./outage.ts");
    const result = await runOutage({ seed, outageSeconds: Number(args["outage-seconds"]), log });
    console.log(result.summary);
    process.exitCode = result.failures.length > 0 ? 1 : 0;
    return;
  }
  const configurations: Configuration[] = args.config === "all" ? [...CONFIGURATIONS] : [args.config as Configuration];
  for (const configuration of configurations) if (!CONFIGURATIONS.includes(configuration)) throw new Error(`--config must be one of ${CONFIGURATIONS.join(", ")} or all`);
  // SIGINT/SIGTERM: no more kills; the run catches up, compares and cleans up as usual.
  let stopRequested = false;
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => (stopRequested = true));
  let failed = false;
  for (const configuration of configurations) {
    const figures = await runKills({
      configuration,
      kills: Number(args.kills),
      seed,
      preloadItems: Number(args.preload),
      maxBigRows: Number(args["max-big-rows"]),
      snapshotKills: Number(args["snapshot-kills"]),
      ...(args.until ? { deadline: Date.parse(args.until) } : {}),
      stopRequested: () => stopRequested,
      paceMs: Number(args["pace-ms"]),
      bigEveryMs: Number(args["big-every-s"]) * 1_000,
      partitions: Number(args.partitions),
      log,
    });
    console.log(summary(figures));
    console.log(JSON.stringify({ ...figures, examples: undefined }));
    if (failures(figures).length > 0) failed = true;
  }
  process.exitCode = failed ? 1 : 0;
}

if (import.meta.main) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(2);
  });
}
