/** Kafka's record batch v2 (magic 2) header: byte offsets of its fields from the batch's start. */
export const LENGTH_AT = 8;
export const LEADER_EPOCH_AT = 12;
export const MAGIC_AT = 16;
export const ATTRIBUTES_AT = 21;
export const LAST_OFFSET_DELTA_AT = 23;
export const FIRST_TIMESTAMP_AT = 27;
export const MAX_TIMESTAMP_AT = 35;
export const PRODUCER_ID_AT = 43;
export const PRODUCER_EPOCH_AT = 51;
export const FIRST_SEQUENCE_AT = 53;
export const RECORD_COUNT_AT = 57;
/** The header's size: the first record starts here. */
export const HEADER_BYTES = 61;
