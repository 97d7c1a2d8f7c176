// Lesson 9: each worker's event-loop delay and memory, pushed to the primary every
// VITALS_INTERVAL_MS and served from its registry, so a scrape is answered from the
// primary's memory even while a worker hangs. The names are prom-client's own defaults
// (collectDefaultMetrics), so dashboards made for them fit; the labels say which worker.
import cluster, { type Worker } from 'node:cluster';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Gauge, type Registry } from 'prom-client';

const VITALS_INTERVAL_MS = 1_000;
const VITALS = 'vitals';
interface Vitals {
  type: typeof VITALS;
  lagP99Seconds: number;
  lagMaxSeconds: number;
  rssBytes: number;
  heapUsedBytes: number;
}

export function sendVitals(): void {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  setInterval(() => {
    const { rss, heapUsed } = process.memoryUsage();
    // The histogram counts nanoseconds.
    const vitals: Vitals = { type: VITALS, lagP99Seconds: delay.percentile(99) / 1e9, lagMaxSeconds: delay.max / 1e9, rssBytes: rss, heapUsedBytes: heapUsed };
    delay.reset();
    if (process.connected) process.send!(vitals);
  }, VITALS_INTERVAL_MS).unref();
}

export function watchVitals(registry: Registry): void {
  const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames: ['worker', 'pid'] as const, registers: [registry] });
  const gauges = {
    lagP99Seconds: gauge('nodejs_eventloop_lag_p99_seconds', "The 99th percentile of each worker's event-loop delay over the last second"),
    lagMaxSeconds: gauge('nodejs_eventloop_lag_max_seconds', "The longest event-loop delay of each worker over the last second"),
    rssBytes: gauge('process_resident_memory_bytes', 'Resident memory of each worker'),
    heapUsedBytes: gauge('nodejs_heap_size_used_bytes', 'Heap used by each worker'),
  };
  const labelsOf = (worker: Worker) => ({ worker: String(worker.id), pid: String(worker.process.pid) });
  cluster.on('message', (worker, message: Vitals) => {
    if (message?.type !== VITALS) return;
    for (const [field, metric] of Object.entries(gauges)) metric.set(labelsOf(worker), message[field as keyof typeof gauges]);
  });
  cluster.on('disconnect', (worker) => {
    for (const metric of Object.values(gauges)) metric.remove(labelsOf(worker));
  });
}
