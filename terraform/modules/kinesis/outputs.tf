output "stream_name" {
  description = "Name of the CDC stream (LAKEHOUSE_CDC_KINESIS_STREAM, Settings.cdc_kinesis_stream)."
  value       = aws_kinesis_stream.cdc.name
}

output "stream_arn" {
  description = "ARN of the CDC stream (IAM of the publisher, the sink and the sensor)."
  value       = aws_kinesis_stream.cdc.arn
}

output "shard_count" {
  description = "Provisioned shards (LAKEHOUSE_CDC_KINESIS_SHARDS)."
  value       = aws_kinesis_stream.cdc.shard_count
}
