# The CDC stream of the small profile: one Kinesis data stream for every captured table (issue 10's
# transport contract). The publisher (embedded Debezium, an ECS container) writes each change with
# a partition key of table + primary key, so one row's changes stay in order on one shard; the sink
# reads every shard. Provisioned mode: 1 shard (1 MB/s or 1,000 records/s in, 2 MB/s out) costs
# $0.015/shard-hour; on-demand mode would add a fixed $0.04/stream-hour (terraform/COSTS.md).
locals {
  # One naming rule, shared with lakehouse/settings.py (Settings.cdc_kinesis_stream).
  stream_name = "${var.name_prefix}-cdc"
}

resource "aws_kinesis_stream" "cdc" {
  name             = local.stream_name
  shard_count      = var.shard_count
  retention_period = var.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }

  tags = var.tags
}
