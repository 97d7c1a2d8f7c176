// The server npm run bench:state measures: lesson 10's POST /login and GET /me, with the
// session kept where STATE_STORE says: `memory` (each worker's own Map), `redis` (one
// client per worker, as in the lesson's solution) or `primary` (a Map in the cluster's
// primary, asked over IPC). Nothing else differs, so the benchmark compares the stores.
//
// For the benchmark only, POST /login takes the session's id from x-session-id: the bench
// logs in with one id until every worker holds it, so that even the memory store knows the
// session on whichever worker the load reaches. A real server never lets a client choose.
import cluster from 'node:cluster';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { createClient } from 'redis';
import { readConfig } from '../../common/config.ts';
import { sendJson } from '../../common/respond.ts';

const STORES = ['memory', 'redis', 'primary'] as const;
const SESSION_ID_HEADER = 'x-session-id';
const SESSION_COOKIE = 'sid';
const CLIENT_HEADER = 'x-client-id';

const config = readConfig({ WORKERS: '2', ...process.env });
const storeName = process.env.STATE_STORE ?? 'memory';

interface Session {
  client: string;
  loggedInAt: number;
}

interface Store {
  save(id: string, session: Session): Promise<void>;
  load(id: string): Promise<Session | undefined>;
}

// What a worker asks the primary, and what it answers, matched by requestId.
type Ask = { type: 'session-get'; id: string; requestId: number } | { type: 'session-set'; id: string; session: Session; requestId: number };
interface Answer {
  type: 'session';
  requestId: number;
  session: Session | null;
}

if (!(STORES as readonly string[]).includes(storeName)) throw new Error(`STATE_STORE=${storeName}: give one of ${STORES.join(', ')}`);

if (cluster.isPrimary) {
  // Only the primary store uses it; the others leave it empty.
  const sessions = new Map<string, Session>();
  cluster.on('message', (worker, message: Ask) => {
    if (message.type === 'session-set') sessions.set(message.id, message.session);
    else if (message.type !== 'session-get') return;
    const answer: Answer = { type: 'session', requestId: message.requestId, session: sessions.get(message.id) ?? null };
    worker.send(answer);
  });
  // The port takes connections once one worker listens: the bench waits for this line.
  let listening = 0;
  cluster.on('listening', () => {
    if (++listening === config.workers) console.log(`all ${config.workers} workers listening`);
  });
  for (let i = 0; i < config.workers; i++) cluster.fork();
} else {
  const store = { memory: memoryStore, redis: redisStore, primary: primaryStore }[storeName as (typeof STORES)[number]]();
  http.createServer((req, res) => void route(store, req, res)).listen(config.port, config.host);
}

async function route(store: Store, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  try {
    if (req.method === 'POST' && req.url === '/login') {
      const id = String(req.headers[SESSION_ID_HEADER] ?? randomBytes(18).toString('base64url'));
      const client = String(req.headers[CLIENT_HEADER] ?? req.socket.remoteAddress);
      await store.save(id, { client, loggedInAt: Date.now() });
      res.setHeader('set-cookie', `${SESSION_COOKIE}=${id}; HttpOnly; SameSite=Lax; Path=/`);
      return sendJson(res, 200, { client, pid: process.pid });
    }
    if (req.method === 'GET' && req.url === '/me') {
      const id = req.headers.cookie?.split(/;\s*/).find((pair) => pair.startsWith(`${SESSION_COOKIE}=`))?.slice(SESSION_COOKIE.length + 1);
      const session = id === undefined ? undefined : await store.load(id);
      if (!session) return sendJson(res, 401, { error: 'not logged in: POST /login first', pid: process.pid });
      return sendJson(res, 200, { client: session.client, pid: process.pid });
    }
    sendJson(res, 404, { error: 'only POST /login and GET /me here', pid: process.pid });
  } catch (error) {
    // The store did not answer in time: the session may well exist, so no 401.
    sendJson(res, 503, { error: (error as Error).message, pid: process.pid });
  }
}

function memoryStore(): Store {
  const sessions = new Map<string, Session>();
  return { save: async (id, session) => void sessions.set(id, session), load: async (id) => sessions.get(id) };
}

// As lesson 10's solution: made once, every call bounded, failing at once while Redis is away.
function redisStore(): Store {
  const redis = createClient({
    url: config.redisUrl,
    disableOfflineQueue: true,
    socket: { connectTimeout: config.redisTimeoutMs },
    commandOptions: { timeout: config.redisTimeoutMs, rejectInFlight: true },
  });
  redis.on('error', (error: Error) => console.error(`worker ${process.pid}: Redis: ${error.message}`));
  redis.connect().catch(() => {});
  return {
    save: async (id, session) => void (await redis.set(`session:${id}`, JSON.stringify(session), { expiration: { type: 'PX', value: config.sessionTtlMs } })),
    load: async (id) => {
      const text = await redis.get(`session:${id}`);
      return text === null ? undefined : (JSON.parse(text) as Session);
    },
  };
}

// One pending-request map: each question gets an id, and the primary's answer carries it back.
// Bounded like a Redis call, so a busy primary costs a request a 503, never a hang.
function primaryStore(): Store {
  const pending = new Map<number, (session: Session | undefined) => void>();
  let lastId = 0;
  process.on('message', (answer: Answer) => {
    if (answer.type === 'session') pending.get(answer.requestId)?.(answer.session ?? undefined);
  });
  const ask = (question: Ask) =>
    new Promise<Session | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(question.requestId);
        reject(new Error(`the primary did not answer within ${config.redisTimeoutMs} ms`));
      }, config.redisTimeoutMs);
      pending.set(question.requestId, (session) => {
        clearTimeout(timer);
        pending.delete(question.requestId);
        resolve(session);
      });
      process.send!(question);
    });
  return {
    save: async (id, session) => void (await ask({ type: 'session-set', id, session, requestId: ++lastId })),
    load: (id) => ask({ type: 'session-get', id, requestId: ++lastId }),
  };
}
