/** The Elasticsearch sink: what the daemon wires (see elasticsearch-sink.ts). */
export { createElasticsearchSink, ElasticsearchSink } from "./elasticsearch-sink.ts";
export type { ElasticsearchSinkConfig, ElasticsearchSinkOptions } from "./config.ts";
