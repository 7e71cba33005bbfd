# EMR Serverless for jobs too heavy for a Fargate run (today: the silver rebuild, a Python job started
# through Dagster Pipes, see docs/prod-wiring.md). Jobs are submitted by Dagster runs (role "run") with
# the job role below; nothing runs (or costs) while idle.
locals {
  # Same rules as orchestration/defs/emr.py: ARTIFACTS_PREFIX and emr_log_group(settings).
  emr_artifacts_prefix = "emr/silver-rebuild"
  emr_log_group        = "/aws/emr-serverless/${var.name_prefix}"
  # What the tasks and the run role name the application by.
  emr_application_id  = aws_emrserverless_application.spark.id
  emr_application_arn = aws_emrserverless_application.spark.arn
}

# Driver stdout/stderr of job runs (the Pipes client names it in each StartJobRun request).
resource "aws_cloudwatch_log_group" "emr" {
  name              = local.emr_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_emrserverless_application" "spark" {
  name          = "${var.name_prefix}-spark"
  release_label = var.emr_release_label
  type          = "spark"

  maximum_capacity {
    cpu    = var.emr_maximum_capacity.cpu
    memory = var.emr_maximum_capacity.memory
    disk   = var.emr_maximum_capacity.disk
  }

  auto_start_configuration {
    enabled = true
  }

  auto_stop_configuration {
    enabled              = true
    idle_timeout_minutes = 15
  }

  # In the VPC only when it has a NAT gateway (scale); otherwise jobs use EMR's managed networking,
  # which reaches S3 and CloudWatch Logs (all the silver rebuild needs) without one.
  dynamic "network_configuration" {
    for_each = length(var.emr_subnet_ids) > 0 ? [1] : []
    content {
      subnet_ids         = var.emr_subnet_ids
      security_group_ids = [var.security_group_ids["spark"]]
    }
  }

  tags = var.tags
}

data "aws_iam_policy_document" "emr_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["emr-serverless.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "emr_job" {
  name               = "${var.name_prefix}-emr-job"
  description        = "Runtime role of EMR Serverless Spark jobs"
  assume_role_policy = data.aws_iam_policy_document.emr_assume.json
  tags               = var.tags
}

# Least privilege for the one job that runs here, the silver rebuild (ingestion/jobs/rebuild_silver.py):
# read the bronze CDC changelogs, rewrite silver/<table> and silver/<table>_history, read its code
# (the entry point and the venv archive under emr/ in the artifacts bucket), write its driver logs to
# CloudWatch (Dagster Pipes reads its messages from there). No Glue, no landing, no other lake prefix.
data "aws_iam_policy_document" "emr_job" {
  statement {
    sid       = "ListLakeTables"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arns["lake"]]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["bronze/cdc/*", "silver/*"]
    }
  }
  statement {
    sid       = "ReadBronzeChangelogs"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arns["lake"]}/bronze/cdc/*"]
  }
  statement {
    sid = "ReadWriteSilver"
    actions = [
      "s3:GetObject", "s3:PutObject", "s3:DeleteObject", # delete: delta-rs' expired-log cleanup
      "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    ]
    resources = ["${local.bucket_arns["lake"]}/silver/*"]
  }
  statement {
    sid       = "ListJobCode"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arns["artifacts"]]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.emr_artifacts_prefix}/*"]
    }
  }
  statement {
    sid       = "ReadJobCode"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arns["artifacts"]}/${local.emr_artifacts_prefix}/*"]
  }
  statement {
    sid       = "KmsForS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${var.aws_region}.amazonaws.com"]
    }
  }
  statement {
    sid       = "DriverLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.emr.arn}:*"]
  }
  statement {
    sid       = "FindLogGroup"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["*"] # DescribeLogGroups has no resource-level permissions (a log-group ARN never matches)
  }
}

resource "aws_iam_role_policy" "emr_job" {
  name   = "spark-lakehouse"
  role   = aws_iam_role.emr_job.id
  policy = data.aws_iam_policy_document.emr_job.json
}
