import assert from "node:assert/strict";
import { test } from "node:test";
import type { GroupActivity, TopicLog } from "../connectors/contracts.ts";
import { localProcessToken, processTokenText } from "../runtime/local-process.ts";
import { describeHolds, otherHolds, otherSinkProcesses, sinkSharedError } from "./rebuild-sharing.ts";

function logWith(kind: "kafka" | "embedded", activity: GroupActivity): TopicLog {
  return { kind, groupActivity: async () => activity } as unknown as TopicLog;
}

const BOOT = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";

test("the sink's group members of other processes are named by PID and host; this process's own members are not", async () => {
  const here = localProcessToken();
  const own = here === null ? "sluice" : `sluice.${processTokenText(here)}`;
  const otherId = `sluice.p4242s99n4026531836b${BOOT}`;
  const log = logWith("kafka", {
    active: true,
    members: [`${own}-a (/127.0.0.1)`, `${otherId}-b (/10.0.0.9)`],
    clients: [
      { clientId: own, host: "/127.0.0.1" },
      { clientId: otherId, host: "/10.0.0.9" },
    ],
  });
  assert.deepEqual(await otherSinkProcesses(log, "dep.sink.wh", 1), [{ clientId: otherId, host: "10.0.0.9", pid: 4242, heldFor: null }]);
  // A command runs no member of the group: every member is another process's.
  if (here !== null) assert.equal((await otherSinkProcesses(log, "dep.sink.wh", 0)).length, 1);
  // The embedded log runs a sink in one process (its lease): no member is looked at.
  assert.deepEqual(await otherSinkProcesses(logWith("embedded", { active: true, members: ["someone"] }), "g", 1), []);
});

test("the refusal names every other process, the group and what to do", () => {
  const error = sinkSharedError("wh", "dep.sink.wh", [
    { clientId: "a", host: "10.0.0.8", pid: 7, heldFor: null },
    { clientId: "sluice", host: "", pid: null, heldFor: null },
  ], "rebuild");
  assert.equal(error.code, "REBUILD_SINK_SHARED");
  assert.match(error.message, /^rebuild of sink "wh" refused: 2 other processes run sink "wh" \(consumer group dep\.sink\.wh: process 7 on 10\.0\.0\.8, Kafka client sluice\)/);
  assert.match(error.message, /stop the sink's other processes \(sluice status lists them\), run the rebuild again/);
  assert.match(error.message, /Nothing changed\.$/);
});

test("a command's hold on the group is told as such, and otherHolds lists only holds", async () => {
  const holdId = `sluice.hold-rebuild.p31s5n4026531836b${BOOT}`;
  const sinkId = `sluice.p32s5n4026531836b${BOOT}`;
  const log = logWith("kafka", {
    active: true,
    members: [`${holdId}-a (/10.0.0.5)`, `${sinkId}-b (/10.0.0.6)`],
    clients: [
      { clientId: holdId, host: "/10.0.0.5", heldFor: "rebuild" },
      { clientId: sinkId, host: "/10.0.0.6", heldFor: null },
    ],
  });
  const holds = await otherHolds(log, "dep.sink.wh");
  assert.deepEqual(holds, [{ clientId: holdId, host: "10.0.0.5", pid: 31, heldFor: "rebuild" }]);
  assert.equal(describeHolds(holds), "process 31 on 10.0.0.5, running sluice replay --rebuild on the sink");
  const error = sinkSharedError("wh", "dep.sink.wh", holds, "abandon");
  assert.match(error.message, /refused: another process runs sink "wh" \(consumer group dep\.sink\.wh: process 31 on 10\.0\.0\.5, running sluice replay --rebuild on the sink\)/);
});

test("a member or hold of a process on this machine that is gone (killed) is not another process running the sink, and not waited for", async () => {
  const here = localProcessToken();
  if (here === null) return; // Not Linux: no process can be told gone.
  // This PID with another start time: a process that ran under it before is gone.
  const gone = `sluice.hold-rebuild.${processTokenText({ ...here, started: "1" })}`;
  const log = logWith("kafka", { active: true, members: [`${gone}-a (/127.0.0.1)`], clients: [{ clientId: gone, host: "/127.0.0.1", heldFor: "rebuild" }] });
  assert.deepEqual(await otherSinkProcesses(log, "dep.sink.wh", 0), []);
  assert.deepEqual(await otherHolds(log, "dep.sink.wh"), []);
});
