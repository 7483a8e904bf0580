import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { isGoneLocalProcess, localProcessToken, procHidesOthers, processTokenInText, processTokenText, seesHiddenProcesses } from "./local-process.ts";

const linux = process.platform === "linux";

test("a process of this machine that runs is not gone; one that exited is; one elsewhere or a malformed token cannot be told", { skip: !linux && "needs /proc" }, async () => {
  const self = localProcessToken();
  assert.ok(self);
  assert.equal(isGoneLocalProcess(self), false);
  // A process that started and exited: its PID runs nothing, or something that started at another time.
  const child = spawn(process.execPath, ["-e", `process.stdout.write(require("fs").readFileSync("/proc/self/stat", "utf8"))`], { stdio: ["ignore", "pipe", "inherit"] });
  let stat = "";
  child.stdout.on("data", (chunk: Buffer) => (stat += chunk.toString()));
  await once(child, "close");
  const started = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]!;
  assert.equal(isGoneLocalProcess({ ...self, pid: child.pid!, started }), true);
  // The same PID and another start time: a reused PID is another process.
  assert.equal(isGoneLocalProcess({ ...self, started: `${self.started}0` }), true);
  // Another boot or PID namespace (another machine or container): never judged gone.
  assert.equal(isGoneLocalProcess({ ...self, pid: child.pid!, started, boot: "another-boot" }), false);
  assert.equal(isGoneLocalProcess({ ...self, pid: child.pid!, started, pidNamespace: "pid:[1]" }), false);
  for (const malformed of [undefined, null, "x", { ...self, pid: 0 }, { ...self, started: 5 }]) assert.equal(isGoneLocalProcess(malformed), false);
  assert.equal(self.boot, readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
});

test("a token as the end of a name reads back as the same token; a name without one has none", { skip: !linux && "needs /proc" }, () => {
  const self = localProcessToken()!;
  assert.deepEqual(processTokenInText(`sluice.lease.${processTokenText(self)}`), self);
  assert.equal(isGoneLocalProcess(processTokenInText(`client-${processTokenText(self)}`)), false);
  assert.equal(processTokenInText("sluice"), null);
});

test("a /proc mounted with hidepid (other than 0) or subset=pid hides other users' processes: then a missing one cannot be told gone", () => {
  const line = (options: string) => `22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc ${options}`;
  const other = "25 22 0:22 / /proc/sys/fs/binfmt_misc rw,relatime shared:13 - autofs systemd-1 rw,fd=29";
  assert.equal(procHidesOthers([line("rw"), other].join("\n")), false);
  assert.equal(procHidesOthers(line("rw,hidepid=0")), false);
  assert.equal(procHidesOthers(line("rw,hidepid=off")), false);
  for (const hiding of ["rw,hidepid=2", "rw,hidepid=invisible", "rw,hidepid=1", "rw,hidepid=noaccess", "rw,hidepid=ptraceable", "rw,subset=pid", "rw,gid=5,hidepid=2"]) {
    assert.equal(procHidesOthers([other, line(hiding)].join("\n")), true, hiding);
  }
  // A proc mounted elsewhere (a container's) is not this process's /proc.
  assert.equal(procHidesOthers("30 1 0:40 / /tmp/p rw - proc proc rw,hidepid=2"), false);
});

// The mount in effect is the last one at /proc: a proc mounted again with hidepid over a plain one read as the plain one,
// and a live process of another user, missing from /proc, was judged gone.
test("a /proc mounted again over the first is the one that counts", () => {
  const plain = "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw";
  const hiding = "95 22 0:48 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw,hidepid=invisible";
  assert.equal(procHidesOthers([plain, hiding].join("\n")), true);
  assert.equal(procHidesOthers([hiding, plain.replace("22 1 0:21", "96 95 0:49")].join("\n")), false);
  // Not a proc over /proc: it tells nothing of processes.
  assert.equal(procHidesOthers([plain, "97 22 0:50 / /proc rw - tmpfs tmpfs rw"].join("\n")), true);
});

// Root was taken to see every process under hidepid; it does only with CAP_SYS_PTRACE, which Docker's default
// capabilities (CapEff a80425fb) and uid 0 of an unprivileged user namespace may lack.
test("only CAP_SYS_PTRACE among the effective capabilities sees processes /proc hides, root or not", () => {
  const status = (uid: number, capEff: string) => `Name:\tnode\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nCapInh:\t0000000000000000\nCapPrm:\t${capEff}\nCapEff:\t${capEff}\nCapBnd:\t000001ffffffffff\n`;
  assert.equal(seesHiddenProcesses(status(0, "000001ffffffffff")), true);
  assert.equal(seesHiddenProcesses(status(0, "00000000a80425fb")), false);
  assert.equal(seesHiddenProcesses(status(1000, "0000000000000000")), false);
  assert.equal(seesHiddenProcesses(status(1000, "0000000000080000")), true);
  assert.equal(seesHiddenProcesses("Name:\tnode\n"), false);
});
