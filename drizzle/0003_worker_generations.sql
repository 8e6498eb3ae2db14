ALTER TABLE "session_workers" ADD COLUMN "closed_at" timestamp with time zone;--> statement-breakpoint
CREATE INDEX "sessions_created_at_id_idx" ON "sessions" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "turns_session_id_enqueued_at_id_idx" ON "turns" USING btree ("session_id","enqueued_at","id");