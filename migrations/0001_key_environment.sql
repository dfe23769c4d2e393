ALTER TABLE `api_keys` ADD `environment` text DEFAULT 'live' NOT NULL;--> statement-breakpoint
-- Existing keys: the environment is the middle word of their display prefix `<prefix>_<env>_<4>`.
UPDATE `api_keys` SET `environment` = substr(
  substr(`key_prefix`, instr(`key_prefix`, '_') + 1), 1,
  instr(substr(`key_prefix`, instr(`key_prefix`, '_') + 1), '_') - 1
) WHERE instr(substr(`key_prefix`, instr(`key_prefix`, '_') + 1), '_') > 1;
