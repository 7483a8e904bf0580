/**
 * The process's fixed footprint (issue 16, item 4): where the RSS of `sluice run` (PostgreSQL
 * capture, the embedded log, a DuckDB sink in its thread, the default budget) goes, idle after a
 * snapshot, and the most it held outside its V8 heaps and DuckDB's own count during the snapshot
 * (what the memory plan's reserves outside the heaps must cover: config/memory.ts).
 *
 * Per run: a fresh source snapshots a table of `--rows` rows into DuckDB, the daemon idles
 * `--idle-seconds`, then /proc/<pid>/smaps is summed by mapping (the node binary, libduckdb,
 * malloc's main arena, anonymous memory) and each thread reports its V8 heap and the modules it
 * loaded (bench/footprint-hook.ts, loaded into every thread with NODE_OPTIONS=--import). With
 * --before, each round runs the other checkout's daemon too, alternating which goes first.
 *
 *   node bench/footprint.ts [--rows 2000] [--idle-seconds 8] [--rounds 3] [--before ../other/daemon/sluice.js]
 */
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { dropPostgres, killAllDaemons, metricValue, pgClient, pgSourceConfig, randomName, removeDir, sleep, SluiceDaemon, tempDir, waitFor } from "../test/e2e/helpers.ts";

const { values: args } = parseArgs({
  options: {
    rows: { type: "string", default: "2000" },
    "idle-seconds": { type: "string", default: "8" },
    rounds: { type: "string", default: "3" },
    before: { type: "string" },
  },
});
const ROWS = Number(args.rows);
const HOOK = fileURLToPath(new URL("./footprint-hook.ts", import.meta.url));
const MiB = 2 ** 20;
const log = (text: string) => process.stdout.write(`${text}\n`);
const fixed = (n: number) => n.toFixed(1);

interface ThreadFigures {
  readonly thread: number;
  readonly usedMiB: number;
  readonly physicalMiB: number;
  readonly externalMiB: number;
  readonly spaces: Record<string, { usedMiB: number; physicalMiB: number }>;
  readonly typeStripper: boolean;
  readonly modules: Record<string, number>;
}

/** RSS by mapping, MiB: file-backed by file name, anonymous memory, malloc's main arena ([heap]). */
function rssByMapping(pid: number): Map<string, number> {
  const sums = new Map<string, number>();
  let name = "";
  for (const line of readFileSync(`/proc/${pid}/smaps`, "utf8").split("\n")) {
    const mapping = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \d+\s*(.*)$/.exec(line);
    if (mapping) {
      const path = mapping[1]!.trim();
      name = path === "" ? "anonymous" : path.startsWith("/") ? path.slice(path.lastIndexOf("/") + 1) : path;
    } else if (line.startsWith("Rss:")) {
      sums.set(name, (sums.get(name) ?? 0) + Number(line.split(/\s+/)[1]) / 1024);
    }
  }
  return sums;
}

function status(pid: number, field: string): number {
  return Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]) / 1024;
}

function threads(dir: string, pid: number, last: Map<string, ThreadFigures>): ThreadFigures[] {
  for (const file of readdirSync(dir).filter((f) => f.startsWith(`heap-${pid}-`))) {
    try {
      last.set(file, JSON.parse(readFileSync(join(dir, file), "utf8")) as ThreadFigures);
    } catch {
      // Being written: its last figures stand.
    }
  }
  return [...last.values()].sort((a, b) => a.thread - b.thread);
}

async function duckdbMiB(daemon: SluiceDaemon): Promise<number> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: "SELECT sum(memory_usage_bytes)::BIGINT AS bytes FROM duckdb_memory()", signal: AbortSignal.timeout(2_000) });
  return Number(((await response.json()) as { rows?: { bytes: number }[] }).rows?.[0]?.bytes ?? 0) / MiB;
}

async function run(build: string, entry: string | undefined): Promise<string> {
  const client = await pgClient();
  const schema = randomName("bench_fp");
  const source = randomName("src");
  const dir = tempDir("bench-footprint");
  const heapDir = join(dir, "threads");
  mkdirSync(heapDir);
  try {
    await client.query(`CREATE SCHEMA "${schema}"`);
    await client.query(`CREATE TABLE "${schema}".items (id bigint PRIMARY KEY, account integer, name text, email text, amount numeric(12,2), active boolean, created_at timestamptz, note text)`);
    await client.query(`INSERT INTO "${schema}".items SELECT g, g % 1000, 'name ' || g, 'user' || g || '@example.com', (g % 100000) / 100.0, g % 2 = 0, now(), md5(g::text) FROM generate_series(1, ${ROWS}) g`);
    const config = {
      name: randomName("bench_fp"),
      sources: [pgSourceConfig(source, [`${schema}.*`])],
      topics: { kind: "embedded", path: join(dir, "log.db") },
      sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb") }],
    };
    const load = loadavg()[0]!;
    const env = { SLUICE_FOOTPRINT_DIR: heapDir, NODE_OPTIONS: `${process.env["NODE_OPTIONS"] ?? ""} --import ${HOOK}` };
    const daemon = await SluiceDaemon.start(dir, config, "footprint", { env, ...(entry ? { entry } : {}) });
    const pid = daemon.child.pid!;
    const last = new Map<string, ThreadFigures>();
    let worst = { outside: 0, rss: 0, heaps: 0, duckdb: 0 };
    await waitFor(
      "the snapshot in DuckDB",
      async () => {
        const rss = status(pid, "VmRSS");
        const heaps = threads(heapDir, pid, last).reduce((sum, t) => sum + t.physicalMiB, 0);
        const duckdb = await duckdbMiB(daemon).catch(() => 0);
        if (rss - heaps - duckdb > worst.outside) worst = { outside: rss - heaps - duckdb, rss, heaps, duckdb };
        return metricValue(await daemon.metrics(), "sluice_sink_changes_applied_total", { sink: "warehouse" }) >= ROWS;
      },
      { daemon, timeoutMs: 30 * 60_000, intervalMs: 300 },
    );
    await sleep(Number(args["idle-seconds"]) * 1000);
    const mappings = rssByMapping(pid);
    const rss = [...mappings.values()].reduce((a, b) => a + b, 0);
    const mainArena = mappings.get("[heap]") ?? 0;
    const node = mappings.get("node") ?? 0;
    const duckLib = mappings.get("libduckdb.so") ?? 0;
    const otherFiles = [...mappings].filter(([k]) => k !== "anonymous" && k !== "[heap]" && k !== "node" && k !== "libduckdb.so").reduce((a, [, v]) => a + v, 0);
    const perThread = threads(heapDir, pid, last)
      .map((t) => `thread ${t.thread}: heap ${fixed(t.usedMiB)} in use / ${fixed(t.physicalMiB)} pages (old ${fixed(t.spaces["old_space"]?.usedMiB ?? 0)}, code ${fixed(t.spaces["code_space"]?.usedMiB ?? 0)}), external ${fixed(t.externalMiB)}${t.typeStripper ? ", type stripper loaded" : ""}; modules ${JSON.stringify(t.modules)}`)
      .join("\n    ");
    const [hwm, anon, file] = [status(pid, "VmHWM"), status(pid, "RssAnon"), status(pid, "RssFile")];
    await daemon.stop();
    return (
      `${build}: idle RSS ${fixed(rss)} MiB (RssAnon ${fixed(anon)}, RssFile ${fixed(file)}): node binary ${fixed(node)}, libduckdb ${fixed(duckLib)}, other files ${fixed(otherFiles)}, ` +
      `malloc main arena ${fixed(mainArena)}, other anonymous ${fixed(mappings.get("anonymous") ?? 0)}; peak ${fixed(hwm)} MiB; most outside the V8 heaps and DuckDB's count during the snapshot ` +
      `${fixed(worst.outside)} MiB (RSS ${fixed(worst.rss)}, heaps ${fixed(worst.heaps)}, DuckDB ${fixed(worst.duckdb)}); load ${load.toFixed(1)}\n    ${perThread}`
    );
  } finally {
    await killAllDaemons();
    await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}`, schema }).catch(() => undefined);
    await client.end();
    removeDir(dir);
  }
}

const builds: [string, string | undefined][] = args.before ? [["before", args.before], ["this checkout", undefined]] : [["this checkout", undefined]];
for (let round = 1; round <= Number(args.rounds); round++) {
  for (const [build, entry] of round % 2 === 1 ? builds : [...builds].reverse()) log(`round ${round} ${await run(build, entry)}`);
}
