import assert from "node:assert/strict";
import { test } from "node:test";
import { cgroupMemoryLimit } from "./cgroup-memory.ts";

const files = (entries: Record<string, string>) => (file: string) => entries[file];

test("cgroup v2 inside a container (its group mounted as the root): memory.max", () => {
  const read = files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "335544320\n" });
  assert.deepEqual(cgroupMemoryLimit(read), { bytes: 335544320, file: "/sys/fs/cgroup/memory.max" });
});

test("cgroup v2 on a host: the group /proc/self/cgroup names", () => {
  const read = files({ "/proc/self/cgroup": "0::/system.slice/sluice.service\n", "/sys/fs/cgroup/system.slice/sluice.service/memory.max": "536870912\n" });
  assert.deepEqual(cgroupMemoryLimit(read), { bytes: 536870912, file: "/sys/fs/cgroup/system.slice/sluice.service/memory.max" });
});

test("cgroup v1 inside a container (podman, cgroupfs): memory.limit_in_bytes at the mount's root", () => {
  const read = files({
    "/proc/self/cgroup": "4:memory:/libpod_parent/libpod-8891\n1:cpu:/libpod_parent/libpod-8891\n0::/libpod_parent/libpod-8891\n",
    "/sys/fs/cgroup/memory/memory.limit_in_bytes": "314572800\n",
  });
  assert.deepEqual(cgroupMemoryLimit(read), { bytes: 314572800, file: "/sys/fs/cgroup/memory/memory.limit_in_bytes" });
});

test("no limit: 'max', v1's unlimited figure, nothing readable", () => {
  assert.equal(cgroupMemoryLimit(files({ "/proc/self/cgroup": "0::/\n", "/sys/fs/cgroup/memory.max": "max\n" })), null);
  assert.equal(cgroupMemoryLimit(files({ "/proc/self/cgroup": "4:memory:/\n", "/sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n" })), null);
  assert.equal(cgroupMemoryLimit(files({})), null);
});
