-- Observed arrival and departure per stop and trip, as HSL's Transitlog derives them.
--
-- A trip is (route_id, direction_id, oday, start) and the vehicle that ran it.
-- observed_arrival: the first ARS (stopped at the stop), else the first ARR (entered its radius).
-- observed_departure: the last PDE (ready to depart) or PAS (passed without stopping), else the
--   last DEP (left the radius).
-- dwell_s: departure minus arrival in seconds, when both exist and the stop was not passed.
-- arrival_delay_s / departure_delay_s: observed minus planned (ttarr / ttdep); positive = late.
-- Grouped by the UTC day of the events (year, month, day partitions), so a stop visit that
-- spans UTC midnight appears as two rows; filter on year, month, day to scan only those days.
CREATE OR REPLACE VIEW stop_events AS
WITH visits AS (
  SELECT
    year,
    month,
    day,
    mode,
    route_id,
    direction_id,
    oday,
    start,
    stop,
    unique_vehicle_id,
    min(CASE WHEN event_type = 'ARS' THEN tst END) AS first_ars,
    min(CASE WHEN event_type = 'ARR' THEN tst END) AS first_arr,
    max(CASE WHEN event_type IN ('PDE', 'PAS') THEN tst END) AS last_pde_pas,
    max(CASE WHEN event_type = 'DEP' THEN tst END) AS last_dep,
    count_if(event_type = 'PAS') > 0 AND count_if(event_type = 'ARS') = 0 AS passed,
    min(ttarr) AS planned_arrival,
    min(ttdep) AS planned_departure
  FROM processed
  WHERE event_type IN ('ARS', 'ARR', 'PDE', 'PAS', 'DEP')
    AND journey_type = 'journey'
    AND is_ongoing
    AND stop IS NOT NULL
  GROUP BY year, month, day, mode, route_id, direction_id, oday, start, stop, unique_vehicle_id
),
observed AS (
  SELECT
    *,
    coalesce(first_ars, first_arr) AS observed_arrival,
    CASE WHEN first_ars IS NOT NULL THEN 'ARS' WHEN first_arr IS NOT NULL THEN 'ARR' END
      AS arrival_source,
    coalesce(last_pde_pas, last_dep) AS observed_departure,
    CASE WHEN last_pde_pas IS NOT NULL THEN 'PDE/PAS' WHEN last_dep IS NOT NULL THEN 'DEP' END
      AS departure_source
  FROM visits
)
SELECT
  year,
  month,
  day,
  mode,
  route_id,
  direction_id,
  oday,
  start,
  stop,
  unique_vehicle_id,
  observed_arrival,
  arrival_source,
  observed_departure,
  departure_source,
  passed,
  CASE
    WHEN NOT passed AND observed_departure >= observed_arrival
      THEN CAST(date_diff('millisecond', observed_arrival, observed_departure) AS double) / 1000
  END AS dwell_s,
  planned_arrival,
  planned_departure,
  CAST(date_diff('millisecond', planned_arrival, observed_arrival) AS double) / 1000
    AS arrival_delay_s,
  CAST(date_diff('millisecond', planned_departure, observed_departure) AS double) / 1000
    AS departure_delay_s
FROM observed
