// ports.ts and env.sh must agree: same environment variables, same defaults. Needs bash only,
// no running services.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { dirname, join } from 'node:path';
import type * as PortsModule from './ports.ts';

const here = dirname(fileURLToPath(import.meta.url));

type Ports = typeof PortsModule;

/** env.sh variable -> where ports.ts exposes it */
const mapping: Record<string, (p: Ports) => string | number> = {
  SLUICE_SERVICES_HOST: (p) => p.host,
  SLUICE_SERVICES_DIR: (p) => p.servicesDir,
  SLUICE_PG_PORT: (p) => p.postgres.port,
  SLUICE_PG_USER: (p) => p.postgres.user,
  SLUICE_PG_PASSWORD: (p) => p.postgres.password,
  SLUICE_PG_DATABASE: (p) => p.postgres.database,
  SLUICE_MARIADB_PORT: (p) => p.mariadb.port,
  SLUICE_MARIADB_USER: (p) => p.mariadb.user,
  SLUICE_MARIADB_PASSWORD: (p) => p.mariadb.password,
  SLUICE_MARIADB_DATABASE: (p) => p.mariadb.database,
  SLUICE_KAFKA_PORT: (p) => p.kafka.port,
  SLUICE_KAFKA_CONTROLLER_PORT: (p) => p.kafka.controllerPort,
  SLUICE_ES_PORT: (p) => p.elasticsearch.port,
  SLUICE_ES_TRANSPORT_PORT: (p) => p.elasticsearch.transportPort,
  SLUICE_CLICKHOUSE_HTTP_PORT: (p) => p.clickhouse.httpPort,
  SLUICE_CLICKHOUSE_TCP_PORT: (p) => p.clickhouse.tcpPort,
  SLUICE_CLICKHOUSE_USER: (p) => p.clickhouse.username,
  SLUICE_CLICKHOUSE_PASSWORD: (p) => p.clickhouse.password,
  SLUICE_PROMETHEUS_PORT: (p) => p.prometheus.port,
};

/** env.sh variables only the scripts use */
const scriptOnly = new Set([
  'SLUICE_SERVICES_CACHE', 'SLUICE_SERVICES_USER', 'SLUICE_SERVICES_TIMEOUT', 'SLUICE_PG_BIN',
  'SLUICE_KAFKA_VERSION', 'SLUICE_KAFKA_JAVA_HOME', 'SLUICE_KAFKA_HEAP_OPTS',
  'SLUICE_ES_VERSION', 'SLUICE_ES_JAVA_HOME', 'SLUICE_ES_JAVA_OPTS',
]);

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', ...extra };
}

function fromEnvSh(extra: Record<string, string>): Record<string, string> {
  const out = execFileSync(
    'bash',
    ['-c', 'set -eu; source "$1"; for v in ${!SLUICE_@}; do printf "%s=%s\\n" "$v" "${!v}"; done', '_', join(here, 'env.sh')],
    { env: cleanEnv(extra), encoding: 'utf8' },
  );
  return Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

function fromPortsTs(extra: Record<string, string>): Record<string, string> {
  const url = pathToFileURL(join(here, 'ports.ts')).href;
  const script = `
    const p = await import(${JSON.stringify(url)});
    const m = ${`{${Object.entries(mapping).map(([k, f]) => `${JSON.stringify(k)}: ${f.toString()}`).join(',')}}`};
    console.log(JSON.stringify(Object.fromEntries(Object.entries(m).map(([k, f]) => [k, String(f(p))]))));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    env: cleanEnv(extra),
    encoding: 'utf8',
  });
  return JSON.parse(out) as Record<string, string>;
}

test('env.sh defines exactly the variables ports.ts reads (plus the script-only ones)', () => {
  const vars = Object.keys(fromEnvSh({})).sort();
  assert.deepEqual(vars, [...Object.keys(mapping), ...scriptOnly].sort());
});

test('ports.ts defaults equal env.sh defaults', () => {
  const sh = fromEnvSh({});
  const ts = fromPortsTs({});
  for (const k of Object.keys(mapping)) assert.equal(ts[k], sh[k], k);
});

test('ports.ts and env.sh honour the same overrides', () => {
  const overrides: Record<string, string> = {};
  let n = 40000;
  for (const k of Object.keys(mapping)) overrides[k] = k.endsWith('_PORT') ? String(n++) : `v-${k.toLowerCase()}`;
  overrides.SLUICE_SERVICES_HOST = '127.0.0.2';
  const sh = fromEnvSh(overrides);
  const ts = fromPortsTs(overrides);
  for (const k of Object.keys(mapping)) {
    assert.equal(sh[k], overrides[k], `env.sh ${k}`);
    assert.equal(ts[k], overrides[k], `ports.ts ${k}`);
  }
});

test('an empty variable means the default in both', () => {
  const sh = fromEnvSh({ SLUICE_PG_PORT: '' });
  const ts = fromPortsTs({ SLUICE_PG_PORT: '' });
  assert.equal(sh.SLUICE_PG_PORT, '55432');
  assert.equal(ts.SLUICE_PG_PORT, '55432');
});
