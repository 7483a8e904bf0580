/**
 * A private ClickHouse 18.16 whose data directory is a small tmpfs, filled up under the sink: its
 * refusal (error 75, "No space left on device") must be waited out like an outage, not stop the sink
 * (which stopped the whole daemon). The classification itself is unit-tested in server-storage.test.ts,
 * which runs where mounting is refused.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import type { Socket } from "node:net";
import { join } from "node:path";
import { after, test } from "node:test";
import { freePort } from "../../test/services/tls.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { ClickHouseSink } from "./clickhouse-sink.ts";

const SERVICE_USER = process.env["SLUICE_SERVICES_USER"] || "sluice";
const binary = ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"].find((b) => existsSync(b));
const dir = mkdtempSync("/var/tmp/sluice-ch-disk-full-");
const data = join(dir, "data");

function mountSmallFs(): string | undefined {
  if (process.getuid?.() !== 0) return "needs root to mount a tmpfs and run ClickHouse as the services' user";
  if (binary === undefined) return "clickhouse-server not found (test/services/up clickhouse)";
  mkdirSync(data);
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=48m", "tmpfs", data], { stdio: "ignore" });
    return undefined;
  } catch {
    return "mounting a tmpfs was refused";
  }
}

const skip = mountSmallFs();
let server: { pid: number; exited: Promise<void> } | null = null;

after(async () => {
  if (server !== null) {
    process.kill(-server.pid, "SIGKILL");
    await server.exited;
  }
  if (skip === undefined) execFileSync("umount", [data]);
  rmSync(dir, { recursive: true, force: true });
});

async function startServer(port: number): Promise<void> {
  for (const sub of ["db", "tmp", "user_files", "format_schemas"]) mkdirSync(join(data, sub));
  writeFileSync(
    join(dir, "config.xml"),
    `<?xml version="1.0"?><yandex><logger><level>warning</level><console>true</console></logger>
<listen_host>127.0.0.1</listen_host><http_port>${port}</http_port><tcp_port>${await freePort()}</tcp_port>
<mark_cache_size>16777216</mark_cache_size><path>${data}/db/</path><tmp_path>${data}/tmp/</tmp_path>
<user_files_path>${data}/user_files/</user_files_path><format_schema_path>${data}/format_schemas/</format_schema_path>
<users_config>${dir}/users.xml</users_config><default_profile>default</default_profile><default_database>default</default_database>
<timezone>UTC</timezone><mlock_executable>false</mlock_executable></yandex>`,
  );
  writeFileSync(
    join(dir, "users.xml"),
    `<?xml version="1.0"?><yandex><profiles><default/></profiles>
<users><sluice><password>disk</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></sluice></users>
<quotas><default/></quotas></yandex>`,
  );
  execFileSync("chown", ["-R", `${SERVICE_USER}:`, dir]);
  const out = openSync(join(dir, "server.log"), "a");
  const child = spawn("setpriv", [`--reuid=${SERVICE_USER}`, `--regid=${SERVICE_USER}`, "--init-groups", binary!, `--config-file=${join(dir, "config.xml")}`], { stdio: ["ignore", out, out], detached: true });
  server = { pid: child.pid!, exited: new Promise((resolve) => child.once("exit", () => resolve())) };
  for (let attempt = 0; ; attempt++) {
    const up = await new Promise<boolean>((resolve) => connect(port, "127.0.0.1").once("connect", function (this: Socket) { this.destroy(); resolve(true); }).once("error", () => resolve(false)));
    if (up) return;
    assert.ok(attempt < 300 && child.exitCode === null, "the private ClickHouse did not start (see server.log)");
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

test("the ClickHouse server's disk full: the write is refused as an outage naming the disk and the file, not a failure that stops the sink, and applies once space is freed", { skip: skip ?? false, timeout: 120_000 }, async () => {
  const port = await freePort();
  await startServer(port);
  const sink = new ClickHouseSink(testSinkConfig("clickhouse", { name: "disk_full", url: `http://127.0.0.1:${port}`, user: "sluice", password: "disk", database: "disk_full", native_deletes: false }), { logger: testLogger() });
  const signal = () => AbortSignal.timeout(60_000);
  await sink.open(signal());
  try {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    await sink.write([events.insert(1n, { id: 1, v: "before" })], signal());
    const ballast = join(data, "ballast");
    try {
      execFileSync("dd", ["if=/dev/zero", `of=${ballast}`, "bs=1M"], { stdio: "ignore" });
    } catch {
      // dd stops with ENOSPC: the disk is full, as wanted
    }
    const batch = Array.from({ length: 200 }, (_, i) => events.insert(BigInt(10 + i), { id: 10 + i, v: "x".repeat(500) }));
    const refusal = await sink.write(batch, signal()).then(
      () => null,
      (error: unknown) => error as Error & { code?: string; retriable?: boolean },
    );
    assert.ok(refusal, "the write on a full disk was refused");
    assert.equal(refusal.code, "SINK_UNAVAILABLE", refusal.message);
    assert.equal(refusal.retriable, true);
    assert.match(refusal.message, /cannot store the sink's writes: its disk is full \(\/var\/tmp\/sluice-ch-disk-full-[^)]+\); free space on the ClickHouse server's disk/);
    unlinkSync(ballast);
    await sink.write(batch, signal());
    const response = await fetch(`http://127.0.0.1:${port}/?user=sluice&password=disk`, { method: "POST", body: `SELECT count(), sum(id) FROM disk_full.${events.schema.schema}_${events.schema.table} FORMAT TSV` });
    assert.equal((await response.text()).trim(), `201\t${1 + (10 + 209) * 100}`);
  } finally {
    await sink.close();
  }
});
