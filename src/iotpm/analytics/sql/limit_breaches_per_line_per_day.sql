-- name: limit_breaches_per_line_per_day
-- description: Readings outside the default alarm limits per site, line and day (temperature 10-80 C, pressure 30-150 PSI, vibration above 5.0 mm/s); the detector's own alarms are served by the API's /anomalies.
-- params: from_day, to_day
SELECT
  dt AS day, site, line,
  count(*) AS readings,
  count(DISTINCT device_id) AS devices,
  sum(CASE WHEN temperature_c < 10 OR temperature_c > 80 THEN 1 ELSE 0 END) AS temperature_breaches,
  sum(CASE WHEN pressure_psi < 30 OR pressure_psi > 150 THEN 1 ELSE 0 END) AS pressure_breaches,
  sum(CASE WHEN vibration_mm_s > 5.0 THEN 1 ELSE 0 END) AS vibration_breaches,
  count(DISTINCT CASE WHEN temperature_c < 10 OR temperature_c > 80 OR pressure_psi < 30 OR pressure_psi > 150
                        OR vibration_mm_s > 5.0 THEN device_id END) AS devices_in_breach
FROM (
  SELECT dt, site, line, device_id, temperature_c, pressure_psi, vibration_mm_s
  FROM ${readings} r
  WHERE dt BETWEEN ? AND ?
) m
GROUP BY dt, site, line
ORDER BY dt, site, line
