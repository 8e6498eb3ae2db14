/** What one running worker's MCP tools know about the turn they serve. */
export interface WorkerContext {
  sessionId: string
  workspaceId: string
  turnId: string
  /** The worker's project directory on this host; workspace_* tools are confined to it. */
  workspaceDir: string
  /** Set only for turns that came from IM; send_* tools need both. */
  imChannelId?: string
  imUserId?: string
}
