CREATE TABLE "event_deliveries" (
	"session_id" text NOT NULL,
	"event_id" text NOT NULL,
	"status" text NOT NULL,
	"epoch" integer NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "event_deliveries_pkey" PRIMARY KEY("session_id","event_id")
);
--> statement-breakpoint
CREATE TABLE "internal_events" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"session_id" text NOT NULL,
	"event_type" text NOT NULL,
	"payload" jsonb NOT NULL,
	"is_compaction" boolean DEFAULT false NOT NULL,
	"agent_id" text,
	"epoch" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "session_events" (
	"seq" bigserial PRIMARY KEY NOT NULL,
	"session_id" text NOT NULL,
	"event_id" text NOT NULL,
	"event_type" text NOT NULL,
	"source" text NOT NULL,
	"epoch" integer DEFAULT 0 NOT NULL,
	"payload" jsonb NOT NULL,
	"ephemeral" boolean DEFAULT false NOT NULL,
	"turn_id" text,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "session_workers" (
	"session_id" text NOT NULL,
	"epoch" integer NOT NULL,
	"state" text DEFAULT 'starting' NOT NULL,
	"external_metadata" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"requires_action_details" jsonb,
	"last_heartbeat_at" timestamp with time zone,
	"registered_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "session_workers_pkey" PRIMARY KEY("session_id","epoch")
);
--> statement-breakpoint
CREATE TABLE "sessions" (
	"id" text PRIMARY KEY NOT NULL,
	"workspace_id" text NOT NULL,
	"title" text DEFAULT '' NOT NULL,
	"status" text DEFAULT 'idle' NOT NULL,
	"epoch" integer DEFAULT 0 NOT NULL,
	"external_id" text,
	"source" text DEFAULT 'api' NOT NULL,
	"tags" jsonb DEFAULT '[]'::jsonb NOT NULL,
	"claude_session_id" uuid DEFAULT gen_random_uuid() NOT NULL,
	"archived" boolean DEFAULT false NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "event_deliveries" ADD CONSTRAINT "event_deliveries_session_id_sessions_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."sessions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "internal_events" ADD CONSTRAINT "internal_events_session_id_sessions_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."sessions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "session_events" ADD CONSTRAINT "session_events_session_id_sessions_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."sessions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "session_workers" ADD CONSTRAINT "session_workers_session_id_sessions_id_fk" FOREIGN KEY ("session_id") REFERENCES "public"."sessions"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "internal_events_session_id_id_idx" ON "internal_events" USING btree ("session_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "session_events_session_id_event_id_key" ON "session_events" USING btree ("session_id","event_id");--> statement-breakpoint
CREATE INDEX "session_events_session_id_seq_idx" ON "session_events" USING btree ("session_id","seq");--> statement-breakpoint
CREATE INDEX "sessions_workspace_id_created_at_idx" ON "sessions" USING btree ("workspace_id","created_at");--> statement-breakpoint
CREATE UNIQUE INDEX "sessions_workspace_id_external_id_key" ON "sessions" USING btree ("workspace_id","external_id");