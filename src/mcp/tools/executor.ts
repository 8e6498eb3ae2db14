import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import type { CallToolResult, ToolAnnotations } from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import type { Logger } from '../../log.ts'
import type { ExecutorRegistryClient } from '../backends/executor-registry.ts'
import type { WorkerContext } from '../context.ts'
import { errorResult, failure, progressReporter, textResult } from './result.ts'

export interface ExecutorToolsDeps {
  registry: ExecutorRegistryClient
  log?: Logger
}

type RemoteArgs = { executor_id: string } & Record<string, unknown>

const executorId = z
  .string()
  .min(1)
  .describe('ID of the executor to run on, exactly as list_executors returns it (e.g. "exe_a1b2")')
const absolutePath = (what: string) =>
  z.string().min(1).describe(`Absolute path of the ${what} on the executor, e.g. /home/user/app`)
const int = (min: number) => z.number().int().min(min)

// Claude Code's built-in tools, run on an executor. The arguments mirror the built-ins so a model
// that knows Bash/Read/… can use these; the executor registry receives them unchanged.
const remoteTools = [
  {
    name: 'remote_bash',
    tool: 'Bash',
    title: 'Run a shell command on an executor',
    description:
      'Runs a bash command on a remote executor and returns its combined output. A non-zero exit ' +
      'code comes back as an error result that carries the output and the exit code. Quote paths ' +
      'that contain spaces. For long jobs, run them in the background and poll.',
    annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: true },
    shape: {
      command: z.string().min(1).describe('The bash command to run'),
      timeout: int(1)
        .max(600_000)
        .optional()
        .describe(
          'Timeout in milliseconds, at most 600000 (10 minutes); the executor default if omitted',
        ),
      description: z
        .string()
        .optional()
        .describe('What the command does, in 5–10 words, e.g. "List files in the build directory"'),
    },
  },
  {
    name: 'remote_read',
    tool: 'Read',
    title: 'Read a file on an executor',
    description:
      'Reads a text file on a remote executor, with line numbers. Reads up to 2000 lines from ' +
      'the start unless offset/limit are given; use them for large files.',
    annotations: { readOnlyHint: true, openWorldHint: true },
    shape: {
      file_path: absolutePath('file to read'),
      offset: int(0)
        .optional()
        .describe('Line number to start reading from (only for large files)'),
      limit: int(1).optional().describe('Number of lines to read (only for large files)'),
    },
  },
  {
    name: 'remote_edit',
    tool: 'Edit',
    title: 'Replace text in a file on an executor',
    description:
      'Replaces old_string with new_string in a file on a remote executor. old_string must match ' +
      'the file exactly (including indentation) and be unique unless replace_all is true. Read ' +
      'the file with remote_read first.',
    annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: true },
    shape: {
      file_path: absolutePath('file to modify'),
      old_string: z.string().min(1).describe('The exact text to replace'),
      new_string: z.string().describe('The text to put in its place (must differ from old_string)'),
      replace_all: z
        .boolean()
        .optional()
        .describe('Replace every occurrence of old_string instead of exactly one (default false)'),
    },
  },
  {
    name: 'remote_write',
    tool: 'Write',
    title: 'Write a file on an executor',
    description:
      'Writes a file on a remote executor, replacing it if it exists. Prefer remote_edit for ' +
      'changes to an existing file.',
    annotations: { readOnlyHint: false, destructiveHint: true, openWorldHint: true },
    shape: {
      file_path: absolutePath('file to write'),
      content: z.string().describe('The full content to write to the file'),
    },
  },
  {
    name: 'remote_glob',
    tool: 'Glob',
    title: 'Find files by glob pattern on an executor',
    description:
      'Finds files whose paths match a glob pattern (e.g. "**/*.ts") on a remote executor, ' +
      'newest first.',
    annotations: { readOnlyHint: true, openWorldHint: true },
    shape: {
      pattern: z.string().min(1).describe('The glob pattern to match, e.g. "src/**/*.ts"'),
      path: z
        .string()
        .min(1)
        .optional()
        .describe('Absolute directory to search in; the executor working directory if omitted'),
    },
  },
  {
    name: 'remote_grep',
    tool: 'Grep',
    title: 'Search file contents on an executor',
    description:
      'Searches file contents with ripgrep on a remote executor. Returns matching files by ' +
      'default; set output_mode to "content" for matching lines or "count" for counts.',
    annotations: { readOnlyHint: true, openWorldHint: true },
    shape: {
      pattern: z.string().min(1).describe('Regular expression to search for (ripgrep syntax)'),
      path: z
        .string()
        .min(1)
        .optional()
        .describe('File or directory to search in; the executor working directory if omitted'),
      glob: z
        .string()
        .min(1)
        .optional()
        .describe('Only search files matching this glob, e.g. "*.js"'),
      type: z.string().min(1).optional().describe('Only search this file type, e.g. "js", "py"'),
      output_mode: z
        .enum(['content', 'files_with_matches', 'count'])
        .optional()
        .describe('"content" lines, "files_with_matches" paths (default) or "count" per file'),
      '-i': z.boolean().optional().describe('Case-insensitive search'),
      '-n': z.boolean().optional().describe('Show line numbers (output_mode "content" only)'),
      '-A': int(0).optional().describe('Lines of context after each match ("content" only)'),
      '-B': int(0).optional().describe('Lines of context before each match ("content" only)'),
      '-C': int(0).optional().describe('Lines of context around each match ("content" only)'),
      multiline: z
        .boolean()
        .optional()
        .describe('Let . match newlines and patterns span lines (default false)'),
      head_limit: int(1).optional().describe('Return only the first N lines or entries'),
    },
  },
  {
    name: 'remote_ls',
    tool: 'LS',
    title: 'List a directory on an executor',
    description: 'Lists the files and directories in a directory on a remote executor.',
    annotations: { readOnlyHint: true, openWorldHint: true },
    shape: {
      path: absolutePath('directory to list'),
      ignore: z
        .array(z.string().min(1))
        .optional()
        .describe('Glob patterns of entries to leave out, e.g. ["node_modules", "*.log"]'),
    },
  },
] satisfies {
  name: string
  tool: string
  title: string
  description: string
  annotations: ToolAnnotations
  shape: z.ZodRawShape
}[]

export function registerExecutorTools(
  server: McpServer,
  ctx: WorkerContext,
  deps: ExecutorToolsDeps,
): void {
  for (const spec of remoteTools) {
    const inputSchema = z.strictObject({ executor_id: executorId, ...spec.shape })
    server.registerTool(
      spec.name,
      {
        title: spec.title,
        description: spec.description,
        inputSchema,
        annotations: { title: spec.title, idempotentHint: false, ...spec.annotations },
      },
      async (args, extra): Promise<CallToolResult> => {
        const { executor_id: id, ...rest } = args as RemoteArgs
        try {
          const result = await deps.registry.execute(
            { executorId: id, tool: spec.tool, arguments: rest },
            { signal: extra.signal, onProgress: progressReporter(extra, `${spec.name} on ${id}`) },
          )
          if (result.exitCode !== 0) {
            const sep = result.output === '' || result.output.endsWith('\n') ? '' : '\n'
            return errorResult(
              `${result.output}${sep}[${spec.tool} on executor "${id}" exited with code ` +
                `${result.exitCode}]`,
            )
          }
          return textResult(result.output)
        } catch (err) {
          return failure(err, spec.name, deps.log)
        }
      },
    )
  }

  server.registerTool(
    'list_executors',
    {
      title: 'List executors',
      description:
        'Lists the executors (machines or sandboxes) this workspace can run remote_* tools on, ' +
        'with their IDs. Call it before the first remote_* call to pick an executor_id.',
      inputSchema: z.strictObject({}),
      annotations: { title: 'List executors', readOnlyHint: true, openWorldHint: true },
    },
    async (_args, extra): Promise<CallToolResult> => {
      try {
        const list = await deps.registry.listExecutors(ctx.workspaceId, { signal: extra.signal })
        return textResult(JSON.stringify(list, null, 2))
      } catch (err) {
        return failure(err, 'list_executors', deps.log)
      }
    },
  )
}
