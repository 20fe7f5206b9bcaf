-- Data quality per operator and UTC hour.
--
-- From processed (hour of the event time tst), per owner_operator_id:
--   events, vp_events, null_position_share (VPs without lat/long),
--   clock_skew_p50_s / p90_s / p99_s / max_s: received_at - tst in seconds (vehicles buffer and
--   replay, so large values are late deliveries), clock_ahead_events: events whose tst is
--   later than their arrival (vehicle clock ahead).
-- From raw and rejected (hour of received_at), the operator read from the topic:
--   raw_messages (distinct messages received), rejected (messages that failed to decode).
-- duplicate_events = raw_messages - rejected - events: messages that decoded to an event already
--   stored. Raw is bucketed by arrival and processed by event time, so an hour's value can be off
--   by the events delivered across an hour boundary (and even negative); sum over a day for
--   an exact count. Rejected messages whose topic names no operator have operator_id NULL.
-- Filter on year, month, day, hour (strings, e.g. month = '02') to scan only those hours.
CREATE OR REPLACE VIEW data_quality_by_operator_hour AS
WITH events AS (
  SELECT
    year,
    month,
    day,
    hour,
    owner_operator_id AS operator_id,
    event_type,
    lat,
    long,
    CAST(date_diff('millisecond', tst, received_at) AS double) / 1000 AS skew_s
  FROM processed
),
-- Messages are counted per topic first: an hour holds far fewer distinct topics than messages,
-- so the operator is read from each topic once instead of from every message.
raw_topics AS (
  SELECT year, month, day, hour, topic, count(*) AS messages
  FROM raw
  GROUP BY year, month, day, hour, topic
),
rejected_topics AS (
  SELECT year, month, day, hour, topic, count(*) AS messages
  FROM rejected
  GROUP BY year, month, day, hour, topic
),
event_hours AS (
  SELECT
    year,
    month,
    day,
    hour,
    operator_id,
    count(*) AS events,
    count_if(event_type = 'VP') AS vp_events,
    count_if(event_type = 'VP' AND (lat IS NULL OR long IS NULL)) AS vp_null_positions,
    -- One percentile call for the three: the values are collected once, not three times.
    approx_percentile(skew_s, ARRAY[0.5, 0.9, 0.99]) AS skew_percentiles,
    max(skew_s) AS clock_skew_max_s,
    count_if(skew_s < 0) AS clock_ahead_events
  FROM events
  GROUP BY year, month, day, hour, operator_id
),
per_source AS (
  SELECT
    year,
    month,
    day,
    hour,
    operator_id,
    events,
    vp_events,
    vp_null_positions,
    skew_percentiles[1] AS clock_skew_p50_s,
    skew_percentiles[2] AS clock_skew_p90_s,
    skew_percentiles[3] AS clock_skew_p99_s,
    clock_skew_max_s,
    clock_ahead_events,
    0 AS raw_messages,
    0 AS rejected
  FROM event_hours
  UNION ALL
  SELECT
    year,
    month,
    day,
    hour,
    CAST(coalesce(
      nullif(regexp_extract(topic, '/v2/[^/]*/[^/]*/[^/]*/[^/]*/([0-9]+)/', 1), ''),
      nullif(regexp_extract(topic, '/v1/[^/]*/[^/]*/[^/]*/([0-9]+)/', 1), '')
    ) AS smallint) AS operator_id,
    0, 0, 0, NULL, NULL, NULL, NULL, 0,
    sum(messages) AS raw_messages,
    0 AS rejected
  FROM raw_topics
  GROUP BY year, month, day, hour, 5
  UNION ALL
  SELECT
    year,
    month,
    day,
    hour,
    CAST(coalesce(
      nullif(regexp_extract(topic, '/v2/[^/]*/[^/]*/[^/]*/[^/]*/([0-9]+)/', 1), ''),
      nullif(regexp_extract(topic, '/v1/[^/]*/[^/]*/[^/]*/([0-9]+)/', 1), '')
    ) AS smallint) AS operator_id,
    0, 0, 0, NULL, NULL, NULL, NULL, 0, 0,
    sum(messages) AS rejected
  FROM rejected_topics
  GROUP BY year, month, day, hour, 5
)
SELECT
  year,
  month,
  day,
  hour,
  operator_id,
  sum(events) AS events,
  sum(vp_events) AS vp_events,
  CAST(sum(vp_null_positions) AS double) / nullif(sum(vp_events), 0) AS null_position_share,
  max(clock_skew_p50_s) AS clock_skew_p50_s,
  max(clock_skew_p90_s) AS clock_skew_p90_s,
  max(clock_skew_p99_s) AS clock_skew_p99_s,
  max(clock_skew_max_s) AS clock_skew_max_s,
  sum(clock_ahead_events) AS clock_ahead_events,
  sum(raw_messages) AS raw_messages,
  sum(rejected) AS rejected,
  sum(raw_messages) - sum(rejected) - sum(events) AS duplicate_events
FROM per_source
GROUP BY year, month, day, hour, operator_id
