ALTER TABLE `api_keys` ADD `credits_seen` integer;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `credits_seen_at` integer;--> statement-breakpoint
ALTER TABLE `identities` ADD `credits_seen` integer;--> statement-breakpoint
ALTER TABLE `identities` ADD `credits_seen_at` integer;