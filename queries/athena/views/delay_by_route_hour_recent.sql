-- delay_by_route_hour for the last 7 days (UTC), for Power BI DirectQuery pages that should
-- never scan the whole lake. The filter is on the partition columns only, so Athena reads just
-- these days' partitions whatever the report asks for.
CREATE OR REPLACE VIEW delay_by_route_hour_recent AS
SELECT *
FROM delay_by_route_hour
WHERE CAST(year || '-' || month || '-' || day AS date) >= current_date - INTERVAL '7' DAY
