output "dynamodb_table_names" {
  description = "DynamoDB table name per logical name — same as Settings.dynamodb_table(name)."
  value       = local.dynamodb_table_names
}

output "dynamodb_table_arns" {
  description = "DynamoDB table ARNs (only for tables created here)."
  value       = { for k, t in aws_dynamodb_table.this : k => t.arn }
}

output "oltp_secret_arn" {
  description = "ARN of the OLTP source secret (JSON with host, port, dbname, username, password)."
  value       = var.create_oltp_secret ? aws_secretsmanager_secret.oltp[0].arn : null
}

output "oltp_secret_name" {
  description = "Name of the OLTP source secret (used by the MSK Connect Secrets Manager config provider)."
  value       = var.create_oltp_secret ? aws_secretsmanager_secret.oltp[0].name : null
}

output "oltp" {
  description = "OLTP source connection settings without the password."
  value       = var.oltp
}
