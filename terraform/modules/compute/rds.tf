# PostgreSQL for Dagster's run, event-log and schedule storage. The master password is generated
# here and kept in a Secrets Manager secret (CMK-encrypted) that ECS injects at task start. Not the
# RDS-managed secret: RDS rotates that every 7 days, and the long-running webserver, daemon and code
# location would keep the old password until restarted. Rotation is an explicit, rolling procedure
# instead (docs/deploy.md, "Rotating the Dagster database password").
resource "random_password" "dagster_db" {
  length           = 40
  special          = true
  override_special = "-_.~!#%^*()=+" # RDS forbids / @ " and spaces
}

resource "aws_secretsmanager_secret" "dagster_db" {
  #checkov:skip=CKV2_AWS_57:Automatic rotation would change the password under running ECS services that read it once at start; rotation is the documented rolling procedure (new random_password, apply, force a new deployment).
  name                    = "${var.name_prefix}/dagster-db"
  description             = "Master credentials of the Dagster storage database (injected into the ECS tasks)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = 7
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "dagster_db" {
  secret_id     = aws_secretsmanager_secret.dagster_db.id
  secret_string = jsonencode({ username = "dagster", password = random_password.dagster_db.result })
}
resource "aws_db_subnet_group" "dagster" {
  name        = "${var.name_prefix}-dagster"
  description = "Private subnets of the Dagster storage database"
  subnet_ids  = var.private_subnet_ids
  tags        = var.tags
}

resource "aws_db_parameter_group" "dagster" {
  name        = "${var.name_prefix}-dagster-pg${var.db_engine_version}"
  family      = "postgres${var.db_engine_version}"
  description = "Dagster storage: TLS only, slow-statement and DDL logging"

  parameter {
    name  = "rds.force_ssl"
    value = "1"
  }
  parameter {
    name  = "log_statement"
    value = "ddl"
  }
  parameter {
    name  = "log_min_duration_statement"
    value = "1000"
  }
  tags = var.tags
}

data "aws_iam_policy_document" "rds_monitoring_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["monitoring.rds.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "rds_monitoring" {
  name               = "${var.name_prefix}-rds-monitoring"
  description        = "RDS enhanced monitoring of the Dagster storage database"
  assume_role_policy = data.aws_iam_policy_document.rds_monitoring_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "rds_monitoring" {
  role       = aws_iam_role.rds_monitoring.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
}

resource "aws_db_instance" "dagster" {
  #checkov:skip=CKV_AWS_157:Dagster's run/event storage is operational metadata, not customer data; single-AZ with 7-day PITR backups is the cost/availability trade-off chosen here (set db_multi_az = true for a standby).
  identifier     = "${var.name_prefix}-dagster"
  engine         = "postgres"
  engine_version = var.db_engine_version
  instance_class = var.db_instance_class

  db_name                       = "dagster"
  username                      = "dagster"
  password                      = random_password.dagster_db.result
  port                          = 5432

  allocated_storage     = var.db_allocated_storage
  max_allocated_storage = var.db_max_allocated_storage
  storage_type          = "gp3"
  storage_encrypted     = true
  kms_key_id            = var.kms_key_arn

  db_subnet_group_name   = aws_db_subnet_group.dagster.name
  vpc_security_group_ids = [var.security_group_ids["database"]]
  publicly_accessible    = false
  multi_az               = var.db_multi_az
  parameter_group_name   = aws_db_parameter_group.dagster.name

  iam_database_authentication_enabled = true
  auto_minor_version_upgrade          = true
  allow_major_version_upgrade         = false
  backup_retention_period             = var.db_backup_retention_days
  copy_tags_to_snapshot               = true
  deletion_protection                 = true
  skip_final_snapshot                 = false
  final_snapshot_identifier           = "${var.name_prefix}-dagster-final"
  enabled_cloudwatch_logs_exports     = ["postgresql", "upgrade"]

  monitoring_interval                   = 60
  monitoring_role_arn                   = aws_iam_role.rds_monitoring.arn
  performance_insights_enabled          = var.db_performance_insights_enabled
  performance_insights_kms_key_id       = var.db_performance_insights_enabled ? var.kms_key_arn : null
  performance_insights_retention_period = var.db_performance_insights_enabled ? 7 : null

  tags = var.tags
}
