output "buckets" {
  description = "Bucket names by role (Settings.landing_bucket, lake_bucket, athena_results_bucket, artifacts_bucket)."
  value       = module.lake_storage.bucket_names
}

output "glue_databases" {
  description = "Glue databases per layer (Settings.glue_databases)."
  value       = module.catalog.glue_databases
}

output "delta_tables" {
  description = "Delta tables registered in Glue => S3 location."
  value       = module.catalog.delta_tables
}

output "athena_workgroup" {
  description = "Athena workgroup (Settings.athena_workgroup_name)."
  value       = module.catalog.athena_workgroup
}

output "dynamodb_tables" {
  description = "DynamoDB source tables (Settings.dynamodb_table)."
  value       = module.sources.dynamodb_table_names
}

output "kms_key_arn" {
  description = "Customer-managed key of the lakehouse."
  value       = module.kms.key_arn
}

output "profile" {
  description = "Deployment profile (small or scale)."
  value       = var.profile
}

output "msk_cluster_arn" {
  description = "MSK Serverless cluster ARN (profile scale; null in small)."
  value       = local.msk ? module.streaming[0].cluster_arn : null
}

output "cdc_topics" {
  description = "Debezium topics per OLTP table (Settings.cdc_topic; profile scale)."
  value       = local.msk ? module.streaming[0].cdc_topics : {}
}

output "cdc_kinesis_stream" {
  description = "The CDC Kinesis stream (Settings.cdc_kinesis_stream; profile small; null in scale)."
  value       = local.msk ? null : module.kinesis[0].stream_name
}

output "ecs_cluster_arn" {
  description = "ECS cluster running the Dagster services and runs."
  value       = module.compute.cluster_arn
}

output "ecr_repository_url" {
  description = "Push the lakehouse image here."
  value       = module.compute.ecr_repository_url
}

output "ecs_service" {
  description = "The always-on ECS service (containers: code-location, webserver, daemon, cdc-sink and, in small, cdc-publisher)."
  value       = module.compute.service_name
}

output "dagster_db_secret_arn" {
  description = "Secret <name_prefix>/dagster-db with the Dagster database credentials (also the CDC publisher's offset store)."
  value       = module.compute.dagster_db_secret_arn
}

output "emr_application_id" {
  description = "EMR Serverless application for heavy Spark work."
  value       = module.compute.emr_application_id
}

output "oltp_secret_arn" {
  description = "Secret holding the OLTP source password to apply to the lakehouse role."
  value       = module.sources.oltp_secret_arn
}

output "lakehouse_env" {
  description = "LAKEHOUSE_* environment of the code location and run tasks (no secrets)."
  value       = module.compute.lakehouse_env
}
