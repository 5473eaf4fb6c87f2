// The open-file limit a long-running command refuses (daemon/open-files.ts).
import { describe, expect, it } from "vitest";
import { MIN_OPEN_FILES, openFilesLimit, openFilesProblem } from "../../daemon/open-files.js";

const limits = (soft: string, hard: string) => `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            ${soft.padEnd(20)} ${hard.padEnd(20)} files
Max locked memory         8388608              8388608              bytes
`;

describe("open-file limit", () => {
  it("reads the soft limit of /proc/PID/limits", () => {
    expect(openFilesLimit(limits("1024", "524288"))).toBe(1024);
    expect(openFilesLimit(limits("unlimited", "unlimited"))).toBe(Number.POSITIVE_INFINITY);
    expect(openFilesLimit("Max cpu time unlimited unlimited seconds\n")).toBeUndefined();
    expect(openFilesLimit(limits("lots", "lots"))).toBeUndefined();
  });

  it("names the limit, the floor and where the limit is set, below the floor only", () => {
    expect(MIN_OPEN_FILES).toBe(256);
    expect(openFilesProblem("run", 255)).toBe(
      "the process may open at most 255 files; grouparoo-stream run needs at least 256: raise the open-file limit (LimitNOFILE= under systemd, --ulimit nofile= for a container, ulimit -n in a shell)",
    );
    expect(openFilesProblem("worker", 32)).toMatch(/^the process may open at most 32 files; grouparoo-stream worker needs/);
    expect(openFilesProblem("run", 256)).toBeUndefined();
    expect(openFilesProblem("run", Number.POSITIVE_INFINITY)).toBeUndefined();
    expect(openFilesProblem("run", undefined)).toBeUndefined();
  });
});
