CREATE TABLE `identities` (
	`seq` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`id` text NOT NULL,
	`organization_id` text NOT NULL,
	`external_id` text NOT NULL,
	`meta` text,
	`ratelimits` text,
	`credits_remaining` integer,
	`credits_refill` text,
	`credits_version` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `identities_id_unique` ON `identities` (`id`);--> statement-breakpoint
CREATE INDEX `identities_org_seq` ON `identities` (`organization_id`,`seq`);--> statement-breakpoint
CREATE UNIQUE INDEX `identities_org_external` ON `identities` (`organization_id`,`external_id`);