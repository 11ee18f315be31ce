-- The raw records of the hours the compaction job has not written as Parquet yet
-- (compaction_state.through_hour on; no state row: every hour). Joined rather than
-- compared with a scalar subquery, so an engine with dynamic filtering can prune the
-- compacted hours' partitions instead of reading them; DuckDB's ArchiveDB lists the
-- pending hours' files itself.
(
  SELECT r.*
  FROM raw_records r
  JOIN (SELECT COALESCE(max(through_hour), '0000000000') AS through_hour FROM compaction_state) s
    ON r.year || r.month || r.day || r.hour >= s.through_hour
)
