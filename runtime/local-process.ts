/**
 * Who this process is on its machine, in a form another process can check: the machine's boot,
 * the PID namespace, the PID and the process's start time. A process that finds such a token of a
 * process on the same boot and in the same PID namespace can tell for sure whether that process
 * still runs (a frozen one does, a killed one does not; a reused PID has another start time).
 * Elsewhere (another machine, another container, not Linux) it cannot tell, and says so.
 *
 * Used where a process restarted after kill -9 would otherwise wait for its own predecessor's
 * session to time out (the capture lease's group member of the dead process).
 */
import { readFileSync, readlinkSync } from "node:fs";

export interface ProcessToken {
  readonly boot: string;
  readonly pidNamespace: string;
  readonly pid: number;
  /** Clock ticks after boot when the process started (/proc/<pid>/stat field 22). */
  readonly started: string;
}

/** This process's token, or null where /proc does not tell (not Linux). */
export function localProcessToken(): ProcessToken | null {
  const here = machine();
  const started = here === null ? null : startTime(process.pid);
  return here === null || started === null || started === "unknown" ? null : { boot: here.boot, pidNamespace: here.pidNamespace, pid: process.pid, started };
}

/**
 * True only when `token` names a process of this boot and PID namespace that no longer runs (no
 * process with its PID, or one that started at another time). False when it runs, and when this
 * process cannot tell (another machine or namespace, a malformed token).
 */
export function isGoneLocalProcess(token: unknown): boolean {
  if (!isToken(token)) return false;
  const here = machine();
  if (here === null || here.boot !== token.boot || here.pidNamespace !== token.pidNamespace) return false;
  const started = startTime(token.pid);
  // With /proc hiding other users' processes (hidepid), a live process of another user looks like none.
  if (started === null && here.hidesOthers) return false;
  return started !== "unknown" && started !== token.started;
}

/**
 * A token as text for a name (a Kafka client id: what a consumer group's coordinator tells of every
 * member in any state): `p<pid>s<start>n<namespace inode>b<boot id>`.
 */
export function processTokenText(token: ProcessToken): string {
  return `p${token.pid}s${token.started}n${token.pidNamespace.replace(/\D/g, "")}b${token.boot}`;
}

/** The token at the end of `text` (after processTokenText), or null. */
export function processTokenInText(text: string): ProcessToken | null {
  const match = /p(\d+)s(\d+)n(\d+)b([0-9a-f-]+)$/.exec(text);
  if (!match) return null;
  return { pid: Number(match[1]), started: match[2]!, pidNamespace: `pid:[${match[3]}]`, boot: match[4]! };
}

function isToken(value: unknown): value is ProcessToken {
  if (typeof value !== "object" || value === null) return false;
  const t = value as Record<string, unknown>;
  return typeof t["boot"] === "string" && typeof t["pidNamespace"] === "string" && typeof t["started"] === "string" && Number.isInteger(t["pid"]) && (t["pid"] as number) > 0;
}

interface Machine {
  readonly boot: string;
  readonly pidNamespace: string;
  /** /proc may show this process only some of the others (mounted with hidepid or subset=pid, and this process not allowed to see every process). */
  readonly hidesOthers: boolean;
}

let cachedMachine: Machine | null | undefined;

function machine(): Machine | null {
  if (cachedMachine !== undefined) return cachedMachine;
  try {
    const hidesOthers = procHidesOthers(readFileSync("/proc/self/mountinfo", "utf8")) && !seesHiddenProcesses(readFileSync("/proc/self/status", "utf8"));
    cachedMachine = { boot: readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim(), pidNamespace: readlinkSync("/proc/self/ns/pid"), hidesOthers };
  } catch {
    cachedMachine = null;
  }
  return cachedMachine;
}

/**
 * Whether the /proc mount in effect hides processes: hidepid other than 0/off, or subset=pid. It is
 * the last /proc line of /proc/self/mountinfo: a proc mounted again over /proc (with or without
 * hidepid) covers the ones before it.
 */
export function procHidesOthers(mountinfo: string): boolean {
  let hides = false;
  for (const line of mountinfo.split("\n")) {
    const [mount, rest] = line.split(" - ");
    if (mount?.split(" ")[4] !== "/proc" || rest === undefined) continue;
    const [fsType, , options = ""] = rest.split(" ");
    // Something other than a proc over /proc tells nothing of processes: a missing entry cannot be told gone.
    hides = fsType !== "proc" || options.split(",").some((option) => (option.startsWith("hidepid=") && !["hidepid=0", "hidepid=off"].includes(option)) || option === "subset=pid");
  }
  return hides;
}

/** CAP_SYS_PTRACE, the capability that lets a process see the others' /proc entries whatever hidepid says. */
const CAP_SYS_PTRACE = 19n;

/**
 * Whether this process sees every process under hidepid, from its /proc/self/status: only with
 * CAP_SYS_PTRACE in its effective capabilities (CapEff). Being root is not enough: Docker's default
 * capabilities leave it out, and uid 0 in a user namespace of its own may not have it either.
 */
export function seesHiddenProcesses(status: string): boolean {
  const capEff = /^CapEff:\s*([0-9a-fA-F]+)\s*$/m.exec(status)?.[1];
  return capEff !== undefined && ((BigInt(`0x${capEff}`) >> CAP_SYS_PTRACE) & 1n) === 1n;
}

/**
 * The start time of process `pid`, null when there is none (a zombie, killed but not yet reaped, is
 * none), or "unknown" when /proc does not say (not readable: hidepid=1).
 */
function startTime(pid: number): string | null | "unknown" {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ENOENT" ? null : "unknown";
  }
  // The command name (field 2) is in parentheses and may hold spaces: the fields after it start with field 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X") return null;
  return fields[22 - 3] ?? null;
}
