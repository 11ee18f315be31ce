-- name: silent_devices
-- description: Devices seen between two days whose last reading arrived more than N minutes before the archive's newest one.
-- params: from_day, to_day, silent_minutes
WITH last_seen AS (
  SELECT device_id, max(site) AS site, max(line) AS line, max(arrival_ms) AS last_arrival_ms
  FROM ${readings} r
  WHERE dt BETWEEN ? AND ?
  GROUP BY device_id
), newest AS (
  SELECT max(last_arrival_ms) AS newest_ms FROM last_seen
)
SELECT device_id, site, line, last_arrival_ms, (newest_ms - last_arrival_ms) / 60000.0 AS silent_minutes
FROM last_seen CROSS JOIN newest
WHERE newest_ms - last_arrival_ms > ? * 60000
ORDER BY silent_minutes DESC, device_id
