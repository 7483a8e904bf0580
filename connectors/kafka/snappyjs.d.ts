// snappyjs ships no types; only what snappy.ts uses.
declare module "snappyjs" {
  /** Decompresses one raw Snappy block; throws when its stated length is over maxLength (before allocating) or it is invalid. */
  export function uncompress(compressed: Buffer, maxLength?: number): Buffer;
}
