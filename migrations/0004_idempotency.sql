CREATE TABLE `idempotency_keys` (
	`organization_id` text NOT NULL,
	`caller` text NOT NULL,
	`key_hash` text NOT NULL,
	`request_hash` text NOT NULL,
	`claim` text NOT NULL,
	`status` integer,
	`response` text,
	`created_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`organization_id`, `caller`, `key_hash`)
);
--> statement-breakpoint
CREATE INDEX `idempotency_keys_expires` ON `idempotency_keys` (`expires_at`);
