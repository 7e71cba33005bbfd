# One customer-managed key for the lakehouse's data at rest: S3 buckets, Athena results, Glue catalog,
# Secrets Manager, RDS, CloudWatch Logs, ECR. IAM principals get access through their own policies
# (the key policy delegates to the account); only CloudWatch Logs needs a service statement.
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
}

resource "aws_kms_key" "this" {
  description             = "${var.name_prefix}: lakehouse data at rest"
  enable_key_rotation     = true
  rotation_period_in_days = 365
  deletion_window_in_days = var.deletion_window_in_days
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersKeyThroughIam"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "CloudWatchLogsOfThisAccount"
        Effect    = "Allow"
        Principal = { Service = "logs.${var.aws_region}.amazonaws.com" }
        # No kms:Describe*: DescribeKey carries no encryption context, so under this condition it could
        # never match (parliament: UNKNOWN_CONDITION_FOR_ACTION); CloudWatch Logs does not need it.
        Action   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*"]
        Resource = "*"
        Condition = {
          # The encryption-context key is a string: StringLike matches the ARN pattern the same way
          # ArnLike would, and is the type IAM declares for it.
          StringLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:*"
          }
        }
      },
    ]
  })
  tags = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name_prefix}"
  target_key_id = aws_kms_key.this.key_id
}
