-- A tombstone keeps its file's owners, so only a caller who could see the
-- file may page from it: anyone else's `after=<that file>` must behave like
-- an unknown ID, or it would reveal that the file existed and where.
-- Tombstones written before this migration have no owners and so mark a
-- place for the master key only.
ALTER TABLE file_tombstones ADD COLUMN owner_key TEXT;
ALTER TABLE file_tombstones ADD COLUMN owner_team TEXT;
DROP TRIGGER files_tombstone;
CREATE TRIGGER files_tombstone AFTER DELETE ON files
BEGIN
    INSERT OR REPLACE INTO file_tombstones (key, seq, owner_key, owner_team)
    VALUES (old.key, old.seq, old.owner_key, old.owner_team);
END;
