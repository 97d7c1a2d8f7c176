// Lesson 8: several hosts behind nginx.
//
// Each host runs lesson 5's cluster. nginx takes every request and passes it to one of
// the hosts: this file writes what nginx needs to do that well (the config), the
// keep-alive timeouts the hosts' servers use, and the deploy that reloads the hosts.

export interface Address {
  host: string;
  port: number;
}

// TODO (5): The hosts' http.Server keepAliveTimeout. An idle upstream connection must be
// closed by nginx, never by the host: above nginx's upstream keepalive_timeout (60 s
// unless you set it). Node's default is 5 s.
export const HOST_KEEP_ALIVE_TIMEOUT_MS = 65_000;

// What nginx runs inside its http block: an upstream of every host, and a server that
// listens on `listen` and passes every request to that upstream.
export function nginxConfig(listen: Address, hosts: Address[]): string {
  return `
upstream hosts {
  # TODO (1): One server line for every host. A host that fails max_fails times within
  # fail_timeout is left out for fail_timeout: nginx's passive health check.
${hosts.map((host) => `  server ${host.host}:${host.port} max_fails=1 fail_timeout=10s;`).join('\n')}
  # TODO (2): Keep idle connections to the hosts open for the next requests.
  keepalive 16;
  keepalive_timeout 60s;
}

server {
  listen ${listen.host}:${listen.port};

  location / {
    proxy_pass http://hosts;
    # TODO (2): Keep-alive to an upstream needs HTTP/1.1, and no "Connection: close".
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    # TODO (3): Pass a request that failed to another host: on a connection error, a
    # timeout, or a 502 or 503. nginx never passes on a POST that was sent already.
    proxy_next_upstream error timeout http_502 http_503;
    proxy_next_upstream_tries 2;
    # TODO (4): A host that does not answer is given up on in seconds, not 60.
    proxy_connect_timeout 1s;
    proxy_read_timeout 3s;
  }
}
`;
}

export interface DeployHost {
  name: string;
  // Reloads that host's workers (SIGHUP to its primary, lesson 5), and resolves once the
  // reload is done; rejects if it stopped, as it does when the new workers crash.
  reload(): Promise<void>;
}

// TODO (6): Reload one host at a time, the next only once the last is done. A host whose
// reload failed stops the deploy: the hosts not yet reloaded keep the old release.
export async function rollingDeploy(hosts: DeployHost[]): Promise<void> {
  for (const host of hosts) {
    await host.reload();
  }
}
