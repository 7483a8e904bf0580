// Connection settings of the real services started by test/services/up, for tests to import.
// Same environment variables and defaults as test/services/env.sh (ports.test.ts checks that
// the two agree); an unset or empty variable means the default.

const env = process.env;

function str(name: string, fallback: string): string {
  const v = env[name];
  return v === undefined || v === '' ? fallback : v;
}

function port(name: string, fallback: number): number {
  const v = str(name, String(fallback));
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) {
    throw new Error(`${name}=${JSON.stringify(v)} is not a TCP port`);
  }
  return n;
}

/** Loopback address every service listens on. */
export const host = str('SLUICE_SERVICES_HOST', '127.0.0.1');

/** State dir of the services: data/<svc>/, logs/<svc>.log, run/<svc>.pid. */
export const servicesDir = str('SLUICE_SERVICES_DIR', '/var/tmp/sluice-services');

export const postgres = Object.freeze({
  host,
  port: port('SLUICE_PG_PORT', 55432),
  /** superuser with REPLICATION */
  user: str('SLUICE_PG_USER', 'sluice'),
  password: str('SLUICE_PG_PASSWORD', 'sluice'),
  database: str('SLUICE_PG_DATABASE', 'sluice'),
});

export const mariadb = Object.freeze({
  host,
  port: port('SLUICE_MARIADB_PORT', 53306),
  /** ALL PRIVILEGES incl. REPLICATION SLAVE / REPLICATION CLIENT */
  user: str('SLUICE_MARIADB_USER', 'sluice'),
  password: str('SLUICE_MARIADB_PASSWORD', 'sluice'),
  database: str('SLUICE_MARIADB_DATABASE', 'sluice'),
});

const kafkaPort = port('SLUICE_KAFKA_PORT', 59092);
export const kafka = Object.freeze({
  host,
  port: kafkaPort,
  controllerPort: port('SLUICE_KAFKA_CONTROLLER_PORT', 59093),
  /** for kafkajs `brokers` */
  brokers: [`${host}:${kafkaPort}`],
  /** auto.create.topics.enable=false: create topics explicitly */
  autoCreateTopics: false,
});

const esPort = port('SLUICE_ES_PORT', 59200);
export const elasticsearch = Object.freeze({
  host,
  port: esPort,
  transportPort: port('SLUICE_ES_TRANSPORT_PORT', 59300),
  /** for @elastic/elasticsearch `node`; security is off (no auth, plain http) */
  url: `http://${host}:${esPort}`,
});

const chHttpPort = port('SLUICE_CLICKHOUSE_HTTP_PORT', 58123);
export const clickhouse = Object.freeze({
  host,
  httpPort: chHttpPort,
  tcpPort: port('SLUICE_CLICKHOUSE_TCP_PORT', 59000),
  /** for @clickhouse/client `url` */
  url: `http://${host}:${chHttpPort}`,
  /** the passwordless `default` user exists too */
  username: str('SLUICE_CLICKHOUSE_USER', 'sluice'),
  password: str('SLUICE_CLICKHOUSE_PASSWORD', 'sluice'),
  database: 'default',
});

const promPort = port('SLUICE_PROMETHEUS_PORT', 59090);
export const prometheus = Object.freeze({
  host,
  port: promPort,
  url: `http://${host}:${promPort}`,
  /** rewritten on each start; POST `${url}/-/reload` after editing it (--web.enable-lifecycle) */
  configFile: `${servicesDir}/data/prometheus/prometheus.yml`,
  /** file_sd directory (job "sluice"): drop *.json / *.yml target files here, no reload needed */
  targetsDir: `${servicesDir}/data/prometheus/targets`,
  /** alert rule files (*.yml) loaded on POST `${url}/-/reload` */
  rulesDir: `${servicesDir}/data/prometheus/rules`,
});
