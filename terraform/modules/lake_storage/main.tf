data "aws_caller_identity" "current" {}

locals {
  # One naming rule, shared with lakehouse/settings.py (tests/infra checks they agree).
  landing_bucket        = "${var.name_prefix}-landing"
  lake_bucket           = "${var.name_prefix}-lake"
  athena_results_bucket = "${var.name_prefix}-athena-results"
  artifacts_bucket      = "${var.name_prefix}-artifacts"
  access_logs_bucket    = "${var.name_prefix}-s3-access-logs" # infrastructure only (not used by the app)

  # Expiration rules of current objects, per bucket: prefix "" means the whole bucket.
  expirations = {
    landing        = [{ id = "expire-landing-files", prefix = "", days = var.landing_expiration_days }]
    lake           = [{ id = "expire-tmp", prefix = "tmp/", days = var.tmp_expiration_days }]
    athena_results = [{ id = "expire-query-results", prefix = "", days = var.athena_results_expiration_days }]
    artifacts      = [{ id = "expire-tmp", prefix = "tmp/", days = var.tmp_expiration_days }]
  }

  # Noncurrent-version retention per bucket: short for transient data (landing files and query
  # results must really go away), long with cheaper storage classes for the lake and artifacts.
  noncurrent = {
    landing        = { transitions = [], expiration_days = var.transient_noncurrent_expiration_days }
    athena_results = { transitions = [], expiration_days = var.transient_noncurrent_expiration_days }
  }
  default_noncurrent = { transitions = var.noncurrent_transitions, expiration_days = var.noncurrent_expiration_days }

  core_buckets = {
    landing        = local.landing_bucket
    lake           = local.lake_bucket
    athena_results = local.athena_results_bucket
    artifacts      = local.artifacts_bucket
  }
  extra_bucket_names = { for name in var.extra_buckets : name => "${var.name_prefix}-${name}" }
  buckets            = merge(local.core_buckets, local.extra_bucket_names)
}

# ---------------------------------------------------------------- data buckets
resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_144:Single-region lakehouse: versioning + noncurrent-version retention give point-in-time recovery; landing data is re-deliverable and the lake is rebuildable from bronze, so doubling storage with CRR is not justified. Add aws_s3_bucket_replication_configuration for a DR region if required.
  for_each      = local.buckets
  bucket        = each.value
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { Name = each.value, Role = each.key })
}

resource "aws_s3_bucket_ownership_controls" "this" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.this[each.key].id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  for_each                = local.buckets
  bucket                  = aws_s3_bucket.this[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "this" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.this[each.key].id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.this[each.key].id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true # S3 Bucket Keys: ~99% fewer KMS requests for Delta's many small objects
  }
}

resource "aws_s3_bucket_logging" "this" {
  for_each      = local.buckets
  bucket        = aws_s3_bucket.this[each.key].id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "${each.value}/"
  # S3 checks at PutBucketLogging that the target's bucket policy lets logging.s3.amazonaws.com write;
  # without this ordering the first apply can race the policy and fail.
  depends_on = [aws_s3_bucket_policy.access_logs, aws_s3_bucket_ownership_controls.access_logs]
}

# EventBridge notifications (free without rules): lets Dagster sensors or EventBridge rules react
# to new landing files without polling.
resource "aws_s3_bucket_notification" "this" {
  for_each    = local.buckets
  bucket      = aws_s3_bucket.this[each.key].id
  eventbridge = true
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  for_each = local.buckets
  bucket   = aws_s3_bucket.this[each.key].id

  rule {
    id     = "noncurrent-versions-and-incomplete-uploads"
    status = "Enabled"
    filter {
      prefix = "" # the whole bucket, said explicitly (an empty filter block is ambiguous to the provider)
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
    expiration {
      expired_object_delete_marker = true
    }
    dynamic "noncurrent_version_transition" {
      for_each = lookup(local.noncurrent, each.key, local.default_noncurrent).transitions
      content {
        noncurrent_days = noncurrent_version_transition.value.days
        storage_class   = noncurrent_version_transition.value.storage_class
      }
    }
    noncurrent_version_expiration {
      noncurrent_days = lookup(local.noncurrent, each.key, local.default_noncurrent).expiration_days
    }
  }

  dynamic "rule" {
    for_each = lookup(local.expirations, each.key, [])
    content {
      id     = rule.value.id
      status = "Enabled"
      filter {
        prefix = rule.value.prefix
      }
      expiration {
        days = rule.value.days
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "tls_only" {
  for_each = local.buckets
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.this[each.key].arn,
      "${aws_s3_bucket.this[each.key].arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  for_each   = local.buckets
  bucket     = aws_s3_bucket.this[each.key].id
  policy     = data.aws_iam_policy_document.tls_only[each.key].json
  depends_on = [aws_s3_bucket_public_access_block.this]
}

# ---------------------------------------------------------------- access-log bucket
# S3 server access logging cannot deliver to a bucket whose default encryption is SSE-KMS, so this
# bucket (and only this one) uses SSE-S3.
resource "aws_s3_bucket" "access_logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log target itself; logging it into itself would loop.
  #checkov:skip=CKV_AWS_145:S3 server access log delivery does not support SSE-KMS target buckets; SSE-S3 (AES256) is enforced instead.
  #checkov:skip=CKV_AWS_144:Access logs are audit data for this region only; replication not required.
  #checkov:skip=CKV2_AWS_62:No consumer reacts to new access-log objects; event notifications would only add noise.
  bucket        = local.access_logs_bucket
  force_destroy = var.force_destroy
  tags          = merge(var.tags, { Name = local.access_logs_bucket, Role = "access_logs" })
}

resource "aws_s3_bucket_ownership_controls" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  bucket                  = aws_s3_bucket.access_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {
      prefix = "" # the whole bucket
    }
    expiration {
      days = var.access_log_expiration_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.access_logs]
}

data "aws_iam_policy_document" "access_logs" {
  statement {
    sid       = "S3ServerAccessLogsDelivery"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.access_logs.arn}/*"]
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [for b in aws_s3_bucket.this : b.arn]
    }
  }
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.access_logs.arn, "${aws_s3_bucket.access_logs.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "access_logs" {
  bucket     = aws_s3_bucket.access_logs.id
  policy     = data.aws_iam_policy_document.access_logs.json
  depends_on = [aws_s3_bucket_public_access_block.access_logs]
}
