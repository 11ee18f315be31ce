-- name: late_data
-- description: Readings that arrived more than N seconds after their own timestamp, per day, site and line.
-- params: from_day, to_day, late_seconds
SELECT dt AS day, site, line, count(*) AS late_readings, count(DISTINCT device_id) AS devices,
       max(arrival_ms - ts_ms) / 1000.0 AS max_late_seconds
FROM ${readings} r
WHERE dt BETWEEN ? AND ? AND arrival_ms - ts_ms > ? * 1000
GROUP BY dt, site, line
ORDER BY dt, site, line
