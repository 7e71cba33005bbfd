data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  arn_suffix = "${var.aws_region}:${local.account_id}"

  cluster_name   = var.name_prefix
  image          = "${aws_ecr_repository.this.repository_url}:${var.image_tag}"
  service_family = "${var.name_prefix}-lakehouse"
  run_family     = "${var.name_prefix}-run"
  # The code server is a container of the same task as the webserver and the daemon: they share the
  # task's network namespace, so it listens on loopback only (no service discovery, no gRPC port
  # open in any security group).
  code_host      = "localhost"
  dagster_home   = "/opt/dagster/ecs" # docker/ecs/dagster.yaml + workspace.yaml inside the image
  lakehouse_home = "/var/lib/lakehouse"
  task_subnets   = length(var.task_subnet_ids) > 0 ? var.task_subnet_ids : var.private_subnet_ids

  bucket_arns = { for k, name in var.buckets : k => "arn:${local.partition}:s3:::${name}" }
}

# ---------------------------------------------------------------- image registry
resource "aws_ecr_repository" "this" {
  name                 = var.name_prefix
  image_tag_mutability = "IMMUTABLE"
  image_scanning_configuration {
    scan_on_push = true
  }
  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }
  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the last ${var.ecr_keep_images} images (rollback window)"
      selection    = { tagStatus = "any", countType = "imageCountMoreThan", countNumber = var.ecr_keep_images }
      action       = { type = "expire" }
    }]
  })
}

# ---------------------------------------------------------------- logs
resource "aws_cloudwatch_log_group" "ecs" {
  name              = "/ecs/${var.name_prefix}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "exec" {
  name              = "/ecs/${var.name_prefix}/exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# ---------------------------------------------------------------- cluster
resource "aws_ecs_cluster" "this" {
  #checkov:skip=CKV_AWS_65:Container Insights is a per-profile choice (var.container_insights): on in scale, off in small, where its custom metrics would be a noticeable share of a $45 budget (terraform/COSTS.md); the service's own logs and Dagster's UI remain.
  name = local.cluster_name
  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "OVERRIDE"
      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }
  tags = var.tags
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]
  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}
