-- The archive's readings, one row per Kinesis record: raw_records de-duplicated by
-- (shard_id, sequence_number), the archive's key (a Lambda retry can archive a batch
-- a second time, in a second object that overlaps the first). Records whose data is
-- one JSON object (the canonical message and the legacy single-sensor shapes) are
-- parsed; array records stay in raw_records.
(
  SELECT
    COALESCE(json_extract_scalar(data, '$.device_id'), json_extract_scalar(data, '$.deviceId'),
             json_extract_scalar(data, '$.sensor_id')) AS device_id,
    COALESCE(json_extract_scalar(data, '$.site'), 'default') AS site,
    COALESCE(json_extract_scalar(data, '$.line'), json_extract_scalar(data, '$.production_line'), 'default') AS line,
    COALESCE(json_extract_scalar(data, '$.device_type'), 'generic') AS device_type,
    COALESCE(TRY_CAST(json_extract_scalar(data, '$.ts') AS BIGINT), arrival_ms) AS ts_ms,
    arrival_ms,
    data,
    shard_id,
    sequence_number,
    year || '-' || month || '-' || day AS dt,
    hour
  FROM (
    SELECT r.*, row_number() OVER (PARTITION BY shard_id, sequence_number ORDER BY arrival_ms) AS copy_no
    FROM raw_records r
  ) deduplicated
  WHERE copy_no = 1 AND data LIKE '{%'
)
