// The HTTP server: /metrics for Prometheus, /healthz (the process is alive) and /readyz (200 only
// while every source is connected and the daemon is not draining).
import { createServer, type Server } from "node:http";
import type { Registry } from "prom-client";

export interface HttpEndpoints {
  registry: Registry;
  /** null when ready, else why not. */
  notReady(): string | null;
}

export function parseListen(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--http must be host:port (got "${value}")`);
  return { host: match[1] ?? match[2] ?? "127.0.0.1", port };
}

export async function startHttpServer(listen: { host: string; port: number }, endpoints: HttpEndpoints): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    const send = (status: number, body: string, type = "text/plain; charset=utf-8") => {
      response.writeHead(status, { "content-type": type });
      response.end(body);
    };
    if (request.method !== "GET" && request.method !== "HEAD") return send(405, "method not allowed\n");
    switch (path) {
      case "/healthz":
        return send(200, "ok\n");
      case "/readyz": {
        const reason = endpoints.notReady();
        return reason === null ? send(200, "ready\n") : send(503, `not ready: ${reason}\n`);
      }
      case "/metrics":
        endpoints.registry.metrics().then(
          (text) => send(200, text, endpoints.registry.contentType),
          (error: Error) => send(500, `metrics failed: ${error.message}\n`),
        );
        return;
      default:
        return send(404, "not found\n");
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => resolve());
  });
  return server;
}
