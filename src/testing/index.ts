// `cc-broker/testing`: a real broker for your own `bun test` integration tests, a scripted
// worker that needs no Claude Code, a fake model API for real Claude Code offline, and fakes of
// the services the workers' tools call.
export {
  startTestBroker,
  type RealWorker,
  type ScriptedAnswer,
  type ScriptedTurn,
  type ScriptedWorker,
  type TestBroker,
  type TestBrokerOptions,
} from './test-broker.ts'
export type { ControlAnswer, ControlTurn, HeldTurn, WorkerStep } from './worker-control.ts'
export {
  startFakeAnthropic,
  lastPrompt,
  lastToolResult,
  type FakeAnthropic,
  type FakeAnthropicOptions,
  type FakeReply,
} from './fakes/anthropic.ts'
export { startFakeExecutorRegistry } from './fakes/executor-registry.ts'
export { startFakeImBridge } from './fakes/im-bridge.ts'
