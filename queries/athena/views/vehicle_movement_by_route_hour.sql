-- Vehicle movement per route and UTC hour (journeys in service, VP events only).
--
-- distance_km: haversine length between consecutive positions of each vehicle within the hour.
--   Steps over 60 s (gaps, sign-offs) or faster than 50 m/s (GPS jumps) are skipped, and the
--   first position of each vehicle in an hour starts a new track, so hours add up.
-- avg_speed_ms / median_speed_ms: the speed the vehicles report (`spd`, m/s), per position.
-- track_speed_ms: distance over the time covered by the kept steps.
-- active_vehicles: distinct vehicles that reported a position on the route in the hour.
-- Filter on year, month, day, hour (strings, e.g. month = '02') to scan only those hours.
-- The window keeps year, month, day, hour in its PARTITION BY: Athena (Trino) pushes a filter
-- through a window only when it is on the window's partition columns, so without them a filter
-- on one hour would read the whole lake. The vehicle comes first: DuckDB sorts the window on
-- these keys in order, and a leading key that differs between rows settles comparisons early.
CREATE OR REPLACE VIEW vehicle_movement_by_route_hour AS
WITH positions AS (
  SELECT
    year, month, day, hour, mode, route_id, unique_vehicle_id, tst, spd, lat, long,
    lag(tst) OVER (
      PARTITION BY unique_vehicle_id, seq, year, month, day, hour ORDER BY tst
    ) AS prev_tst,
    lag(lat) OVER (
      PARTITION BY unique_vehicle_id, seq, year, month, day, hour ORDER BY tst
    ) AS prev_lat,
    lag(long) OVER (
      PARTITION BY unique_vehicle_id, seq, year, month, day, hour ORDER BY tst
    ) AS prev_long
  FROM processed
  WHERE event_type = 'VP'
    AND journey_type = 'journey'
    AND is_ongoing
    AND lat IS NOT NULL
    AND long IS NOT NULL
),
steps AS (
  SELECT
    *,
    CAST(date_diff('millisecond', prev_tst, tst) AS double) / 1000 AS step_s,
    2 * 6371008.8 * asin(sqrt(
      power(sin(radians(lat - prev_lat) / 2), 2)
      + cos(radians(prev_lat)) * cos(radians(lat)) * power(sin(radians(long - prev_long) / 2), 2)
    )) AS step_m
  FROM positions
),
kept AS (
  SELECT
    *,
    coalesce(step_s > 0 AND step_s <= 60 AND step_m <= 50 * step_s, false) AS is_kept
  FROM steps
)
SELECT
  year,
  month,
  day,
  hour,
  mode,
  route_id,
  count(DISTINCT unique_vehicle_id) AS active_vehicles,
  count(*) AS positions,
  sum(CASE WHEN is_kept THEN step_m ELSE 0 END) / 1000 AS distance_km,
  sum(CASE WHEN is_kept THEN step_s ELSE 0 END) AS tracked_s,
  avg(spd) AS avg_speed_ms,
  approx_percentile(spd, 0.5) AS median_speed_ms,
  sum(CASE WHEN is_kept THEN step_m ELSE 0 END)
    / nullif(sum(CASE WHEN is_kept THEN step_s ELSE 0 END), 0) AS track_speed_ms
FROM kept
GROUP BY year, month, day, hour, mode, route_id
