output "cluster_arn" {
  description = "ARN of the ECS cluster."
  value       = aws_ecs_cluster.this.arn
}

output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "ecr_repository_url" {
  description = "ECR repository of the lakehouse image (push <url>:<image_tag>)."
  value       = aws_ecr_repository.this.repository_url
}

output "service_names" {
  description = "ECS service per component (webserver, daemon, code_location)."
  value       = { for k, s in aws_ecs_service.this : k => s.name }
}

output "task_definition_arns" {
  description = "Task definition ARN (with revision) per component, including run."
  value       = { for k, t in aws_ecs_task_definition.this : k => t.arn }
}

output "task_role_arns" {
  description = "Task role ARN per component."
  value       = { for k, r in aws_iam_role.task : k => r.arn }
}

output "emr_application_id" {
  description = "EMR Serverless application id."
  value       = aws_emrserverless_application.spark.id
}

output "emr_job_role_arn" {
  description = "Runtime role for EMR Serverless job runs."
  value       = aws_iam_role.emr_job.arn
}

output "dagster_db_endpoint" {
  description = "Endpoint of the Dagster storage database."
  value       = aws_db_instance.dagster.endpoint
}

output "dagster_db_secret_arn" {
  description = "Secrets Manager secret (managed by RDS) with the Dagster database credentials."
  value       = local.db_secret_arn
}

output "code_location_host" {
  description = "Private DNS name of the Dagster code server (port 4000)."
  value       = local.code_host
}

output "lakehouse_env" {
  description = "LAKEHOUSE_* environment the code location and run tasks get (secrets excluded)."
  value       = local.lakehouse_env
}

output "dagster_env" {
  description = "Dagster instance environment of all Dagster tasks (secrets excluded)."
  value       = local.dagster_env
}
