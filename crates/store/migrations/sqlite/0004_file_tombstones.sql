-- A deleted (or swept) file keeps its place in the listing order, so a
-- client paging with `after=<that file>` continues where it was instead of
-- getting an empty page.
CREATE TABLE file_tombstones (
    key TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE TRIGGER files_tombstone AFTER DELETE ON files
BEGIN
    INSERT OR REPLACE INTO file_tombstones (key, seq) VALUES (old.key, old.seq);
END;
