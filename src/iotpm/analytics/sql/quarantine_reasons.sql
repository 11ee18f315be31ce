-- name: quarantine_reasons
-- description: Quarantined messages per day and reason, with the devices they named.
-- params: from_day, to_day
SELECT dt AS day, reason, count(*) AS messages, count(DISTINCT device_id) AS devices
FROM ${quarantine} q
WHERE dt BETWEEN ? AND ?
GROUP BY dt, reason
ORDER BY dt, messages DESC, reason
