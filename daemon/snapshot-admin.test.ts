import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { SluiceError } from "../connectors/errors.ts";
import type { OnlineSnapshotting } from "../connectors/common/incremental-snapshot-state.ts";
import { ByteBudget } from "./byte-budget.ts";
import { RequestBody } from "./request-body.ts";
import { snapshotHandler } from "./snapshot-admin.ts";
import type { SnapshotTarget } from "./snapshot-admin.ts";
import { formatList } from "./snapshot-command.ts";
import type { SnapshotList } from "./snapshot-command.ts";

/** The body reader HttpServer gives a handler. */
const bodyOf = (req: IncomingMessage) => new RequestBody(req, 2 ** 20, new ByteBudget(2 ** 20)).read;

const notStreaming = (): never => {
  throw new SluiceError("online snapshots start once the source streams", { code: "SNAPSHOT_NOT_STREAMING", retriable: true });
};
const snapshots: OnlineSnapshotting = { plan: async () => notStreaming(), request: async () => notStreaming(), list: () => ({ tasks: [], failed: [] }), stored: () => null };

test("a snapshot refused because the source is not streaming says what the source waits for (its server away)", async () => {
  const target: SnapshotTarget = { snapshots, waiting: () => "cannot start capture: connect ECONNREFUSED 127.0.0.1:20756" };
  const handle = snapshotHandler(() => target, () => ["pg"]);
  const server = createServer((req, res) => void handle(req, res, bodyOf(req)));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const response = await fetch(`http://127.0.0.1:${port}/sources/pg/snapshots`, { method: "POST", body: JSON.stringify({ table: "shop.orders" }) });
    assert.equal(response.status, 409);
    const body = (await response.json()) as { error: string; code: string };
    assert.equal(body.code, "SNAPSHOT_NOT_STREAMING");
    assert.match(body.error, /source "pg" is waiting: cannot start capture: connect ECONNREFUSED 127\.0\.0\.1:20756/);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("a snapshot request whose database does not answer (server paused) is answered, naming the server, not held", async () => {
  const hung: OnlineSnapshotting = { plan: () => new Promise(() => undefined), request: () => new Promise(() => undefined), list: () => ({ tasks: [], failed: [] }), stored: () => null };
  const target: SnapshotTarget = { snapshots: hung, waiting: () => null, server: "127.0.0.1:20756" };
  const handle = snapshotHandler(() => target, () => ["pg"], 200);
  const server = createServer((req, res) => void handle(req, res, bodyOf(req)));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    for (const execute of [false, true]) {
      const response = await fetch(`http://127.0.0.1:${port}/sources/pg/snapshots`, { method: "POST", body: JSON.stringify({ table: "shop.orders", execute }), signal: AbortSignal.timeout(20_000) });
      assert.equal(response.status, 409);
      const body = (await response.json()) as { error: string; code: string };
      assert.equal(body.code, "SOURCE_NOT_ANSWERING");
      assert.match(body.error, /database server 127\.0\.0\.1:20756 of source "pg" did not answer/);
      if (execute) assert.match(body.error, /The request stands/);
    }
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
});

test("sluice snapshot list while the source does not stream says so and shows the started snapshot as paused, not running", async () => {
  const task = { id: "t1", table: "shop.orders", where: null, lastKey: ["41"], rowsDone: 6707, rowsEstimated: 200000, resetVersion: "5", requestedAtMs: 1, startedAtMs: 2, origin: "cli" };
  const target: SnapshotTarget = { snapshots: { ...snapshots, list: () => ({ tasks: [task], failed: [] }) }, waiting: () => "cannot start capture: connect ECONNREFUSED 127.0.0.1:20756" };
  const handle = snapshotHandler(() => target, () => ["pg"]);
  const server = createServer((req, res) => void handle(req, res, bodyOf(req)));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const body = (await (await fetch(`http://127.0.0.1:${port}/sources/pg/snapshots`)).json()) as SnapshotList;
    assert.equal(
      formatList(body),
      "source pg (not streaming, waiting: cannot start capture: connect ECONNREFUSED 127.0.0.1:20756; these go on when it streams again):\n  paused   shop.orders  6707 rows of about 200000  (cli, t1)\n",
    );
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("an \"execute\" that is not a JSON boolean is refused 400, not taken for a dry run", async () => {
  const asked: string[] = [];
  const recording: OnlineSnapshotting = { plan: async () => (asked.push("plan"), {}) as never, request: async () => (asked.push("request"), {}) as never, list: () => ({ tasks: [], failed: [] }), stored: () => null };
  const handle = snapshotHandler(() => ({ snapshots: recording }), () => ["pg"]);
  const server = createServer((req, res) => void handle(req, res, bodyOf(req)).catch((error: Error) => {
    res.writeHead(400);
    res.end(error.message);
  }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = server.address() as AddressInfo;
    for (const execute of ["true", 1]) {
      const response = await fetch(`http://127.0.0.1:${port}/sources/pg/snapshots`, { method: "POST", body: JSON.stringify({ table: "shop.orders", execute }) });
      assert.equal(response.status, 400);
      assert.match(await response.text(), /"execute" must be true or false/);
    }
    assert.deepEqual(asked, [], "neither planned (a dry run) nor requested");
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
