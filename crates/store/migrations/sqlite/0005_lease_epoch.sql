-- The fencing token of a batch's lease: bumped by every claim, checked by
-- every journal write and status move of the runner that holds it.
ALTER TABLE batches ADD COLUMN lease_epoch INTEGER NOT NULL DEFAULT 0;
