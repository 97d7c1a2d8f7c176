// The environment every lesson's server reads (the server contract in README.md).
import os from 'node:os';

export interface ServerConfig {
  port: number;
  host: string;
  workers: number;
  heavyRounds: number;
  // From lesson 6 on: how long a worker may go without showing the primary that its event
  // loop runs before the primary kills it as hung.
  hangTimeoutMs: number;
  // From lesson 5 on: how long a draining worker may take over the requests it has before
  // it is killed. Longer than your slowest request; the checks set it to fit theirs.
  drainTimeoutMs: number;
  // From lesson 9 on: the primary's own port on 127.0.0.1, for its metrics and for asking
  // one worker for a debugger or a profile; never a port the workers share.
  metricsPort: number;
  // From lesson 9 on: where a worker writes the CPU profiles it is asked for.
  profileDir: string;
  // From lesson 10 on: the Redis every worker and host shares (redis://host:port); unset,
  // each worker keeps its limits and sessions in its own memory.
  redisUrl: string;
  // How long a call to Redis may take before the request goes on without it.
  redisTimeoutMs: number;
  // Requests a client may make per window, and the window.
  rateLimit: number;
  rateWindowMs: number;
  sessionTtlMs: number;
}

const DEFAULT_PORT = 3000;
// A server with a /crash route never listens on every interface by default.
const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_HEAVY_ROUNDS = 15;
const DEFAULT_HANG_TIMEOUT_MS = 3_000;
const DEFAULT_DRAIN_TIMEOUT_MS = 10_000;
const DEFAULT_METRICS_PORT = 3001;
const DEFAULT_REDIS_TIMEOUT_MS = 200;
const DEFAULT_RATE_LIMIT = 100;
const DEFAULT_RATE_WINDOW_MS = 60_000;
const DEFAULT_SESSION_TTL_MS = 24 * 60 * 60 * 1000;

export function readConfig(env: NodeJS.ProcessEnv = process.env): ServerConfig {
  return {
    port: readInteger(env, 'PORT', DEFAULT_PORT, 0),
    host: env.HOST || DEFAULT_HOST,
    workers: readInteger(env, 'WORKERS', os.availableParallelism(), 1),
    heavyRounds: readInteger(env, 'HEAVY_ROUNDS', DEFAULT_HEAVY_ROUNDS, 1),
    hangTimeoutMs: readInteger(env, 'HANG_TIMEOUT_MS', DEFAULT_HANG_TIMEOUT_MS, 1),
    drainTimeoutMs: readInteger(env, 'DRAIN_TIMEOUT_MS', DEFAULT_DRAIN_TIMEOUT_MS, 1),
    metricsPort: readInteger(env, 'METRICS_PORT', DEFAULT_METRICS_PORT, 0),
    profileDir: env.PROFILE_DIR || os.tmpdir(),
    redisUrl: env.REDIS_URL ?? '',
    redisTimeoutMs: readInteger(env, 'REDIS_TIMEOUT_MS', DEFAULT_REDIS_TIMEOUT_MS, 1),
    rateLimit: readInteger(env, 'RATE_LIMIT', DEFAULT_RATE_LIMIT, 1),
    rateWindowMs: readInteger(env, 'RATE_WINDOW_MS', DEFAULT_RATE_WINDOW_MS, 1),
    sessionTtlMs: readInteger(env, 'SESSION_TTL_MS', DEFAULT_SESSION_TTL_MS, 1),
  };
}

function readInteger(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number): number {
  const text = env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name}=${text} is not a whole number ≥ ${min}`);
  }
  return value;
}
