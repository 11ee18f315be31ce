-- name: device_readings
-- description: One device's readings between two days (inclusive), oldest first.
-- params: device_id, from_day, to_day
SELECT device_id, site, line, ts_ms, arrival_ms, metrics
FROM ${readings} r
WHERE device_id = ? AND dt BETWEEN ? AND ?
ORDER BY ts_ms, sequence_number
