// Paging cursors: the last key a page read (a record id, a seq), with what it pages over, as opaque
// base64url JSON. A page starts strictly after its cursor's key, so records, exports or dead letters
// added or removed between two requests never shift a page (as an offset would).
import { badRequest } from "./errors.js";

export function encodeCursor(over: string, last: string | number): string {
  return Buffer.from(JSON.stringify([over, last]), "utf8").toString("base64url");
}

/**
 * The last key of a cursor made for `over`; a 400 naming the problem otherwise. `retired` names what an
 * earlier version's cursors paged over, and why they no longer page (the order changed).
 */
export function decodeCursor<T extends "string" | "number">(cursor: string | undefined, over: string, type: T, retired?: { over: string; why: string }): (T extends "string" ? string : number) | undefined {
  if (cursor === undefined || cursor === "") return undefined;
  let parsed: unknown;
  try {
    if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw new Error("not base64url");
    parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    throw badRequest(`cursor "${cursor.slice(0, 64)}" is not a cursor this API handed out (pass nextCursor from the previous page as it is)`, "INVALID_CURSOR");
  }
  if (!Array.isArray(parsed) || parsed.length !== 2 || typeof parsed[1] !== type) {
    throw badRequest(`cursor "${cursor.slice(0, 64)}" is not a cursor this API handed out (pass nextCursor from the previous page as it is)`, "INVALID_CURSOR");
  }
  if (retired && parsed[0] === retired.over) throw badRequest(`cursor is from an earlier version: ${retired.why}; page again from the start (without a cursor)`, "INVALID_CURSOR");
  if (parsed[0] !== over) throw badRequest(`cursor is for ${String(parsed[0])}, not ${over}`, "INVALID_CURSOR");
  return parsed[1] as T extends "string" ? string : number;
}
