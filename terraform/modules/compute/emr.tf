# EMR Serverless (Spark + Delta Lake) for backfills and compactions too heavy for a Fargate run.
# Jobs are submitted by Dagster runs (role "run") with the job role below; nothing runs while idle.
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

  network_configuration {
    subnet_ids         = var.private_subnet_ids
    security_group_ids = [var.security_group_ids["spark"]]
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

data "aws_iam_policy_document" "emr_job" {
  statement {
    sid       = "ListBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.bucket_arns["landing"], local.bucket_arns["lake"], local.bucket_arns["artifacts"]]
  }
  statement {
    sid       = "ReadLandingAndJobCode"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arns["landing"]}/*", "${local.bucket_arns["artifacts"]}/emr/*"]
  }
  statement {
    sid       = "ReadWriteLake"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${local.bucket_arns["lake"]}/*"]
  }
  statement {
    sid       = "JobLogs"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${local.bucket_arns["artifacts"]}/emr/logs/*"]
  }
  statement {
    sid       = "KmsData"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid       = "GlueCatalog"
    actions   = concat(local.glue_read_actions, local.glue_write_actions)
    resources = local.glue_resources
  }
}

resource "aws_iam_role_policy" "emr_job" {
  name   = "spark-lakehouse"
  role   = aws_iam_role.emr_job.id
  policy = data.aws_iam_policy_document.emr_job.json
}
