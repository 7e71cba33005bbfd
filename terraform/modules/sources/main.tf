# Operational sources of the shop that the lakehouse ingests: the DynamoDB tables (carts, sessions,
# reviews) and the connection secret of the OLTP PostgreSQL database captured by Debezium.
locals {
  # One naming rule, shared with lakehouse/settings.py (Settings.dynamodb_table).
  dynamodb_table_names = { for logical, _ in var.dynamodb_tables : logical => "${var.name_prefix}-${logical}" }
}

resource "aws_dynamodb_table" "this" {
  for_each                    = var.create_dynamodb_tables ? var.dynamodb_tables : {}
  name                        = local.dynamodb_table_names[each.key]
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = each.value
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = each.value
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }

  tags = merge(var.tags, { Name = local.dynamodb_table_names[each.key] })
}

# ---------------------------------------------------------------- OLTP source credentials
# The password is generated here and stored only in Secrets Manager (and the encrypted state);
# the DBA applies it to the `lakehouse` role on the source (see docs/deploy.md). Rotation can
# replace the value later: Terraform ignores changes made outside it.
resource "random_password" "oltp" {
  count            = var.create_oltp_secret ? 1 : 0
  length           = 32
  special          = true
  override_special = "-_.~" # safe in libpq keyword strings and URLs
}

resource "aws_secretsmanager_secret" "oltp" {
  #checkov:skip=CKV2_AWS_57:The password belongs to a role on the externally managed OLTP database; automatic rotation needs a rotation Lambda with network access to it, which is environment specific. Rotate with the documented manual procedure.
  count                   = var.create_oltp_secret ? 1 : 0
  name                    = "${var.name_prefix}/oltp-source"
  description             = "Connection to the OLTP PostgreSQL source (Debezium, Dagster runs)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "oltp" {
  count         = var.create_oltp_secret ? 1 : 0
  secret_id     = aws_secretsmanager_secret.oltp[0].id
  secret_string = jsonencode({
    engine   = "postgres"
    host     = var.oltp.host
    port     = var.oltp.port
    dbname   = var.oltp.database
    username = var.oltp.user
    password = random_password.oltp[0].result
  })
  lifecycle {
    ignore_changes = [secret_string]
  }
}
