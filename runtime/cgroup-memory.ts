/**
 * The memory limit of the control group this process runs in (a container's `--memory`, a pod's
 * `resources.limits.memory`), read from the cgroup file system: v2 `memory.max`, v1
 * `memory.limit_in_bytes`. Inside a container the group is usually mounted as the root of
 * /sys/fs/cgroup (a cgroup namespace), on a host it is the path /proc/self/cgroup names: both are
 * tried. Null when there is none (no limit, "max", v1's huge "unlimited" figure, not Linux).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface CgroupMemoryLimit {
  readonly bytes: number;
  /** The file it was read from, for the operator. */
  readonly file: string;
}

/** v1 says "no limit" with the largest page-aligned signed 64-bit figure; anything this large is no limit. */
const UNLIMITED_FROM = 2 ** 60;

type Read = (file: string) => string | undefined;

const readText: Read = (file) => {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
};

export function cgroupMemoryLimit(read: Read = readText, root = "/sys/fs/cgroup"): CgroupMemoryLimit | null {
  const groups = (read("/proc/self/cgroup") ?? "").split("\n");
  const v2Path = groups.find((line) => line.startsWith("0::"))?.slice(3);
  const v1Path = groups.map((line) => line.split(":")).find((parts) => parts[1]?.split(",").includes("memory"))?.[2];
  const candidates = [
    ...(v2Path !== undefined ? [join(root, v2Path, "memory.max")] : []),
    join(root, "memory.max"),
    ...(v1Path !== undefined ? [join(root, "memory", v1Path, "memory.limit_in_bytes")] : []),
    join(root, "memory", "memory.limit_in_bytes"),
  ];
  for (const file of new Set(candidates)) {
    const text = read(file)?.trim();
    if (text === undefined || text === "") continue;
    if (text === "max") return null;
    const bytes = Number(text);
    if (!Number.isFinite(bytes) || bytes <= 0) continue;
    return bytes >= UNLIMITED_FROM ? null : { bytes, file };
  }
  return null;
}
