import { and, eq } from 'drizzle-orm'
import type { Db } from '../handle.ts'
import { permissions, type PermissionRow } from '../schema.ts'

export type NewPermission = typeof permissions.$inferInsert

export async function insertPermission(db: Db, values: NewPermission): Promise<boolean> {
  const rows = await db.insert(permissions).values(values).onConflictDoNothing().returning()
  return rows.length > 0
}

export async function lockPermission(
  db: Db,
  sessionId: string,
  requestId: string,
): Promise<PermissionRow | null> {
  const rows = await db
    .select()
    .from(permissions)
    .where(and(eq(permissions.sessionId, sessionId), eq(permissions.requestId, requestId)))
    .for('update')
  return rows[0] ?? null
}

export async function resolvePermission(
  db: Db,
  sessionId: string,
  requestId: string,
  values: { status: string; decidedBy: string; response: Record<string, unknown> | null },
): Promise<void> {
  await db
    .update(permissions)
    .set({ ...values, resolvedAt: new Date() })
    .where(and(eq(permissions.sessionId, sessionId), eq(permissions.requestId, requestId)))
}

export async function expireTurnPermissions(db: Db, turnId: string): Promise<void> {
  await db
    .update(permissions)
    .set({ status: 'expired', resolvedAt: new Date() })
    .where(and(eq(permissions.turnId, turnId), eq(permissions.status, 'pending')))
}
