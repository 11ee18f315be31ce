-- The archive's readings, one row per accepted Kinesis record, keyed by the thing that
-- published it: the record's partition key (the IoT rule sets it to the thing name),
-- never the device id the payload names. Records the processor rejected (a line in
-- quarantine_records with the same partition key and sequence number) are left out; a
-- record only partly refused (its line says partial: names past the channel cap) is kept.
-- A Lambda retry can archive a record twice, in a later object, even a later hour:
-- copies are de-duplicated on the archive's key (shard_id, sequence_number), the
-- earliest partition's kept.
-- Two sources, so the answer is the same whichever hours are compacted:
-- * compacted_readings: the Parquet the compaction job (src/iotpm/analytics/compaction.py)
--   wrote for the hours before compaction_state's through_hour, by running this same
--   subquery over each hour's raw objects (so already parsed, rejected records left
--   out, and no copy of a record an earlier compacted hour holds);
-- * the raw records of the hours from the mark on (sql/parts/raw_pending.sql), less
--   the records the compacted hours just before the mark already hold
--   (sql/parts/compacted_recent.sql: as far back as a retry's copy can be).
-- Records whose data is one JSON object (the canonical message and the legacy
-- single-sensor shapes) are parsed; array records stay in raw_records. The three
-- default-limit metrics are columns of their own; every metric is in metrics (JSON text).
(
  SELECT device_id, site, line, device_type, ts_ms, arrival_ms, metrics,
         temperature_c, pressure_psi, vibration_mm_s, shard_id, sequence_number,
         year || '-' || month || '-' || day AS dt, hour
  FROM compacted_readings c
  WHERE c.year || c.month || c.day || c.hour < (SELECT max(through_hour) FROM compaction_state)
  UNION ALL
  SELECT device_id, site, line, device_type, ts_ms, arrival_ms, metrics,
         TRY_CAST(json_extract_scalar(metrics, '$.temperature_c') AS DOUBLE) AS temperature_c,
         TRY_CAST(json_extract_scalar(metrics, '$.pressure_psi') AS DOUBLE) AS pressure_psi,
         TRY_CAST(json_extract_scalar(metrics, '$.vibration_mm_s') AS DOUBLE) AS vibration_mm_s,
         shard_id, sequence_number, year || '-' || month || '-' || day AS dt, hour
  FROM (
    SELECT
      partition_key AS device_id,
      COALESCE(json_extract_scalar(data, '$.site'), 'default') AS site,
      COALESCE(json_extract_scalar(data, '$.line'), json_extract_scalar(data, '$.production_line'), 'default') AS line,
      COALESCE(json_extract_scalar(data, '$.device_type'), 'generic') AS device_type,
      COALESCE(TRY_CAST(json_extract_scalar(data, '$.ts') AS BIGINT), arrival_ms) AS ts_ms,
      arrival_ms,
      json_format(json_extract(data, '$.metrics')) AS metrics,
      shard_id, sequence_number, year, month, day, hour,
      row_number() OVER (PARTITION BY shard_id, sequence_number ORDER BY year, month, day, hour) AS copy_no
    FROM ${raw_pending} p
    WHERE data LIKE '{%'
  ) pending
  WHERE copy_no = 1
    AND NOT EXISTS (
      SELECT 1 FROM quarantine_records q
      WHERE q.partition_key = pending.device_id AND q.sequence_number = pending.sequence_number
        AND COALESCE(q.partial, false) = false
    )
    AND NOT EXISTS (
      SELECT 1 FROM ${compacted_recent} k
      WHERE k.shard_id = pending.shard_id AND k.sequence_number = pending.sequence_number
    )
)
