data "aws_caller_identity" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id

  # One naming rule, shared with lakehouse/settings.py (Settings.cdc_topic) and docker/debezium/.
  cdc_topics         = { for t in var.oltp_tables : t => "${var.cdc_topic_prefix}.${var.oltp_schema}.${t}" }
  table_include_list = join(",", [for t in var.oltp_tables : "${var.oltp_schema}.${t}"])
  heartbeat_topic    = "__debezium-heartbeat.${var.cdc_topic_prefix}"

  # arn:aws:kafka:<region>:<account>:cluster/<name>/<uuid> -> topic/ and group/ resource prefixes.
  cluster_arn  = aws_msk_serverless_cluster.this.arn
  topic_prefix = replace(local.cluster_arn, ":cluster/", ":topic/")
  group_prefix = replace(local.cluster_arn, ":cluster/", ":group/")

  # Same connector settings as docker/debezium/register-postgres.json (tests/infra compares them);
  # only the connection and the secret reference differ.
  connector_configuration = {
    "connector.class"   = "io.debezium.connector.postgresql.PostgresConnector"
    "tasks.max"         = "1"
    "plugin.name"       = "pgoutput"
    "database.hostname" = var.oltp.host
    "database.port"     = tostring(var.oltp.port)
    "database.dbname"   = var.oltp.database
    "database.user"     = var.oltp.user
    "database.password" = "$${secretsmanager:${var.oltp_secret_name}:password}"
    "database.sslmode"  = "require"
    "topic.prefix"      = var.cdc_topic_prefix
    "slot.name"         = var.cdc_slot_name
    "publication.name"  = var.cdc_publication_name
    # The DBA creates the publication (docs/deploy.md, "first deploy"): creating or altering one needs
    # ownership of the tables, which the lakehouse role does not have. With "filtered" Debezium runs
    # ALTER PUBLICATION ... SET TABLE at start and the connector fails ("Unable to update filtered
    # publication"). The local stack keeps "filtered" (it owns its tables; tests/infra checks the
    # difference is exactly this key).
    "publication.autocreate.mode"               = "disabled"
    "table.include.list"                        = local.table_include_list
    "snapshot.mode"                             = "initial"
    "decimal.handling.mode"                     = "string"
    "tombstones.on.delete"                      = "true"
    "skipped.operations"                        = "none" # publish TRUNCATE (skipped by default): the sink empties the table
    "heartbeat.interval.ms"                     = "60000"
    "key.converter"                             = "org.apache.kafka.connect.json.JsonConverter"
    "key.converter.schemas.enable"              = "false"
    "value.converter"                           = "org.apache.kafka.connect.json.JsonConverter"
    "value.converter.schemas.enable"            = "false"
    "topic.creation.default.replication.factor" = "-1"
    "topic.creation.default.partitions"         = "1"
    "topic.creation.default.cleanup.policy"     = "delete"
  }
}

# ---------------------------------------------------------------- MSK Serverless
resource "aws_msk_serverless_cluster" "this" {
  cluster_name = var.name_prefix
  vpc_config {
    subnet_ids         = var.subnet_ids
    security_group_ids = [var.kafka_security_group_id]
  }
  client_authentication {
    sasl {
      iam {
        enabled = true
      }
    }
  }
  tags = var.tags
}

# ---------------------------------------------------------------- MSK Connect (Debezium)
resource "aws_cloudwatch_log_group" "connect" {
  name              = "/msk-connect/${var.name_prefix}/debezium-postgres"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "connect_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["kafkaconnect.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "connect" {
  name               = "${var.name_prefix}-msk-connect"
  description        = "MSK Connect service execution role of the Debezium PostgreSQL connector"
  assume_role_policy = data.aws_iam_policy_document.connect_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "connect" {
  statement {
    sid = "Cluster"
    # WriteDataIdempotently: Kafka Connect's producers are idempotent by default (enable.idempotence
    # = true since Kafka 3.0); MSK refuses their InitProducerId without it.
    actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster", "kafka-cluster:WriteDataIdempotently"]
    resources = [local.cluster_arn]
  }
  statement {
    sid = "CdcAndConnectTopics"
    actions = [
      "kafka-cluster:CreateTopic",
      "kafka-cluster:DescribeTopic",
      "kafka-cluster:DescribeTopicDynamicConfiguration",
      "kafka-cluster:WriteData",
      "kafka-cluster:ReadData",
    ]
    resources = [
      "${local.topic_prefix}/${var.cdc_topic_prefix}.${var.oltp_schema}.*",
      "${local.topic_prefix}/${local.heartbeat_topic}",
      "${local.topic_prefix}/__amazon_msk_connect_*",
    ]
  }
  statement {
    sid       = "ConnectWorkerGroups"
    actions   = ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"]
    resources = ["${local.group_prefix}/__amazon_msk_connect_*", "${local.group_prefix}/connect-*"]
  }
  statement {
    sid       = "OltpPassword"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = [var.oltp_secret_arn]
  }
  statement {
    sid       = "DecryptSecret"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["secretsmanager.${var.aws_region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role_policy" "connect" {
  name   = "debezium-postgres"
  role   = aws_iam_role.connect.id
  policy = data.aws_iam_policy_document.connect.json
}

resource "aws_mskconnect_custom_plugin" "debezium" {
  count        = var.create_connector ? 1 : 0
  name         = "${var.name_prefix}-debezium-postgres"
  description  = "Debezium PostgreSQL connector with the MSK config providers"
  content_type = "ZIP"
  location {
    s3 {
      bucket_arn = var.artifacts_bucket_arn
      file_key   = var.debezium_plugin_key
    }
  }
}

resource "aws_mskconnect_worker_configuration" "debezium" {
  count       = var.create_connector ? 1 : 0
  name        = "${var.name_prefix}-debezium-postgres"
  description = "JSON converters without schemas; secrets resolved from Secrets Manager"
  properties_file_content = join("\n", [
    "key.converter=org.apache.kafka.connect.json.JsonConverter",
    "key.converter.schemas.enable=false",
    "value.converter=org.apache.kafka.connect.json.JsonConverter",
    "value.converter.schemas.enable=false",
    "config.providers=secretsmanager",
    "config.providers.secretsmanager.class=com.amazonaws.kafka.config.providers.SecretsManagerConfigProvider",
    "config.providers.secretsmanager.param.region=${var.aws_region}",
  ])
}

resource "aws_mskconnect_connector" "debezium" {
  count                      = var.create_connector ? 1 : 0
  name                       = "${var.name_prefix}-postgres-cdc"
  description                = "Debezium CDC of ${var.oltp.database}.${var.oltp_schema} into ${var.cdc_topic_prefix}.${var.oltp_schema}.*"
  kafkaconnect_version       = var.kafkaconnect_version
  service_execution_role_arn = aws_iam_role.connect.arn
  connector_configuration    = local.connector_configuration

  capacity {
    provisioned_capacity {
      mcu_count    = var.connector_mcu_count
      worker_count = 1 # Debezium's PostgreSQL connector runs a single task
    }
  }

  kafka_cluster {
    apache_kafka_cluster {
      bootstrap_servers = aws_msk_serverless_cluster.this.bootstrap_brokers_sasl_iam
      vpc {
        security_groups = [var.connect_security_group_id]
        subnets         = var.subnet_ids
      }
    }
  }

  kafka_cluster_client_authentication {
    authentication_type = "IAM"
  }

  kafka_cluster_encryption_in_transit {
    encryption_type = "TLS"
  }

  plugin {
    custom_plugin {
      arn      = aws_mskconnect_custom_plugin.debezium[0].arn
      revision = aws_mskconnect_custom_plugin.debezium[0].latest_revision
    }
  }

  worker_configuration {
    arn      = aws_mskconnect_worker_configuration.debezium[0].arn
    revision = aws_mskconnect_worker_configuration.debezium[0].latest_revision
  }

  log_delivery {
    worker_log_delivery {
      cloudwatch_logs {
        enabled   = true
        log_group = aws_cloudwatch_log_group.connect.name
      }
    }
  }

  depends_on = [aws_iam_role_policy.connect]
}
