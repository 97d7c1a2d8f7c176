// Lesson 10: state that every worker shares.
//
// A worker's memory is its own. A rate limit counted there is a limit per worker: 10 a
// window becomes 20 with two workers, and 40 with two such hosts. A session kept there
// is unknown to the other workers, and lost when its worker restarts. This server keeps
// both in Redis, outside every process. Each worker holds one client, counts a request
// in one atomic round trip, and bounds every call, so a Redis that is down or hangs
// costs a request a short wait, never a crash or a hang. The rest is lessons 3 to 5,
// imported.
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import type http from 'node:http';
import { createClient } from 'redis';
import { readConfig, type ServerConfig } from '../../common/config.ts';
import { sendJson } from '../../common/respond.ts';
import { startSupervisor } from '../../common/supervisor.ts';
import { startWorker, type Front } from '../../common/worker.ts';

const config = readConfig();

// All the checks' load comes from 127.0.0.1, so a client names itself in this header.
// Behind a proxy you trust, it would be the client's address from X-Forwarded-For.
const CLIENT_HEADER = 'x-client-id';
const SESSION_COOKIE = 'sid';
// How long a worker waits before it tries a lost Redis connection again, at most.
const RECONNECT_MAX_MS = 1_000;

interface Session {
  client: string;
  loggedInAt: number;
}

// One request counted against its client's window.
interface Hit {
  allowed: boolean;
  // How long until the window ends and the client may try again.
  retryAfterMs: number;
}

interface Store {
  hit(client: string): Promise<Hit>;
  saveSession(id: string, session: Session): Promise<void>;
  loadSession(id: string): Promise<Session | undefined>;
  close(): Promise<void>;
}

// Right for one process, wrong for a cluster: each worker has its own Maps.
class MemoryStore implements Store {
  #config: ServerConfig;
  #windows = new Map<string, { count: number; endsAt: number }>();
  #sessions = new Map<string, Session>();

  constructor(config: ServerConfig) {
    this.#config = config;
  }

  async hit(client: string): Promise<Hit> {
    const now = Date.now();
    let window = this.#windows.get(client);
    if (!window || window.endsAt <= now) {
      window = { count: 0, endsAt: now + this.#config.rateWindowMs };
      this.#windows.set(client, window);
    }
    window.count++;
    return { allowed: window.count <= this.#config.rateLimit, retryAfterMs: window.endsAt - now };
  }

  async saveSession(id: string, session: Session): Promise<void> {
    this.#sessions.set(id, session);
  }

  async loadSession(id: string): Promise<Session | undefined> {
    return this.#sessions.get(id);
  }

  async close(): Promise<void> {}
}

class RedisStore implements Store {
  #config: ServerConfig;
  #redis;

  constructor(config: ServerConfig) {
    this.#config = config;
    // TODO (1): One client per worker, made once: createClient() with config.redisUrl; disableOfflineQueue, so a call fails at once while Redis is away instead of waiting for it; socket.reconnectStrategy, to try again every so often; and commandOptions { timeout: config.redisTimeoutMs, rejectInFlight: true }, so no call waits longer. Listen for 'error' (a client without a listener throws, and the worker dies with Redis); connect() without awaiting it: the worker serves meanwhile.
    this.#redis = createClient({
      url: config.redisUrl,
      disableOfflineQueue: true,
      socket: { connectTimeout: config.redisTimeoutMs, reconnectStrategy: (attempt) => Math.min(50 * 2 ** attempt, RECONNECT_MAX_MS) },
      commandOptions: { timeout: config.redisTimeoutMs, rejectInFlight: true },
    });
    let lastError = '';
    this.#redis.on('error', (error: Error) => {
      if (error.message !== lastError) console.error(`worker ${process.pid}: Redis: ${error.message}`);
      lastError = error.message;
    });
    this.#redis.on('ready', () => (lastError = ''));
    this.#redis.connect().catch(() => {});
  }

  async hit(client: string): Promise<Hit> {
    // TODO (2): Count the request and read the window in one atomic round trip: a MULTI of INCR, PEXPIRE with NX (the window starts at its first request; a PEXPIRE on every request would push its end back each time), and PTTL.
    const key = `rate:${client}`;
    const [count, , ttl] = await this.#redis.multi().incr(key).pExpire(key, this.#config.rateWindowMs, 'NX').pTTL(key).exec();
    return { allowed: Number(count) <= this.#config.rateLimit, retryAfterMs: Math.max(Number(ttl), 0) };
  }

  async saveSession(id: string, session: Session): Promise<void> {
    // TODO (3): SET the session as JSON under session:<id>, to expire after config.sessionTtlMs (expiration PX); loadSession() GETs it back.
    await this.#redis.set(`session:${id}`, JSON.stringify(session), { expiration: { type: 'PX', value: this.#config.sessionTtlMs } });
  }

  async loadSession(id: string): Promise<Session | undefined> {
    const text = await this.#redis.get(`session:${id}`);
    return text === null ? undefined : (JSON.parse(text) as Session);
  }

  // TODO (4): Close the client once the worker has drained: its open socket would keep the worker alive until its drain timeout.
  async close(): Promise<void> {
    await this.#redis.close();
  }
}

if (cluster.isPrimary) {
  if (!config.redisUrl) console.log('REDIS_URL is not set: each worker keeps its own rate limits and sessions');
  startSupervisor(config);
} else {
  const store = config.redisUrl ? new RedisStore(config) : new MemoryStore(config);
  const server = startWorker(config, undefined, limitAndSessions(store));
  server.on('close', () => void store.close().catch(() => {}));
}

// Every request is counted against its client's limit; /login and /me are answered here,
// the contract's routes by next().
function limitAndSessions(store: Store): Front {
  return async (req, res, next) => {
    const client = String(req.headers[CLIENT_HEADER] ?? req.socket.remoteAddress);
    // TODO (5): When the store fails, let the request through (fail open: an outage of Redis must not become one of the site) …
    const hit = await store.hit(client).catch((error: Error) => {
      console.error(`worker ${process.pid}: rate limit not checked: ${error.message}`);
      return { allowed: true, retryAfterMs: 0 };
    });
    if (!hit.allowed) {
      res.setHeader('retry-after', Math.max(1, Math.ceil(hit.retryAfterMs / 1000)));
      sendJson(res, 429, { error: `more than ${config.rateLimit} requests in ${config.rateWindowMs} ms`, retryAfterMs: hit.retryAfterMs, pid: process.pid });
      return;
    }
    if (req.method === 'POST' && req.url === '/login') return login(store, client, res);
    if (req.method === 'GET' && req.url === '/me') return me(store, req, res);
    next();
  };
}

async function login(store: Store, client: string, res: http.ServerResponse): Promise<void> {
  // A session id is a secret: random, and long enough that none can be guessed.
  const id = randomBytes(18).toString('base64url');
  try {
    await store.saveSession(id, { client, loggedInAt: Date.now() });
  } catch (error) {
    return storeDown(res, error as Error);
  }
  res.setHeader('set-cookie', `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Lax; Path=/`);
  sendJson(res, 200, { client, pid: process.pid });
}

async function me(store: Store, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const id = readCookie(req, SESSION_COOKIE);
  let session: Session | undefined;
  try {
    session = id === undefined ? undefined : await store.loadSession(id);
  } catch (error) {
    return storeDown(res, error as Error);
  }
  if (!session) return sendJson(res, 401, { error: 'not logged in: POST /login first', pid: process.pid });
  sendJson(res, 200, { client: session.client, loggedInAt: session.loggedInAt, pid: process.pid });
}

// TODO (5): … but answer a session route 503, with a Retry-After: a 401 would tell the client its session is gone, when only the store is away.
function storeDown(res: http.ServerResponse, error: Error): void {
  console.error(`worker ${process.pid}: session store: ${error.message}`);
  res.setHeader('retry-after', 1);
  sendJson(res, 503, { error: 'the session store is not answering; try again shortly', pid: process.pid });
}

function readCookie(req: http.IncomingMessage, name: string): string | undefined {
  for (const pair of (req.headers.cookie ?? '').split(';')) {
    const [key, ...value] = pair.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}
