CREATE TABLE "permissions" (
	"session_id" text NOT NULL,
	"request_id" text NOT NULL,
	"turn_id" text NOT NULL,
	"tool_name" text NOT NULL,
	"input" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"tool_use_id" text,
	"status" text DEFAULT 'pending' NOT NULL,
	"decided_by" text,
	"response" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"resolved_at" timestamp with time zone,
	CONSTRAINT "permissions_pkey" PRIMARY KEY("session_id","request_id")
);
--> statement-breakpoint
CREATE TABLE "schedule_runs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"task_id" text NOT NULL,
	"scheduled_for" timestamp with time zone NOT NULL,
	"turn_id" text,
	"error" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "scheduled_tasks" (
	"id" text PRIMARY KEY NOT NULL,
	"session_id" text NOT NULL,
	"workspace_id" text NOT NULL,
	"prompt" text NOT NULL,
	"cron" text,
	"run_at" timestamp with time zone,
	"timezone" text DEFAULT 'UTC' NOT NULL,
	"state" text DEFAULT 'active' NOT NULL,
	"next_run_at" timestamp with time zone,
	"im_channel_id" text,
	"im_user_id" text,
	"runs" integer DEFAULT 0 NOT NULL,
	"last_run_at" timestamp with time zone,
	"created_by_turn" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "permissions" ADD CONSTRAINT "permissions_session_id_sessions_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."sessions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "schedule_runs" ADD CONSTRAINT "schedule_runs_task_id_scheduled_tasks_id_fk" FOREIGN KEY ("task_id") REFERENCES "public"."scheduled_tasks"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "scheduled_tasks" ADD CONSTRAINT "scheduled_tasks_session_id_sessions_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."sessions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "permissions_turn_id_idx" ON "permissions" USING btree ("turn_id");--> statement-breakpoint
CREATE UNIQUE INDEX "schedule_runs_task_id_scheduled_for_key" ON "schedule_runs" USING btree ("task_id","scheduled_for");--> statement-breakpoint
CREATE INDEX "scheduled_tasks_state_next_run_at_idx" ON "scheduled_tasks" USING btree ("state","next_run_at");--> statement-breakpoint
CREATE INDEX "scheduled_tasks_session_id_idx" ON "scheduled_tasks" USING btree ("session_id");