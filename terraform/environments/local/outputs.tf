output "buckets" {
  description = "Bucket names by role (Settings.buckets for environment=local)."
  value       = module.lake_storage.bucket_names
}

output "glue_databases" {
  description = "Glue databases per layer (Settings.glue_databases)."
  value       = module.catalog.glue_databases
}

output "dynamodb_tables" {
  description = "DynamoDB tables (Settings.dynamodb_table)."
  value       = module.sources.dynamodb_table_names
}
