import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import type { Logger } from '../../log.ts'
import { taskJson, type ScheduleTasks } from '../../turns/schedule-tasks.ts'
import type { WorkerContext } from '../context.ts'
import { failure, textResult } from './result.ts'

export interface ScheduleToolsDeps {
  schedules: ScheduleTasks
  log?: Logger
}

/** create / list / cancel_scheduled_task: persisted tasks that start turns in this session. */
export function registerScheduleTools(
  server: McpServer,
  ctx: WorkerContext,
  deps: ScheduleToolsDeps,
): void {
  server.registerTool(
    'create_scheduled_task',
    {
      title: 'Create scheduled task',
      description:
        'Schedules a message to be sent to this same conversation later, which starts a new ' +
        'turn then: repeating with a cron expression, or once at run_at. Give exactly one of ' +
        'cron or run_at. Use it for reminders, periodic checks and follow-ups.',
      inputSchema: z.strictObject({
        prompt: z
          .string()
          .min(1)
          .max(100_000)
          .describe('The message the task sends to this conversation when it fires'),
        cron: z
          .string()
          .optional()
          .describe('Five-field cron expression, e.g. "0 9 * * 1-5" for 09:00 on weekdays'),
        run_at: z
          .string()
          .optional()
          .describe(
            'One-time ISO 8601 date-time with Z or a UTC offset, in the future, e.g. ' +
              '"2026-12-01T09:00:00Z" or "2026-12-01T10:00:00+01:00"',
          ),
        timezone: z
          .string()
          .optional()
          .describe('IANA time zone for cron, e.g. "Europe/Berlin"; default UTC'),
      }),
      annotations: { title: 'Create scheduled task', destructiveHint: false },
    },
    async (args): Promise<CallToolResult> => {
      try {
        const task = await deps.schedules.create({
          sessionId: ctx.sessionId,
          workspaceId: ctx.workspaceId,
          prompt: args.prompt,
          cron: args.cron,
          runAt: args.run_at,
          timezone: args.timezone,
          imChannelId: ctx.imChannelId,
          imUserId: ctx.imUserId,
          createdByTurn: ctx.turnId,
        })
        return textResult(JSON.stringify(taskJson(task), null, 2))
      } catch (err) {
        return failure(err, 'create_scheduled_task', deps.log)
      }
    },
  )

  server.registerTool(
    'list_scheduled_tasks',
    {
      title: 'List scheduled tasks',
      description: 'Lists this conversation’s scheduled tasks with their state and next run.',
      inputSchema: z.strictObject({}),
      annotations: { title: 'List scheduled tasks', readOnlyHint: true },
    },
    async (): Promise<CallToolResult> => {
      try {
        const tasks = await deps.schedules.list(ctx.sessionId)
        return textResult(JSON.stringify(tasks.map(taskJson), null, 2))
      } catch (err) {
        return failure(err, 'list_scheduled_tasks', deps.log)
      }
    },
  )

  server.registerTool(
    'cancel_scheduled_task',
    {
      title: 'Cancel scheduled task',
      description: 'Cancels an active scheduled task of this conversation so it never fires again.',
      inputSchema: z.strictObject({
        task_id: z.string().min(1).describe('The task_id from create or list_scheduled_tasks'),
      }),
      annotations: { title: 'Cancel scheduled task', destructiveHint: true, idempotentHint: true },
    },
    async (args): Promise<CallToolResult> => {
      try {
        const task = await deps.schedules.cancel(ctx.sessionId, args.task_id)
        return textResult(JSON.stringify(taskJson(task), null, 2))
      } catch (err) {
        return failure(err, 'cancel_scheduled_task', deps.log)
      }
    },
  )
}
