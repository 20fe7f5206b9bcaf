-- Rejected messages per reason, operator and UTC hour of arrival (from the rejected table).
--
-- reason is one of hsl_live's stable reasons (invalid_json, invalid_payload, missing_tst,
-- unknown_event_type, event_type_mismatch, malformed_topic, invalid_coordinates).
-- operator_id is read from the topic; NULL when the topic names none.
-- Filter on year, month, day, hour (strings, e.g. month = '02') to scan only those hours.
CREATE OR REPLACE VIEW rejects_by_reason_hour AS
SELECT
  year,
  month,
  day,
  hour,
  reason,
  CAST(coalesce(
    nullif(regexp_extract(topic, '/v2/[^/]*/[^/]*/[^/]*/[^/]*/([0-9]+)/', 1), ''),
    nullif(regexp_extract(topic, '/v1/[^/]*/[^/]*/[^/]*/([0-9]+)/', 1), '')
  ) AS smallint) AS operator_id,
  count(*) AS messages,
  min(received_at) AS first_received_at,
  max(received_at) AS last_received_at
FROM rejected
GROUP BY year, month, day, hour, reason, 6
