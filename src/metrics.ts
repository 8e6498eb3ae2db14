import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/** Seconds buckets for turns: from a quick answer to the 30-minute default limit. */
const TURN_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800]
const SHORT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** What the gauges read when scraped. */
export interface MetricsSources {
  queuedTurns(): Promise<number>
  runningWorkers(): number
  idleWorkers(): number
  listeners(): number
}

/**
 * The broker's Prometheus metrics, in a registry of their own (prom-client's default one is
 * module state). Services get the one they record into; /metrics renders the registry.
 */
export function createMetrics() {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  let sources: MetricsSources | null = null
  const metric = { registers: [registry] }
  const metrics = {
    registry,
    turns: new Counter({
      name: 'ccbroker_turns_total',
      help: 'Turns that ended, by state (done, failed, cancelled)',
      labelNames: ['state'] as const,
      ...metric,
    }),
    turnDuration: new Histogram({
      name: 'ccbroker_turn_duration_seconds',
      help: 'From a turn starting on a worker to its end',
      labelNames: ['state'] as const,
      buckets: TURN_BUCKETS,
      ...metric,
    }),
    queueWait: new Histogram({
      name: 'ccbroker_turn_queue_wait_seconds',
      help: 'From a turn being queued to a broker starting it',
      buckets: TURN_BUCKETS,
      ...metric,
    }),
    spawnFailures: new Counter({
      name: 'ccbroker_worker_spawn_failures_total',
      help: 'Workers that could not be started',
      ...metric,
    }),
    eventsAppended: new Counter({
      name: 'ccbroker_events_appended_total',
      help: 'Events kept in session logs, by source (client, worker, broker); partial messages not counted',
      labelNames: ['source'] as const,
      ...metric,
    }),
    workspaceSync: new Histogram({
      name: 'ccbroker_workspace_sync_seconds',
      help: 'Workspace pulls and pushes, by direction and store',
      labelNames: ['direction', 'store'] as const,
      buckets: SHORT_BUCKETS,
      ...metric,
    }),
    httpRequests: new Counter({
      name: 'ccbroker_http_requests_total',
      help: 'HTTP requests answered, by route template, method and status',
      labelNames: ['route', 'method', 'status'] as const,
      ...metric,
    }),
    httpDuration: new Histogram({
      name: 'ccbroker_http_request_duration_seconds',
      help: 'Time to the response head (an event stream counts until it starts)',
      labelNames: ['route', 'method'] as const,
      buckets: SHORT_BUCKETS,
      ...metric,
    }),
    /** Connects the gauges to the services they read (built after the metrics). */
    observe(s: MetricsSources) {
      sources = s
    },
  }
  new Gauge({
    name: 'ccbroker_queue_depth',
    help: 'Turns waiting in the queue (all sessions, all brokers)',
    ...metric,
    async collect() {
      if (sources) this.set(await sources.queuedTurns())
    },
  })
  new Gauge({
    name: 'ccbroker_workers_running',
    help: 'Turns this broker runs right now',
    ...metric,
    collect() {
      if (sources) this.set(sources.runningWorkers())
    },
  })
  new Gauge({
    name: 'ccbroker_workers_idle',
    help: 'Warm workers of this broker waiting for their session’s next turn',
    ...metric,
    collect() {
      if (sources) this.set(sources.idleWorkers())
    },
  })
  new Gauge({
    name: 'ccbroker_sse_listeners',
    help: 'Open event streams of callers and workers on this broker',
    ...metric,
    collect() {
      if (sources) this.set(sources.listeners())
    },
  })
  return metrics
}

export type Metrics = ReturnType<typeof createMetrics>
