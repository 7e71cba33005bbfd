"""Change data capture: Debezium (embedded) → Kafka → exactly-once Delta sink.

Plain Python, no Dagster imports: `publisher` runs Debezium's PostgreSQL connector and publishes
to Kafka exactly like Debezium Connect does; `sink` turns the topics into bronze changelog,
silver current-state and SCD2 history Delta tables.
"""
