// Elasticsearch really works from @elastic/elasticsearch: create an index, index a document
// with an external version (how Sluice's sink applies changes), search for it, delete the index.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Client } from '@elastic/elasticsearch';
import { elasticsearch } from '../../services/ports.ts';

const suffix = randomBytes(5).toString('hex');

test('elasticsearch: index, version, search, delete', { timeout: 60_000 }, async () => {
  const client = new Client({ node: elasticsearch.url, requestTimeout: 30_000 });
  const index = `sluice-smoke-${suffix}`;
  try {
    // (client.info() = GET /, which the integ-test-zip distribution does not serve: no rest-root module)
    const health = await client.cluster.health({ wait_for_status: 'yellow', timeout: '30s' });
    assert.ok(['yellow', 'green'].includes(health.status), `cluster health ${health.status}`);
    const nodes = await client.nodes.info({ node_id: '_local', metric: 'settings' });
    const node = Object.values(nodes.nodes)[0]!;
    assert.equal(node.version.split('.')[0], '9', `server ${node.version} has the client's major version`);

    const created = await client.indices.create({
      index,
      settings: { number_of_shards: 1, number_of_replicas: 0 },
      mappings: { properties: { id: { type: 'long' }, name: { type: 'text' }, tag: { type: 'keyword' } } },
    });
    assert.equal(created.acknowledged, true);

    const put = await client.index({
      index,
      id: '42',
      version: 1000,
      version_type: 'external',
      document: { id: 42, name: `hello smoke ${suffix}`, tag: 'first' },
      refresh: 'wait_for',
    });
    assert.equal(put.result, 'created');
    assert.equal(put._version, 1000);

    // an older external version is rejected: sinks rely on this to ignore replays
    await assert.rejects(
      client.index({ index, id: '42', version: 999, version_type: 'external', document: { id: 42, tag: 'stale' } }),
      (err: unknown) => (err as { meta?: { statusCode?: number } }).meta?.statusCode === 409,
    );

    const found = await client.search<{ id: number; name: string; tag: string }>({
      index,
      query: { match: { name: suffix } },
    });
    const total = typeof found.hits.total === 'number' ? found.hits.total : found.hits.total?.value;
    assert.equal(total, 1);
    assert.deepEqual(found.hits.hits[0]!._source, { id: 42, name: `hello smoke ${suffix}`, tag: 'first' });

    const byTag = await client.count({ index, query: { term: { tag: 'first' } } });
    assert.equal(byTag.count, 1);
  } finally {
    await client.indices.delete({ index, ignore_unavailable: true }).catch(() => {});
    const exists = await client.indices.exists({ index }).catch(() => undefined);
    await client.close();
    assert.equal(exists, false, 'index deleted');
  }
});
