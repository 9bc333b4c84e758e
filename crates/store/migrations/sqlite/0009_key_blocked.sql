-- A blocked key authenticates nothing until unblocked (LiteLLM's
-- /key/block and /key/unblock); it keeps its spend and settings.
ALTER TABLE keys ADD COLUMN blocked INTEGER NOT NULL DEFAULT 0;
