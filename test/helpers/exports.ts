// An export as the outbox hands it to a destination, for the destinations' and delivery's tests: a
// record `String(seq)` created with `{ id: seq }`, nothing before it, no groups; `fields` changes any part.
import type { DeliveryEntry } from "../../streams/delivery.js";

export function exportOf(seq: number, fields: Partial<DeliveryEntry> = {}): DeliveryEntry {
  return {
    seq,
    destinationId: "d",
    recordId: String(seq),
    oldRecordProperties: {},
    newRecordProperties: { id: seq },
    oldGroups: [],
    newGroups: [],
    toDelete: false,
    updateOnly: false,
    commitTime: 0,
    ...fields,
  };
}
