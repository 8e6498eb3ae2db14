import type { Config } from './config.ts'
import type { EventLog } from './events/log.ts'
import type { WorkerMcp } from './mcp/server.ts'
import type { TurnRow } from './db/schema.ts'
import type { Logger } from './log.ts'
import type { TurnHooks } from './turns/worker-processes.ts'
import type { Metrics } from './metrics.ts'
import type { Permissions } from './turns/permissions.ts'
import { copyFile, mkdir, rm, access } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { projectKey, transcriptPath } from './worker/claude-args.ts'
import type { WorkspaceSync } from './workspace/sync.ts'

export const MCP_SERVER_NAME = 'broker'

/**
 * What every worker gets around its process: its workspace pulled before it starts and pushed
 * after each turn, its MCP server (the broker's tools, in the context of the turn it serves),
 * the argv that names it and sets tool rules by policy, and the can_use_tool relay.
 */
export function createWorkerSetup(deps: {
  config: Pick<
    Config,
    'builtinTools' | 'permissionPolicy' | 'allowedTools' | 'workerTransport' | 'enableToolSearch'
  >
  mcp: WorkerMcp
  permissions: Permissions
  sync: WorkspaceSync
  storeName: string
  /** The store's kind (`local`, `openviking`), a metric label. */
  storeKind: string
  metrics?: Pick<Metrics, 'workspaceSync'>
  events: EventLog
  /** This broker's own URL: a worker's MCP server is in the broker that started it. */
  localUrl: () => string
}): TurnHooks {
  const { config } = deps
  const builtins = config.builtinTools
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean)
  // Tools that run without a prompt: under `ask`, none.
  const allowed =
    config.permissionPolicy === 'bypass'
      ? [`mcp__${MCP_SERVER_NAME}`, ...builtins]
      : config.permissionPolicy === 'allowlist'
        ? [`mcp__${MCP_SERVER_NAME}`, ...config.allowedTools]
        : []
  /**
   * A fork's first turn: the source's transcript (pulled with the workspace, under its stored
   * name) is copied to where Claude Code looks for it from this session's working directory,
   * so `--resume <source> --fork-session` finds it. Answers the copy's path, or null.
   */
  async function placeForkSource(
    session: Parameters<NonNullable<TurnHooks['prepare']>>[0]['session'],
    dirs: Parameters<NonNullable<TurnHooks['prepare']>>[0]['dirs'],
  ): Promise<string | null> {
    const source = session.forkedFrom
    const sourceClaude = session.forkSourceClaudeSessionId
    if (!source || !sourceClaude) return null
    const exists = (path: string) =>
      access(path).then(
        () => true,
        () => false,
      )
    if (await exists(transcriptPath(dirs.configDir, dirs.cwd, session.claudeSessionId))) return null
    const stored = join(
      dirs.configDir,
      'projects',
      `ccbroker-session-${source}`,
      `${sourceClaude}.jsonl`,
    )
    if (!(await exists(stored))) return null
    const target = transcriptPath(dirs.configDir, dirs.cwd, sourceClaude)
    await mkdir(dirname(target), { recursive: true })
    await copyFile(stored, target)
    return target
  }

  return {
    async prepare({ turn, session, dirs }) {
      const event = (turn: TurnRow, payload: Record<string, unknown>) =>
        deps.events.append(session.id, [{ payload: { ...payload, turn_id: turn.id } }], {
          source: 'broker',
          turnId: turn.id,
        })
      const syncDirs = {
        configDir: dirs.configDir,
        projectDir: dirs.cwd,
        transcripts: { local: projectKey(dirs.cwd), stored: `ccbroker-session-${session.id}` },
      }
      let pulled
      try {
        pulled = await deps.sync.pull(session.workspaceId, syncDirs)
        deps.metrics?.workspaceSync.observe(
          { direction: 'pull', store: deps.storeKind },
          pulled.ms / 1000,
        )
      } catch (err) {
        throw new Error(
          `could not pull workspace ${session.workspaceId} from ${deps.storeName}: ${(err as Error).message}`,
        )
      }
      let forkCopy = await placeForkSource(session, dirs)
      await event(turn, {
        type: 'workspace_pulled',
        workspace_id: session.workspaceId,
        files: pulled.files,
        bytes: pulled.bytes,
        ms: pulled.ms,
      })
      const contextOf = (turn: TurnRow) => ({
        sessionId: session.id,
        workspaceId: session.workspaceId,
        turnId: turn.id,
        workspaceDir: dirs.cwd,
        imChannelId: turn.imChannelId ?? undefined,
        imUserId: turn.imUserId ?? undefined,
      })
      const handle = deps.mcp.open(contextOf(turn))
      // What the directories hold as of the last pull or push: the next push sends the rest.
      let state = pulled.before
      const extraArgs = ['--tools', builtins.join(',')]
      if (allowed.length > 0) extraArgs.push('--allowedTools', allowed.join(','))
      // stdio workers ask over stdout only with this; CCR v2 workers always ask over the stream.
      if (config.workerTransport === 'stdio') extraArgs.push('--permission-prompt-tool', 'stdio')
      return {
        extraArgs,
        mcpServers: { [MCP_SERVER_NAME]: `${deps.localUrl()}/v1/sessions/${session.id}/mcp` },
        // Without it current Claude Code hides MCP tools behind ToolSearch (deferred tools).
        extraEnv: { ENABLE_TOOL_SEARCH: config.enableToolSearch ? 'true' : 'false' },
        beginTurn: (turn: TurnRow) => handle.resume(contextOf(turn)),
        async endTurn(turn: TurnRow, log: Logger) {
          handle.pause()
          // The source's transcript is the source's: not stored again under this session.
          if (forkCopy) await rm(forkCopy, { force: true })
          forkCopy = null
          await deps.permissions.expire(turn.id)
          try {
            const pushed = await deps.sync.push(session.workspaceId, syncDirs, state)
            state = pushed.after
            deps.metrics?.workspaceSync.observe(
              { direction: 'push', store: deps.storeKind },
              pushed.ms / 1000,
            )
            await event(turn, {
              type: 'workspace_pushed',
              workspace_id: session.workspaceId,
              files: pushed.written,
              deleted: pushed.deleted,
              bytes: pushed.bytes,
              skipped: pushed.skipped,
              ms: pushed.ms,
            })
            // The store refused files as such: said on the session's stream, not only logged.
            if (pushed.refused.length > 0)
              await event(turn, {
                type: 'workspace_push_refused',
                workspace_id: session.workspaceId,
                store: deps.storeName,
                refused: pushed.refused,
              })
            return { current: state.revision >= 0 }
          } catch (err) {
            log.error('workspace push failed; changes spooled', { err })
            state = { ...state, revision: -1 }
            await event(turn, {
              type: 'workspace_push_failed',
              workspace_id: session.workspaceId,
              error: `could not push to ${deps.storeName}: ${(err as Error).message}`,
              spooled: true,
            })
            return { current: false }
          }
        },
        current: () => deps.sync.unchanged(session.workspaceId, state.revision),
        async flush() {
          const pushed = await deps.sync.push(session.workspaceId, syncDirs, state)
          state = pushed.after
        },
        release: () => handle.close(),
      }
    },
    onWorkerEvent: (turn, run, event) => deps.permissions.onEvent(turn, run, event),
  }
}
