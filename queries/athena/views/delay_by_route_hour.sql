-- Schedule delay per route, direction and UTC hour (journeys in service, VP events with `dl`).
--
-- HFP's `dl` is seconds ahead of the timetable, so NEGATIVE dl means late. Here delay_s = -dl:
-- positive seconds late, negative seconds early. Every position counts once (about once per
-- second per vehicle), so a vehicle that runs longer in the hour weighs more.
-- late_60s_share, late_180s_share, late_300s_share: share of positions more than 1, 3 or 5
-- minutes late; early_60s_share: more than 1 minute early.
-- Filter on year, month, day, hour (strings, e.g. month = '02') to scan only those hours.
CREATE OR REPLACE VIEW delay_by_route_hour AS
WITH route_hours AS (
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
    -- One percentile call for the three: the values are collected once, not three times.
    approx_percentile(CAST(-dl AS double), ARRAY[0.5, 0.9, 0.95]) AS delay_percentiles,
    max(-dl) AS delay_max_s,
    count_if(dl < -60) AS late_60s,
    count_if(dl < -180) AS late_180s,
    count_if(dl < -300) AS late_300s,
    count_if(dl > 60) AS early_60s
  FROM processed
  WHERE event_type = 'VP'
    AND journey_type = 'journey'
    AND is_ongoing
    AND dl IS NOT NULL
  GROUP BY year, month, day, hour, mode, route_id, direction_id
)
SELECT
  year,
  month,
  day,
  hour,
  mode,
  route_id,
  direction_id,
  vehicles,
  positions,
  avg_delay_s,
  delay_percentiles[1] AS delay_p50_s,
  delay_percentiles[2] AS delay_p90_s,
  delay_percentiles[3] AS delay_p95_s,
  delay_max_s,
  CAST(late_60s AS double) / positions AS late_60s_share,
  CAST(late_180s AS double) / positions AS late_180s_share,
  CAST(late_300s AS double) / positions AS late_300s_share,
  CAST(early_60s AS double) / positions AS early_60s_share
FROM route_hours
