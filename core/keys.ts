// How long an id taken from source data may be, so that every key the state builds from it fits in an
// LMDB key: record ids (a primary row's key), row keys of other sources, and unique values. Pure: the
// numbers follow state/store.ts's key layout, checked here before any of them reaches the state.
//
// LMDB (lmdb-js, its default page size) refuses a key over 1978 bytes. A key is an array encoded by
// ordered-binary: each string as its UTF-8 bytes (one escape byte more when it is empty or starts
// with a character below 28; a short string's characters 0 to 4 take 2 bytes, which stays below 3
// per character), a number (an id in idKey's integer form) in at most 9, one separator byte between
// elements. The longest keys hold two ids: `pending` [model, property, value, source, row key] and
// `attached` [model, record, source, row key]; at 800 bytes each they take 2 × (800 + 1) + 4 = 1,606
// bytes, which leaves 372 for the config ids beside them (ASCII by the config's id pattern: about
// 124 characters each). The ends of the ranges read under them (KEY_END, 9 bytes with its separator)
// stand in place of an id, never beside two.

/** The largest key LMDB stores (lmdb-js's default page size). */
export const LMDB_MAX_KEY_BYTES = 1978;

/** The most UTF-8 bytes a record id, row key or unique value may have (see above). */
export const MAX_ID_BYTES = 800;

/**
 * The UTF-8 size of an id when it is over MAX_ID_BYTES, else undefined (it fits). Cheap for every
 * change: a string of n UTF-16 units has between n and 3n UTF-8 bytes, so one of at most
 * MAX_ID_BYTES / 3 units fits without being measured.
 */
export function oversizedId(id: string): number | undefined {
  const n = id.length;
  if (n * 3 <= MAX_ID_BYTES) return undefined;
  const bytes = Buffer.byteLength(id, "utf8");
  return bytes > MAX_ID_BYTES ? bytes : undefined;
}

/** Why a change whose row key cannot be a key of the state is set aside (a dead letter). */
export function oversizedRowKeyReason(sourceId: string, primary: boolean, bytes: number): string {
  const what = primary ? `the row key of source "${sourceId}" (its record's id)` : `the row key of source "${sourceId}"`;
  return `${what} is ${bytes} bytes in UTF-8, more than the ${MAX_ID_BYTES} bytes the state can key it by`;
}

/** Why a unique property holds null instead of a value too long to index (the record's invalid reason). */
export function oversizedUniqueReason(bytes: number): string {
  return `Value too long to be unique (${bytes} bytes in UTF-8, at most ${MAX_ID_BYTES})`;
}

/**
 * A record id, row key or unique value as it stands in a key (layout 4): canonical integer text ("0",
 * "42", "-7"; no "+", no leading zero, at most 15 digits) as that number, anything else as itself.
 * Numbers sort before strings and among themselves by value, so the ids of a serial primary key that
 * only grows are appended at the end of their B-tree, where LMDB leaves each page full, instead of
 * splitting pages in the middle of text order ("100000" sorts between "10000" and "10001"), which left
 * them half full: half the pages for the same records, and fewer pages written per batch. The mapping
 * is one to one (String() gives the text back), so every reader turns a key part back with String().
 */
export function idKey(id: string): string | number {
  const n = id.length;
  if (n === 0 || n > 16) return id;
  const from = id.charCodeAt(0) === 45 ? 1 : 0; // "-"
  if (from === n || n - from > 15) return id;
  if (id.charCodeAt(from) === 48) return n === 1 ? 0 : id; // "0" alone; "-0", "007" stay text
  for (let i = from; i < n; i++) {
    const c = id.charCodeAt(i);
    if (c < 48 || c > 57) return id;
  }
  return Number(id);
}

/**
 * The order of two ids in the state's keys (idKey's): canonical integers by value, before any other
 * text, which sorts by its UTF-8 bytes (ordered-binary's order of strings). Which of two records is
 * the "lowest id" the core gives a contested unique value to, as the state lists them.
 */
export function compareIds(a: string, b: string): number {
  if (a === b) return 0;
  const x = idKey(a);
  const y = idKey(b);
  if (typeof x === "number") return typeof y === "number" ? x - y : -1;
  if (typeof y === "number") return 1;
  return Buffer.compare(Buffer.from(x, "utf8"), Buffer.from(y, "utf8"));
}
