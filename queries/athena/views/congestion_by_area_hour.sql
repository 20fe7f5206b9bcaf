-- Where vehicles crawl, per area cell, mode and UTC hour (journeys in service, VP events).
--
-- A cell is 0.01 degrees of latitude by 0.02 degrees of longitude (about 1.1 km by 1.1 km in
-- Helsinki); cell_lat and cell_lon are its centre, for map visuals.
-- Speed classes are those of congestion_by_route_hour: stop (doors open, < 1 m/s), delay
-- (doors closed, < 0.27 m/s), slow (doors closed, 0.27 up to 0.83 m/s), fast (the rest).
-- delay_share and crawl_share (delay + slow) are shares of the positions that are not stops.
-- Filter on year, month, day, hour (strings, e.g. month = '02') to scan only those hours.
CREATE OR REPLACE VIEW congestion_by_area_hour AS
WITH classed AS (
  SELECT
    year, month, day, hour, mode, unique_vehicle_id, spd,
    (floor(lat * 100) + 0.5) / 100 AS cell_lat,
    (floor(long * 50) + 0.5) / 50 AS cell_lon,
    CASE
      WHEN drst AND spd < 1 THEN 'stop'
      WHEN NOT coalesce(drst, false) AND spd < 0.27 THEN 'delay'
      WHEN NOT coalesce(drst, false) AND spd < 0.83 THEN 'slow'
      ELSE 'fast'
    END AS speed_class
  FROM processed
  WHERE event_type = 'VP'
    AND journey_type = 'journey'
    AND is_ongoing
    AND spd IS NOT NULL
    AND lat IS NOT NULL
    AND long IS NOT NULL
)
SELECT
  year,
  month,
  day,
  hour,
  mode,
  cell_lat,
  cell_lon,
  count(DISTINCT unique_vehicle_id) AS vehicles,
  count(*) AS positions,
  count_if(speed_class = 'stop') AS stop_positions,
  count_if(speed_class = 'delay') AS delay_positions,
  count_if(speed_class = 'slow') AS slow_positions,
  count_if(speed_class = 'fast') AS fast_positions,
  CAST(count_if(speed_class = 'delay') AS double)
    / nullif(count_if(speed_class <> 'stop'), 0) AS delay_share,
  CAST(count_if(speed_class IN ('delay', 'slow')) AS double)
    / nullif(count_if(speed_class <> 'stop'), 0) AS crawl_share,
  approx_percentile(spd, 0.5) AS median_speed_ms
FROM classed
GROUP BY year, month, day, hour, mode, cell_lat, cell_lon
