-- Where vehicles crawl, per route, direction and UTC hour (journeys in service, VP events).
--
-- Each position is classed as HSL's own flow analysis does (speed `spd` in m/s, door status
-- `drst`, a missing door status counted as closed):
--   stop  doors open and slower than 1 m/s: dwelling at a stop, not a delay;
--   delay doors closed and slower than 0.27 m/s: standing in traffic;
--   slow  doors closed, 0.27 up to 0.83 m/s: crawling;
--   fast  everything else: moving.
-- Counts are positions, which are about seconds at the feed's 1 Hz.
-- delay_share and crawl_share (delay + slow) are shares of the positions that are not stops.
-- Filter on year, month, day, hour (strings, e.g. month = '02') to scan only those hours.
CREATE OR REPLACE VIEW congestion_by_route_hour AS
WITH classed AS (
  SELECT
    year, month, day, hour, mode, route_id, direction_id, unique_vehicle_id, spd,
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
)
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
GROUP BY year, month, day, hour, mode, route_id, direction_id
