-- Runs once, when the postgres volume is initialised (docker-entrypoint-initdb.d).
-- Dagster's run/event/schedule storage lives in its own database, next to the OLTP database `shop`
-- (created by POSTGRES_DB); logical decoding is per database, so CDC never sees Dagster's tables.
CREATE DATABASE dagster OWNER lakehouse;
