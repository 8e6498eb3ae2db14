import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Config } from '../config.ts'
import type { TurnSpec } from './transport.ts'

/** Claude Code keys transcripts by working directory: every non-alphanumeric character → '-'. */
export const projectKey = (cwd: string) => cwd.replace(/[^A-Za-z0-9]/g, '-')

export const transcriptPath = (configDir: string, cwd: string, claudeSessionId: string) =>
  join(configDir, 'projects', projectKey(cwd), `${claudeSessionId}.jsonl`)

/**
 * Arguments shared by both transports: stream-json I/O and the session's stable UUID. A fork's
 * first turn (`forkOf`: the source's Claude Code session) resumes the source's conversation
 * into a new one under this session's UUID, as `--fork-session` with `--session-id` does.
 */
export function baseArgs(spec: TurnSpec, resume: boolean, forkOf?: string): string[] {
  const args = ['--input-format', 'stream-json', '--output-format', 'stream-json', '--verbose']
  if (!resume && forkOf)
    args.push('--resume', forkOf, '--fork-session', '--session-id', spec.session.claudeSessionId)
  else args.push(resume ? '--resume' : '--session-id', spec.session.claudeSessionId)
  const meta = spec.turn.metadata
  if (typeof meta.model === 'string') args.push('--model', meta.model)
  if (typeof meta.permission_mode === 'string') args.push('--permission-mode', meta.permission_mode)
  // Text as it is written (`stream_event` frames, ephemeral), unless the caller opts out.
  if (meta.partial_messages !== false) args.push('--include-partial-messages')
  return [...args, ...spec.extraArgs]
}

/**
 * The worker's whole environment (Bun.spawn does not merge): PATH, the fresh HOME and config
 * dir, the Anthropic settings passed through from the broker, switches that keep the CLI off
 * the network for anything but the model, then per-deployment and per-turn additions.
 */
/** The broker settings a worker's environment is made of. */
export type WorkerEnvConfig = Pick<Config, 'path' | 'anthropicEnv' | 'workerEnv'>

export function baseEnv(config: WorkerEnvConfig, spec: TurnSpec): Record<string, string> {
  return {
    PATH: config.path,
    HOME: spec.dirs.home,
    CLAUDE_CONFIG_DIR: spec.dirs.configDir,
    ...config.anthropicEnv,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    ...config.workerEnv,
    CCBROKER_SESSION_ID: spec.session.id,
    CCBROKER_TURN_ID: spec.turn.id,
    ...spec.extraEnv,
  }
}

/**
 * Writes the worker's --mcp-config to a file in its fresh HOME (mode 600) and answers the argv
 * naming it. The token goes in an explicit header: only CCR v2 workers send their session token
 * to HTTP MCP servers by themselves (PROTOCOL.md §10); stdio ones would start an OAuth dance.
 * A file, not an argument, keeps the token out of `ps`.
 */
export async function mcpConfigArgs(spec: TurnSpec, token: string): Promise<string[]> {
  const names = Object.keys(spec.mcpServers)
  if (names.length === 0) return []
  const mcpServers = Object.fromEntries(
    names.map((name) => [
      name,
      { type: 'http', url: spec.mcpServers[name], headers: { Authorization: `Bearer ${token}` } },
    ]),
  )
  const path = join(spec.dirs.home, 'cc-broker-mcp.json')
  await writeFile(path, JSON.stringify({ mcpServers }), { mode: 0o600 })
  return ['--mcp-config', path]
}

/**
 * The turn's user message for this worker. A turn started before (re-queued after its broker
 * stopped) may already be in the transcript the new worker resumes, and Claude Code skips a user
 * message whose uuid it knows (PROTOCOL.md §12): the turn would wait for a result that never
 * comes. So a re-run sends the message again under a new uuid, logged like any client event.
 */
export function userMessageFor(spec: Pick<TurnSpec, 'turn' | 'userPayload'>): {
  payload: Record<string, unknown>
  resent: boolean
} {
  // A worker epoch is recorded just before a worker starts: one from an earlier start → re-run.
  if (spec.turn.workerEpoch === null) return { payload: spec.userPayload, resent: false }
  return { payload: { ...spec.userPayload, uuid: crypto.randomUUID() }, resent: true }
}
