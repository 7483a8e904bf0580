/**
 * The ledger of names tests made on the shared services: one small file per name under
 * `$SLUICE_SERVICES_DIR/run/test-names/`, holding the pid and start time of the process that made it. The sweep
 * (sweep.ts) removes only what a ledger name owns, and only once that process is gone: a name that merely looks like a
 * test's (orders_20261207, my_app_deadbeef, an engineer's probe deployment) is never in the ledger, so never touched.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { servicesDir } from "./ports.ts";

export const testNamesDir = join(servicesDir, "run/test-names");

/** Names the ledger can hold as a file name (what randomName and testDeployment make, with room for prefixes). */
const LEDGER_NAME = /^[A-Za-z0-9_-]{1,200}$/;

export interface TestNameEntry {
  readonly name: string;
  readonly pid: number;
  /** The process's start in clock ticks since boot (/proc/<pid>/stat), which tells a reused pid apart; null off Linux. */
  readonly startTicks: string | null;
  readonly recordedMs: number;
}

/** Field 22 of /proc/<pid>/stat (after the command in parentheses, which may hold spaces), or null when unreadable. */
export function processStartTicks(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

let ownStartTicks: string | null | undefined;
const madeDirs = new Set<string>();

/**
 * Records `name` as made by this process and returns it. Best effort: a ledger that cannot be written (no services
 * dir, no permission) leaves the name out, which only means the sweep will never remove what it names.
 */
export function recordTestName(name: string, dir = testNamesDir): string {
  if (!LEDGER_NAME.test(name)) return name;
  ownStartTicks ??= processStartTicks(process.pid);
  const entry = { pid: process.pid, startTicks: ownStartTicks, recordedMs: Date.now() };
  try {
    if (!madeDirs.has(dir)) {
      mkdirSync(dir, { recursive: true });
      madeDirs.add(dir);
    }
    writeFileSync(join(dir, name), `${JSON.stringify(entry)}\n`);
  } catch {
    // see above
  }
  return name;
}

export function readTestNames(dir = testNamesDir): TestNameEntry[] {
  let files: string[];
  try {
    files = readdirSync(dir);
  } catch {
    return [];
  }
  const entries: TestNameEntry[] = [];
  for (const name of files) {
    try {
      const parsed = JSON.parse(readFileSync(join(dir, name), "utf8")) as Partial<TestNameEntry>;
      const recordedMs = typeof parsed.recordedMs === "number" ? parsed.recordedMs : statSync(join(dir, name)).mtimeMs;
      if (typeof parsed.pid !== "number") continue;
      entries.push({ name, pid: parsed.pid, startTicks: typeof parsed.startTicks === "string" ? parsed.startTicks : null, recordedMs });
    } catch {
      // removed meanwhile, or half written: skipped, so its name is kept
    }
  }
  return entries;
}

export function removeTestName(name: string, dir = testNamesDir): void {
  if (LEDGER_NAME.test(name)) rmSync(join(dir, name), { force: true });
}

/** Whether the process that recorded an entry still runs (the same process: a pid reused since has another start). */
export function creatorRuns(entry: Pick<TestNameEntry, "pid" | "startTicks">): boolean {
  if (entry.startTicks !== null) return processStartTicks(entry.pid) === entry.startTicks;
  try {
    process.kill(entry.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * What ledger names own: a Kafka deployment named as one (or as one with the -suffix/_suffix tests add), and a
 * replication slot named as one or as the daemon's default slot of a source named so (sluice_<name>[_suffix]).
 */
export class TestNames {
  readonly #names: ReadonlySet<string>;

  constructor(names: Iterable<string>) {
    this.#names = new Set(names);
  }

  get size(): number {
    return this.#names.size;
  }

  /** The ledger name owning `candidate` itself or with one -suffix/_suffix, or null. */
  ownerOf(candidate: string): string | null {
    if (this.#names.has(candidate)) return candidate;
    for (let i = candidate.length - 1; i > 0; i--) {
      if ((candidate[i] === "_" || candidate[i] === "-") && this.#names.has(candidate.slice(0, i)) && /^[a-z0-9]+$/.test(candidate.slice(i + 1))) {
        return candidate.slice(0, i);
      }
    }
    return null;
  }

  /** The deployment a topic belongs to when a ledger name owns it, else null. */
  deploymentOf(topic: string): string | null {
    const deployment = topic.split(".")[0]!;
    return deployment !== topic && this.ownerOf(deployment) !== null ? deployment : null;
  }

  /** The ledger name owning a slot, or null. */
  slotOwner(slot: string): string | null {
    return this.ownerOf(slot) ?? (slot.startsWith("sluice_") ? this.ownerOf(slot.slice("sluice_".length)) : null);
  }
}
