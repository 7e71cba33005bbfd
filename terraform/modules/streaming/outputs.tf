output "cluster_arn" {
  description = "ARN of the MSK Serverless cluster."
  value       = aws_msk_serverless_cluster.this.arn
}

output "bootstrap_brokers" {
  description = "SASL/IAM bootstrap servers (LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS in prod)."
  value       = aws_msk_serverless_cluster.this.bootstrap_brokers_sasl_iam
}

output "topic_arn_prefix" {
  description = "Prefix of topic ARNs of the cluster (append /<topic name or pattern>)."
  value       = local.topic_prefix
}

output "group_arn_prefix" {
  description = "Prefix of consumer-group ARNs of the cluster (append /<group or pattern>)."
  value       = local.group_prefix
}

output "cdc_topics" {
  description = "Debezium topic per OLTP table — same as Settings.cdc_topic(table)."
  value       = local.cdc_topics
}

output "connector_arn" {
  description = "ARN of the Debezium MSK Connect connector (null until create_connector = true)."
  value       = var.create_connector ? aws_mskconnect_connector.debezium[0].arn : null
}

output "connect_role_arn" {
  description = "Service execution role of MSK Connect."
  value       = aws_iam_role.connect.arn
}
