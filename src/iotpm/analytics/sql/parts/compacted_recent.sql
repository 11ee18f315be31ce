-- The compacted hours a raw record of a pending hour may have a copy in: from the
-- state's window_from_hour (the mark less the hours a retry can lag) up to the mark.
(
  SELECT c.*
  FROM compacted_readings c
  JOIN compaction_state s
    ON c.year || c.month || c.day || c.hour >= s.window_from_hour
   AND c.year || c.month || c.day || c.hour < s.through_hour
)
