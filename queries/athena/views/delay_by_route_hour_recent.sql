-- delay_by_route_hour for the last 7 days (UTC), for Power BI DirectQuery pages that should
-- never scan the whole lake. The filter is on the partition columns only, so Athena reads just
-- these days' partitions whatever the report asks for. It compares the zero-padded partition
-- values as text, which orders like the dates they name; DuckDB prunes files on that form too.
CREATE OR REPLACE VIEW delay_by_route_hour_recent AS
SELECT *
FROM delay_by_route_hour
WHERE year || '-' || month || '-' || day >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
