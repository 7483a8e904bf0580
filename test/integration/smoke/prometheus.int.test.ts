// Prometheus really works: it scrapes (itself, at least), answers PromQL over the HTTP API, and
// lets tests reload its config (--web.enable-lifecycle).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { prometheus } from '../../services/ports.ts';

interface QueryResponse {
  status: string;
  data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

async function query(promql: string): Promise<QueryResponse> {
  const res = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(promql)}`, {
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(res.status, 200);
  return (await res.json()) as QueryResponse;
}

test('prometheus: `up` has results and Prometheus scrapes itself', async () => {
  const body = await query('up');
  assert.equal(body.status, 'success');
  assert.equal(body.data.resultType, 'vector');
  assert.ok(body.data.result.length >= 1, 'at least one series for `up`');
  const self = body.data.result.find((r) => r.metric.job === 'prometheus');
  assert.ok(self, 'a series for job="prometheus"');
  assert.equal(self.metric.instance, `${prometheus.host}:${prometheus.port}`);
  assert.equal(self.value[1], '1');

  const bad = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent('up{')}`);
  assert.equal(bad.status, 400, 'a broken query is rejected');
});

test('prometheus: config file in place and lifecycle reload enabled', async () => {
  assert.ok(existsSync(prometheus.configFile), prometheus.configFile);
  assert.ok(existsSync(prometheus.targetsDir), prometheus.targetsDir);
  const res = await fetch(`${prometheus.url}/-/reload`, { method: 'POST', signal: AbortSignal.timeout(10_000) });
  assert.equal(res.status, 200, await res.text());
  const ready = await fetch(`${prometheus.url}/-/ready`);
  assert.equal(ready.status, 200);
});
