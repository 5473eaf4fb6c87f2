import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { parseUtc } from "../../connectors/postgres/types.js";

const parser = (oid: number) => pg.types.getTypeParser(oid, "text") as (text: string) => unknown;

describe("Postgres date and timestamp parsers", () => {
  const zone = process.env.TZ;
  afterEach(() => {
    if (zone === undefined) delete process.env.TZ;
    else process.env.TZ = zone;
  });

  // Node applies a TZ change at once: the parsers must not move with it.
  for (const tz of ["UTC", "Europe/Berlin", "America/Los_Angeles", "Pacific/Kiritimati"]) {
    it(`reads zone-less values as UTC with TZ=${tz}`, () => {
      process.env.TZ = tz;
      expect((parser(1082)("2024-03-01") as Date).toISOString()).toBe("2024-03-01T00:00:00.000Z");
      expect((parser(1114)("2024-03-01 10:00:00.123456") as Date).toISOString()).toBe("2024-03-01T10:00:00.123Z");
      expect((parser(1182)("{2024-03-01,NULL}") as unknown[]).map((d) => (d instanceof Date ? d.toISOString() : d))).toEqual(["2024-03-01T00:00:00.000Z", null]);
      expect((parser(1115)('{"2024-03-01 23:59:59"}') as Date[])[0]?.toISOString()).toBe("2024-03-01T23:59:59.000Z");
      // timestamptz carries its offset and stays pg's.
      expect((parser(1184)("2024-03-01 10:00:00+02") as Date).toISOString()).toBe("2024-03-01T08:00:00.000Z");
    });
  }

  it("keeps infinities, dates before the common era, and leaves other text as it is", () => {
    expect(parseUtc("infinity")).toBe(Infinity);
    expect(parseUtc("-infinity")).toBe(-Infinity);
    expect((parseUtc("0044-03-15 BC") as Date).toISOString()).toBe("-000043-03-15T00:00:00.000Z");
    expect((parseUtc("0001-12-31 23:00:00.5 BC") as Date).toISOString()).toBe("0000-12-31T23:00:00.500Z");
    expect(parseUtc("soon")).toBe("soon");
  });
});
