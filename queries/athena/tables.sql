-- Athena external tables over the hsl_live lake. Render with
--   hsl-live athena-ddl --location s3://bucket/prefix [--database hsl_live]
-- which fills in the database name, the lake's S3 location and the first projected year.
-- The lower-case year, month, day, hour variables in storage.location.template are Athena's
-- own partition projection variables and stay as they are.
--
-- Partitions are UTC hours laid out as year=YYYY/month=MM/day=DD/hour=HH (zero-padded strings).
-- Partition projection computes them from these properties, so no MSCK REPAIR TABLE and no
-- Glue partitions are needed: a new hour is queryable as soon as its first file lands.
-- Filter on year, month, day and hour (as strings: month = '02') to scan only those hours.

CREATE DATABASE IF NOT EXISTS ${DATABASE};

-- processed: typed, deduplicated HFP events, partitioned by the event time `tst` (UTC).
CREATE EXTERNAL TABLE IF NOT EXISTS ${DATABASE}.processed (
  `received_at` timestamp,
  `topic_prefix` string,
  `topic_version` string,
  `journey_type` string,
  `is_ongoing` boolean,
  `event_type` string,
  `mode` string,
  `owner_operator_id` smallint,
  `vehicle_number` int,
  `unique_vehicle_id` string,
  `route_id` string,
  `direction_id` tinyint,
  `headsign` string,
  `journey_start_time` string,
  `next_stop_id` string,
  `geohash_level` tinyint,
  `topic_latitude` double,
  `topic_longitude` double,
  `desi` string,
  `dir` tinyint,
  `oper` smallint,
  `veh` int,
  `tst` timestamp,
  `tsi` bigint,
  `spd` double,
  `hdg` smallint,
  `lat` double,
  `long` double,
  `acc` double,
  `dl` int,
  `odo` double,
  `drst` boolean,
  `oday` date,
  `jrn` int,
  `line` int,
  `start` string,
  `loc` string,
  `stop` int,
  `route` string,
  `occu` smallint,
  `seq` smallint,
  `label` string,
  `ttarr` timestamp,
  `ttdep` timestamp,
  `dr_type` tinyint,
  `block` int,
  `sid` int,
  `signal_groupid` int,
  `tlp_requestid` smallint,
  `tlp_requesttype` string,
  `tlp_prioritylevel` string,
  `tlp_reason` string,
  `tlp_att_seq` smallint,
  `tlp_decision` string,
  `tlp_signalgroupnbr` smallint,
  `tlp_line_configid` int,
  `tlp_point_configid` int,
  `tlp_frequency` int,
  `tlp_protocol` string
)
PARTITIONED BY (`year` string, `month` string, `day` string, `hour` string)
STORED AS PARQUET
LOCATION '${LOCATION}/processed/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.year.type' = 'date',
  'projection.year.format' = 'yyyy',
  'projection.year.range' = '${START_YEAR},NOW',
  'projection.year.interval' = '1',
  'projection.year.interval.unit' = 'YEARS',
  'projection.month.type' = 'integer',
  'projection.month.range' = '1,12',
  'projection.month.digits' = '2',
  'projection.day.type' = 'integer',
  'projection.day.range' = '1,31',
  'projection.day.digits' = '2',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = '${LOCATION}/processed/year=${year}/month=${month}/day=${day}/hour=${hour}/'
);

-- raw: every distinct message as received, partitioned by `received_at` (UTC).
CREATE EXTERNAL TABLE IF NOT EXISTS ${DATABASE}.raw (
  `received_at` timestamp,
  `topic` string,
  `payload` string
)
PARTITIONED BY (`year` string, `month` string, `day` string, `hour` string)
STORED AS PARQUET
LOCATION '${LOCATION}/raw/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.year.type' = 'date',
  'projection.year.format' = 'yyyy',
  'projection.year.range' = '${START_YEAR},NOW',
  'projection.year.interval' = '1',
  'projection.year.interval.unit' = 'YEARS',
  'projection.month.type' = 'integer',
  'projection.month.range' = '1,12',
  'projection.month.digits' = '2',
  'projection.day.type' = 'integer',
  'projection.day.range' = '1,31',
  'projection.day.digits' = '2',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = '${LOCATION}/raw/year=${year}/month=${month}/day=${day}/hour=${hour}/'
);

-- rejected: messages that could not be decoded, with a `reason`, partitioned by `received_at` (UTC).
CREATE EXTERNAL TABLE IF NOT EXISTS ${DATABASE}.rejected (
  `received_at` timestamp,
  `topic` string,
  `payload` string,
  `reason` string,
  `detail` string
)
PARTITIONED BY (`year` string, `month` string, `day` string, `hour` string)
STORED AS PARQUET
LOCATION '${LOCATION}/rejected/'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.year.type' = 'date',
  'projection.year.format' = 'yyyy',
  'projection.year.range' = '${START_YEAR},NOW',
  'projection.year.interval' = '1',
  'projection.year.interval.unit' = 'YEARS',
  'projection.month.type' = 'integer',
  'projection.month.range' = '1,12',
  'projection.month.digits' = '2',
  'projection.day.type' = 'integer',
  'projection.day.range' = '1,31',
  'projection.day.digits' = '2',
  'projection.hour.type' = 'integer',
  'projection.hour.range' = '0,23',
  'projection.hour.digits' = '2',
  'storage.location.template' = '${LOCATION}/rejected/year=${year}/month=${month}/day=${day}/hour=${hour}/'
);
