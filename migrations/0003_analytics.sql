-- Verification analytics (SPEC Part 2): counts per key, per UTC minute or hour, per code.
-- The queue consumer adds into minute rows; the cron folds minute rows older than 7 days
-- into hour rows (kept 400 days). A verification lives in exactly one row at any time.
CREATE TABLE `verification_counts` (
	`organization_id` text NOT NULL,
	`project_id` text,
	`key_id` text NOT NULL,
	`granularity` text NOT NULL,
	`bucket_start` integer NOT NULL,
	`code` text NOT NULL,
	`count` integer NOT NULL,
	PRIMARY KEY(`key_id`, `granularity`, `bucket_start`, `code`)
);
--> statement-breakpoint
CREATE INDEX `verification_counts_project` ON `verification_counts` (`organization_id`,`project_id`,`granularity`,`bucket_start`);--> statement-breakpoint
CREATE INDEX `verification_counts_age` ON `verification_counts` (`granularity`,`bucket_start`);--> statement-breakpoint
-- Queue messages already added into verification_counts: a redelivered one counts once.
CREATE TABLE `verification_batches` (
	`id` text PRIMARY KEY NOT NULL,
	`processed_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `verification_batches_processed_at` ON `verification_batches` (`processed_at`);
