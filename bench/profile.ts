// A CPU profile of one stretch of a benchmark (node:inspector), written where BENCH_PROFILE names when
// it is set: what the closing notes' "where the time goes" tables are read from.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";

export async function profiled<T>(label: string, body: () => Promise<T>): Promise<T> {
  const dir = process.env.BENCH_PROFILE;
  if (!dir) return body();
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.start");
  try {
    return await body();
  } finally {
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(`${dir}/${label}.cpuprofile`, JSON.stringify(profile));
    session.disconnect();
  }
}
