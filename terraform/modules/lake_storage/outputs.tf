output "bucket_names" {
  description = "Bucket name per logical role: landing, lake, athena_results, artifacts (+ extra_buckets)."
  value       = { for k, b in aws_s3_bucket.this : k => b.id }
}

output "bucket_arns" {
  description = "Bucket ARN per logical role."
  value       = { for k, b in aws_s3_bucket.this : k => b.arn }
}

output "landing_bucket" {
  description = "Landing bucket (raw clickstream and partner feeds; expires by lifecycle)."
  value       = aws_s3_bucket.this["landing"].id
}

output "lake_bucket" {
  description = "Lake bucket (Delta bronze/silver, Iceberg marts)."
  value       = aws_s3_bucket.this["lake"].id
}

output "athena_results_bucket" {
  description = "Athena query results bucket."
  value       = aws_s3_bucket.this["athena_results"].id
}

output "artifacts_bucket" {
  description = "Artifacts bucket (dbt manifests, Dagster compute logs, MSK Connect plugin, EMR job code)."
  value       = aws_s3_bucket.this["artifacts"].id
}

output "access_logs_bucket" {
  description = "Bucket receiving S3 server access logs of all the other buckets."
  value       = aws_s3_bucket.access_logs.id
}
