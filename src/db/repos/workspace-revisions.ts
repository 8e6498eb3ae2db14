import { eq, sql } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { workspaceRevisions } from '../schema.ts'

/** The workspace's revision: 0 until its first push that changed something. */
export async function readWorkspaceRevision(db: Db, workspaceId: string): Promise<number> {
  const rows = await db
    .select({ revision: workspaceRevisions.revision })
    .from(workspaceRevisions)
    .where(eq(workspaceRevisions.workspaceId, workspaceId))
  return rows[0]?.revision ?? 0
}

/** Raises the workspace's revision by one; answers the new one. */
export async function bumpWorkspaceRevision(db: Db, workspaceId: string): Promise<number> {
  const rows = await db
    .insert(workspaceRevisions)
    .values({ workspaceId, revision: 1 })
    .onConflictDoUpdate({
      target: workspaceRevisions.workspaceId,
      set: { revision: sql`${workspaceRevisions.revision} + 1` },
    })
    .returning({ revision: workspaceRevisions.revision })
  return rows[0]!.revision
}
