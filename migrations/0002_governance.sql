-- Key governance (SPEC Part 2 "Key governance fields"): enable/disable, metadata, owner,
-- IP allowlist, rate limits and credits. JSON columns hold the normalised wire values.
ALTER TABLE `api_keys` ADD `enabled` integer DEFAULT true NOT NULL;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `meta` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `external_id` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `ip_allowlist` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `ratelimits` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `credits_remaining` integer;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `credits_refill` text;--> statement-breakpoint
ALTER TABLE `api_keys` ADD `credits_version` integer;--> statement-breakpoint
-- The usage state (KeyUsage Durable Object) a key shares with its rotation successors:
-- the first key's id, copied to every successor.
ALTER TABLE `api_keys` ADD `lineage_id` text;--> statement-breakpoint
UPDATE `api_keys` SET `lineage_id` = `id` WHERE `lineage_id` IS NULL;--> statement-breakpoint
CREATE INDEX `api_keys_org_external_seq` ON `api_keys` (`organization_id`,`external_id`,`seq`);
