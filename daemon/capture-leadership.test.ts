/**
 * Terms of capture leadership (issue 17) with a lease of our own making: a term starts when the
 * lease is granted, ends when it is lost, and a term ended by fencing rejoins as a new candidate
 * instead of starting again on a lease it no longer really holds. (The Kafka lease itself is tested
 * against the real broker in connectors/kafka/kafka-lease.int.test.ts.)
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { SluiceError } from "../connectors/errors.ts";
import { CaptureLeadership } from "./capture-leadership.ts";
import type { LeaseHandle } from "./capture-leadership.ts";
import { createLogger } from "../runtime/logger.ts";

class FakeLease implements LeaseHandle {
  heldNow = false;
  closed = false;
  readonly onChange: (held: boolean) => void;
  constructor(onChange: (held: boolean) => void) {
    this.onChange = onChange;
  }
  held(): boolean {
    return this.heldNow && !this.closed;
  }
  async start(): Promise<void> {}
  async close(): Promise<void> {
    this.closed = true;
  }
  grant(held: boolean): void {
    this.heldNow = held;
    this.onChange(held);
  }
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 10));

async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !done(); i++) await tick();
  assert.ok(done());
}

test("a term runs while the lease is held and ends when it is lost; a standby captures nothing", async () => {
  const leases: FakeLease[] = [];
  const events: string[] = [];
  const leadership = new CaptureLeadership({
    logger: createLogger("silent"),
    newLease: (onChange) => {
      const lease = new FakeLease(onChange);
      leases.push(lease);
      return lease;
    },
    lead: async (signal) => {
      events.push("lead");
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      events.push("ended");
    },
  });
  const stop = new AbortController();
  const running = leadership.run(stop.signal);
  await until(() => leases.length === 1);
  await tick();
  assert.equal(leadership.role(), "standby");
  assert.deepEqual(events, []);
  leases[0]!.grant(true);
  await until(() => events.length === 1);
  assert.equal(leadership.role(), "leader");
  leases[0]!.grant(false);
  await until(() => events.length === 2);
  assert.equal(leadership.role(), "standby");
  assert.equal(leases.length, 1, "a lost lease keeps its candidacy");
  leases[0]!.grant(true);
  await until(() => events.length === 3);
  stop.abort();
  await running;
  assert.deepEqual(events, ["lead", "ended", "lead", "ended"]);
  assert.equal(leases[0]!.closed, true, "stopping leaves the group");
});

test("a term fenced by the topic log rejoins as a new candidate and does not lead again until granted anew", async () => {
  const leases: FakeLease[] = [];
  let terms = 0;
  const leadership = new CaptureLeadership({
    logger: createLogger("silent"),
    newLease: (onChange) => {
      const lease = new FakeLease(onChange);
      leases.push(lease);
      return lease;
    },
    lead: async (signal) => {
      terms++;
      if (terms === 1) throw new SluiceError("fenced", { code: "KAFKA_PRODUCER_FENCED", context: { component: "kafka" } });
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  });
  const stop = new AbortController();
  const running = leadership.run(stop.signal);
  await until(() => leases.length === 1);
  leases[0]!.grant(true);
  await until(() => leases.length === 2);
  assert.equal(leases[0]!.closed, true, "the fenced candidacy left the group");
  await tick();
  assert.equal(terms, 1, "no new term before the new candidacy is granted the lease");
  assert.equal(leadership.role(), "standby");
  leases[1]!.grant(true);
  await until(() => terms === 2);
  stop.abort();
  await running;
});

test("a term whose source stream another process took over (MariaDB: a dump with the same server_id) stands by as a fenced one does", async () => {
  const leases: FakeLease[] = [];
  let terms = 0;
  const leadership = new CaptureLeadership({
    logger: createLogger("silent"),
    newLease: (onChange) => {
      const lease = new FakeLease(onChange);
      leases.push(lease);
      return lease;
    },
    lead: async (signal) => {
      terms++;
      // A frozen leader woken up: its binlog stream's failure can reach the term before the topic log's fencing.
      if (terms === 1) throw new SluiceError("replaced", { code: "MYSQL_REPLICA_REPLACED", context: { component: "mysql-source" } });
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  });
  const stop = new AbortController();
  const running = leadership.run(stop.signal);
  await until(() => leases.length === 1);
  leases[0]!.grant(true);
  await until(() => leases.length === 2);
  assert.equal(leases[0]!.closed, true, "the candidacy left the group");
  assert.equal(leadership.role(), "standby");
  leases[1]!.grant(true);
  await until(() => terms === 2);
  stop.abort();
  await running;
});

test("any other failure of a term stops the capture for good (it is reported, not retried as a lost lease)", async () => {
  let lease: FakeLease | null = null;
  const leadership = new CaptureLeadership({
    logger: createLogger("silent"),
    newLease: (onChange) => (lease = new FakeLease(onChange)),
    lead: async () => {
      throw new SluiceError("slot gone", { code: "PG_SLOT_MISSING", context: { component: "postgres-source" } });
    },
  });
  const running = leadership.run(new AbortController().signal);
  await until(() => lease !== null);
  lease!.grant(true);
  await assert.rejects(running, /slot gone/);
});

test("a term failing on an outage (a retriable error, e.g. Kafka unavailable) is waited out: the next term leads again", async () => {
  let lease: FakeLease | null = null;
  let terms = 0;
  const stop = new AbortController();
  const leadership = new CaptureLeadership({
    logger: createLogger("silent"),
    newLease: (onChange) => (lease = new FakeLease(onChange)),
    lead: async (signal) => {
      terms++;
      if (terms === 1) throw new SluiceError("Kafka unavailable during fetch offsets", { code: "KAFKA_UNAVAILABLE", retriable: true, context: { component: "kafka" } });
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  });
  const running = leadership.run(stop.signal);
  await until(() => lease !== null);
  lease!.grant(true);
  await until(() => terms === 2 && leadership.role() === "leader");
  stop.abort();
  await running;
});

test("join() stands as a candidate before run(): a lease granted meanwhile is led once run() starts, under that one candidacy; close() leaves a candidacy run() never took", async () => {
  const leases: FakeLease[] = [];
  const events: string[] = [];
  const options = {
    logger: createLogger("silent"),
    newLease: (onChange: (held: boolean) => void) => {
      const lease = new FakeLease(onChange);
      leases.push(lease);
      return lease;
    },
    lead: async (signal: AbortSignal) => {
      events.push("lead");
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
      events.push("ended");
    },
  };
  const leadership = new CaptureLeadership(options);
  leadership.join();
  leadership.join();
  assert.equal(leases.length, 1, "one candidacy");
  leases[0]!.grant(true);
  await tick();
  assert.deepEqual(events, [], "no term before run()");
  assert.equal(leadership.role(), "standby");
  const stop = new AbortController();
  const running = leadership.run(stop.signal);
  await until(() => events.length === 1);
  assert.equal(leadership.role(), "leader");
  assert.equal(leases.length, 1, "run() leads under the candidacy join() made");
  stop.abort();
  await running;
  assert.deepEqual(events, ["lead", "ended"]);
  assert.equal(leases[0]!.closed, true);

  const unused = new CaptureLeadership(options);
  unused.join();
  await unused.close();
  assert.equal(leases.length, 2);
  assert.equal(leases[1]!.closed, true, "the start failed before run(): its stop leaves the group");
  await unused.run(AbortSignal.abort());
  assert.equal(leases.length, 2, "a run() stopped before it started stands no candidate");
});

test("a term takes over (takingOver) once this process stood by behind another leader, or after a term of its own was lost; not the first start leading at once", async () => {
  const leases: (FakeLease & { behind: boolean })[] = [];
  const takeovers: boolean[] = [];
  const stop = new AbortController();
  const leadership = new CaptureLeadership({
    logger: createLogger("silent"),
    newLease: (onChange) => {
      const lease = Object.assign(new FakeLease(onChange), { behind: false, stoodBy: () => lease.behind });
      leases.push(lease);
      return lease;
    },
    lead: async (signal) => {
      takeovers.push(leadership.takingOver());
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  });
  const running = leadership.run(stop.signal);
  await until(() => leases.length === 1);
  leases[0]!.grant(true);
  await until(() => takeovers.length === 1);
  leases[0]!.grant(false);
  await until(() => leadership.role() === "standby");
  assert.equal(leadership.takingOver(), false, "no term under way");
  leases[0]!.grant(true);
  await until(() => takeovers.length === 2);
  stop.abort();
  await running;
  assert.deepEqual(takeovers, [false, true], "the first start leads at once; the term after a lost lease takes over");

  const standby = new CaptureLeadership({
    logger: createLogger("silent"),
    newLease: (onChange) => {
      const lease = Object.assign(new FakeLease(onChange), { behind: false, stoodBy: () => lease.behind });
      leases.push(lease);
      return lease;
    },
    lead: async (signal) => {
      takeovers.push(standby.takingOver());
      await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
    },
  });
  const other = new AbortController();
  const standing = standby.run(other.signal);
  await until(() => leases.length === 2);
  leases[1]!.behind = true;
  leases[1]!.grant(true);
  await until(() => takeovers.length === 3);
  other.abort();
  await standing;
  assert.equal(takeovers[2], true, "a standby's first term takes over");
});
