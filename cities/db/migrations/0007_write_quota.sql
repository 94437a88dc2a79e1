-- Per-writer write quotas (cities/db/quota.py): one row per writer, counting its writes in its
-- current window, which starts at its first write after the previous one ended. `quota` is the
-- limit the count was last checked against: the check below refuses the write that would pass
-- it, inside that write's own transaction. A new table only: the code before it never reads it.
CREATE TABLE write_quota (
    writer text PRIMARY KEY CONSTRAINT write_quota_writer_length CHECK (char_length(writer) BETWEEN 1 AND 300),
    window_start timestamptz NOT NULL,
    writes bigint NOT NULL,
    quota bigint NOT NULL,
    CONSTRAINT write_quota_within_quota CHECK (writes <= quota)
);
