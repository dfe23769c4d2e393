CREATE TABLE `webhook_endpoints` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`id` text NOT NULL,
	`organization_id` text NOT NULL,
	`project_id` text NOT NULL,
	`url` text NOT NULL,
	`events` text NOT NULL,
	`description` text,
	`enabled` integer DEFAULT true NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `webhook_endpoints_id_unique` ON `webhook_endpoints` (`id`);--> statement-breakpoint
CREATE INDEX `webhook_endpoints_project_seq` ON `webhook_endpoints` (`organization_id`,`project_id`,`seq`);--> statement-breakpoint
ALTER TABLE `api_keys` ADD `leaked_at` integer;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `expiry_notice_at` integer;--> statement-breakpoint
CREATE INDEX `api_keys_expiry_notice` ON `api_keys` (`expiry_notice_at`);--> statement-breakpoint
ALTER TABLE `projects` ADD `leak_policy` text DEFAULT 'revoke' NOT NULL;--> statement-breakpoint
ALTER TABLE `webhook_deliveries` ADD `endpoint_id` text;--> statement-breakpoint
-- Keys that already expire owe their expiry events from now on (the cron skips to the stage that is due).
UPDATE `api_keys` SET `expiry_notice_at` = `expires_at` - 604800000 WHERE `expires_at` IS NOT NULL AND `revoked_at` IS NULL;
