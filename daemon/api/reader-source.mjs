// The API thread when the daemon runs from its TypeScript sources (the tests): reader.ts through tsx,
// a development dependency. The built daemon starts dist/daemon/api/reader.js instead (thread.ts).
import { tsImport } from "tsx/esm/api";

await tsImport("./reader.ts", import.meta.url);
