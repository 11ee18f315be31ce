-- The archive's readings, one row per accepted Kinesis record, keyed by the thing that
-- published it: the record's partition key (the IoT rule sets it to the thing name),
-- never the device id the payload names. Records the processor rejected (a line in
-- quarantine_records with the same partition key and sequence number) are left out.
-- Two sources: the Parquet the compaction job wrote (src/iotpm/analytics/compaction.py)
-- for the hours before compaction_state's through_hour (already parsed, de-duplicated
-- within the hour, rejected records left out, by this same subquery), and the raw
-- records of the hours not yet compacted (sql/parts/raw_pending.sql). A Lambda
-- retry can archive a record twice, in a later object, even a later hour: copies are
-- de-duplicated on the archive's key (shard_id, sequence_number), the earliest
-- partition's kept, so the answer does not depend on which hours are compacted.
-- Records whose data is one JSON object (the canonical message and the legacy
-- single-sensor shapes) are parsed; array records stay in raw_records.
(
  SELECT device_id, site, line, device_type, ts_ms, arrival_ms, metrics, shard_id, sequence_number,
         year || '-' || month || '-' || day AS dt, hour
  FROM (
    SELECT u.*, row_number() OVER (PARTITION BY shard_id, sequence_number ORDER BY year, month, day, hour) AS copy_no
    FROM (
      SELECT device_id, site, line, device_type, ts_ms, arrival_ms, metrics, shard_id, sequence_number,
             year, month, day, hour
      FROM compacted_readings c
      WHERE c.year || c.month || c.day || c.hour < (SELECT max(through_hour) FROM compaction_state)
      UNION ALL
      SELECT
        partition_key AS device_id,
        COALESCE(json_extract_scalar(data, '$.site'), 'default') AS site,
        COALESCE(json_extract_scalar(data, '$.line'), json_extract_scalar(data, '$.production_line'), 'default') AS line,
        COALESCE(json_extract_scalar(data, '$.device_type'), 'generic') AS device_type,
        COALESCE(TRY_CAST(json_extract_scalar(data, '$.ts') AS BIGINT), arrival_ms) AS ts_ms,
        arrival_ms,
        json_format(json_extract(data, '$.metrics')) AS metrics,
        shard_id, sequence_number, year, month, day, hour
      FROM ${raw_pending} p
      WHERE data LIKE '{%' AND NOT EXISTS (
        SELECT 1 FROM quarantine_records q
        WHERE q.partition_key = p.partition_key AND q.sequence_number = p.sequence_number
      )
    ) u
  ) deduplicated
  WHERE copy_no = 1
)
