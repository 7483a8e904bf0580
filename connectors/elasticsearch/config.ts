/** The Elasticsearch sink's configuration: the `kind: elasticsearch` section of config/schema.ts, plus what the runtime hands in. */
import type { SinkConfig } from "../../config/schema.ts";
import type { Logger } from "../../runtime/logger.ts";

export type ElasticsearchSinkConfig = Extract<SinkConfig, { kind: "elasticsearch" }>;

export interface ElasticsearchSinkOptions {
  readonly logger: Logger;
  /** Refresh after every bulk request so writes are searchable at once (tests); default: the index's refresh interval (`refresh_interval`, else Elasticsearch's 1 s). */
  readonly refresh?: boolean;
}

/** Hidden index holding every Elasticsearch sink's consumer offsets (document id `<sink>/<topic>/<partition>`). */
export const OFFSETS_INDEX = "sluice-offsets";
