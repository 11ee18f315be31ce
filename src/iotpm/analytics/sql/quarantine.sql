-- Quarantined messages, each once: a retried batch quarantines its records again
-- with the same fields, so a line's fields are its key. A message too broken to name
-- its device is the device's that published it (the partition key is the thing name).
(
  SELECT DISTINCT
    reason, detail, COALESCE(device_id, partition_key) AS device_id, sequence_number, partition_key, arrival_ms, payload,
    year || '-' || month || '-' || day AS dt,
    hour
  FROM quarantine_records
)
