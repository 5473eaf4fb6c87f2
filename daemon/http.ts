// Where the daemon's HTTP listener listens (--http host:port); the listener itself is daemon/api/server.ts.

export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--http must be host:port (got "${value}")`);
  return { host: match[1] ?? match[2] ?? "127.0.0.1", port };
}

/** A loopback address: only this machine can connect to it. */
export function isLoopback(host: string): boolean {
  return /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/i.test(host);
}
