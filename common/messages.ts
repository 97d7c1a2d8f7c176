// What the primary and its workers tell each other over IPC (lessons 3 and 5), for the
// modules lesson 6 on imports: common/supervisor.ts and common/worker.ts.

// A worker tells the primary after an uncaught exception, with the request that was
// running when it was thrown, if one was.
export const DRAINING = 'draining';
export interface DrainingMessage {
  type: typeof DRAINING;
  request?: string;
  // From lesson 9 on: that request's id (its x-request-id), so the primary's line names it.
  requestId?: string;
}
// The primary tells a draining worker, once another worker serves: stop accepting.
export const CLOSE = 'close';
// The primary tells a worker: drain and exit.
export const SHUTDOWN = 'shutdown';
