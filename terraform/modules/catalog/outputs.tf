output "glue_databases" {
  description = "Glue database name per layer (bronze, silver, marts) — same as Settings.glue_databases."
  value       = { for layer, db in aws_glue_catalog_database.this : layer => db.name }
}

output "glue_database_arns" {
  description = "Glue database ARN per layer."
  value       = { for layer, db in aws_glue_catalog_database.this : layer => db.arn }
}

output "delta_tables" {
  description = "Registered Delta tables: \"<database>.<table>\" => S3 location."
  value       = { for k, t in local.delta_tables : "${local.glue_databases[t.layer]}.${t.name}" => t.location }
}

output "athena_workgroup" {
  description = "Athena workgroup name (LAKEHOUSE_ATHENA_WORKGROUP)."
  value       = local.athena_workgroup
}

output "athena_results_location" {
  description = "Enforced Athena result location."
  value       = "s3://${var.athena_results_bucket}/output/"
}
