CREATE TABLE "turns" (
	"id" text PRIMARY KEY NOT NULL,
	"session_id" text NOT NULL,
	"workspace_id" text NOT NULL,
	"state" text DEFAULT 'queued' NOT NULL,
	"user_event_id" text NOT NULL,
	"im_channel_id" text,
	"im_user_id" text,
	"metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"attempts" integer DEFAULT 0 NOT NULL,
	"lease_owner" text,
	"lease_expires_at" timestamp with time zone,
	"worker_epoch" integer,
	"worker_pid" integer,
	"cancel_requested" boolean DEFAULT false NOT NULL,
	"error" text,
	"result" jsonb,
	"enqueued_at" timestamp with time zone DEFAULT now() NOT NULL,
	"started_at" timestamp with time zone,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
ALTER TABLE "turns" ADD CONSTRAINT "turns_session_id_sessions_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."sessions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "turns_session_id_state_enqueued_at_idx" ON "turns" USING btree ("session_id","state","enqueued_at");--> statement-breakpoint
CREATE INDEX "turns_state_enqueued_at_idx" ON "turns" USING btree ("state","enqueued_at");