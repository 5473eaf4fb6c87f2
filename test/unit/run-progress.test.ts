// A re-read's positions are its connector's opaque resume points (connectors/types.ts): the Runs read
// progress from them when they say it and never fail on one that does not (an empty position before
// the first chunk once crashed a daemon with "Unexpected end of JSON input").
import { describe, expect, it } from "vitest";
import { runComplete, runProgress } from "../../streams/runs.js";

describe("re-read positions", () => {
  it("read rows and completion from JSON progress, nothing from anything else", () => {
    const cases: [string, ReturnType<typeof runProgress>, boolean][] = [
      ["", {}, false],
      ["complete", {}, true],
      ['{"rows":5}', { rows: 5 }, false],
      ['{"rows":5,"complete":true,"after":["k"]}', { rows: 5, complete: true }, true],
      ['{"after":["k"]}', {}, false],
      ['{"rows":"5"}', {}, false],
      ["{not json", {}, false],
      ["null", {}, false],
      ["12:345", {}, false],
    ];
    expect(cases.map(([position]) => [position, runProgress(position), runComplete(position)])).toEqual(cases);
  });
});
