-- Schedule delay per route, direction and UTC hour (journeys in service, VP events with `dl`).
--
-- HFP's `dl` is seconds ahead of the timetable, so NEGATIVE dl means late. Here delay_s = -dl:
-- positive seconds late, negative seconds early. Every position counts once (about once per
-- second per vehicle), so a vehicle that runs longer in the hour weighs more.
-- late_60s_share, late_180s_share, late_300s_share: share of positions more than 1, 3 or 5
-- minutes late; early_60s_share: more than 1 minute early.
-- Filter on year, month, day, hour (strings, e.g. month = '02') to scan only those hours.
CREATE OR REPLACE VIEW delay_by_route_hour AS
SELECT
  year,
  month,
  day,
  hour,
  mode,
  route_id,
  direction_id,
  count(DISTINCT unique_vehicle_id) AS vehicles,
  count(*) AS positions,
  avg(CAST(-dl AS double)) AS avg_delay_s,
  approx_percentile(CAST(-dl AS double), 0.5) AS delay_p50_s,
  approx_percentile(CAST(-dl AS double), 0.9) AS delay_p90_s,
  approx_percentile(CAST(-dl AS double), 0.95) AS delay_p95_s,
  max(-dl) AS delay_max_s,
  CAST(count_if(dl < -60) AS double) / count(*) AS late_60s_share,
  CAST(count_if(dl < -180) AS double) / count(*) AS late_180s_share,
  CAST(count_if(dl < -300) AS double) / count(*) AS late_300s_share,
  CAST(count_if(dl > 60) AS double) / count(*) AS early_60s_share
FROM processed
WHERE event_type = 'VP'
  AND journey_type = 'journey'
  AND is_ongoing
  AND dl IS NOT NULL
GROUP BY year, month, day, hour, mode, route_id, direction_id
