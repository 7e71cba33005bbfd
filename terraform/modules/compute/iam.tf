# Task roles (what the code may do) and execution roles (what ECS does to start it):
#   service     : the always-on task: Dagster webserver, daemon and code server (sensors), the
#                 follow-mode CDC sink and, with Kinesis, the Debezium publisher
#   run         : one ECS task per Dagster run: ingestion, Delta writes, dbt on Athena, EMR jobs
#   maintenance : the task role of delta_maintenance runs only (ECS task-role override set by the
#                 job's tags): the run role plus deleting compacted-away files of bronze/cdc
#   emr_job     : EMR Serverless job runs (separate role passed by the runs; see emr.tf)
# Permissions are customer-managed policies, one per capability (each stays under IAM's 6,144
# character limit; an inline role policy would share one 10,240 character budget per role), and
# every KMS permission is limited to the AWS service that uses the key (kms:ViaService).
locals {
  task_roles      = ["service", "run", "maintenance"]
  execution_roles = ["service", "run"]

  ecs_task_principal_condition = {
    test     = "StringEquals"
    variable = "aws:SourceAccount"
    values   = [local.account_id]
  }

  glue_catalog_arn  = "arn:${local.partition}:glue:${local.arn_suffix}:catalog"
  glue_database_arn = [for db in values(var.glue_databases) : "arn:${local.partition}:glue:${local.arn_suffix}:database/${db}"]
  glue_table_arns   = [for db in values(var.glue_databases) : "arn:${local.partition}:glue:${local.arn_suffix}:table/${db}/*"]
  glue_resources    = concat([local.glue_catalog_arn], local.glue_database_arn, local.glue_table_arns)
  # dbt writes only the marts database; bronze/silver tables are registered by terraform (catalog module)
  glue_marts_write_resources = [
    local.glue_catalog_arn,
    "arn:${local.partition}:glue:${local.arn_suffix}:database/${var.glue_databases["marts"]}",
    "arn:${local.partition}:glue:${local.arn_suffix}:table/${var.glue_databases["marts"]}/*",
  ]

  glue_read_actions = [
    "glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables",
    "glue:GetPartition", "glue:GetPartitions", "glue:BatchGetPartition", "glue:GetTableVersions",
  ]
  glue_write_actions = [
    "glue:CreateTable", "glue:UpdateTable", "glue:DeleteTable", "glue:DeleteTableVersion",
    "glue:BatchDeleteTableVersion", "glue:CreatePartition", "glue:BatchCreatePartition",
    "glue:UpdatePartition", "glue:BatchUpdatePartition", "glue:DeletePartition", "glue:BatchDeletePartition",
  ]

  run_task_definition_arn = "arn:${local.partition}:ecs:${local.arn_suffix}:task-definition/${local.run_family}:*"
  cluster_arn             = "arn:${local.partition}:ecs:${local.arn_suffix}:cluster/${local.cluster_name}"
  ecs_task_arns           = "arn:${local.partition}:ecs:${local.arn_suffix}:task/${local.cluster_name}/*"
  compute_logs_prefix     = "dagster/compute-logs"
  lake_arn                = local.bucket_arns["lake"]

  # Where KMS may be used, per principal: only through these services.
  kms_via = { for service in ["s3", "dynamodb", "kinesis", "glue", "athena", "secretsmanager", "ecr", "sns"] : service => "${service}.${var.aws_region}.amazonaws.com" }

  # CDC transport statements: exactly one of the two exists.
  kafka_enabled    = var.cdc.transport == "kafka" && var.kafka.cluster_arn != ""
  kinesis_enabled  = var.cdc.transport == "kinesis"
  kafka_topic_arns = ["${var.kafka.topic_arn_prefix}/${var.kafka.cdc_topic_pattern}"]
  kafka_group_arns = ["${var.kafka.group_arn_prefix}/${var.kafka_consumer_group_prefix}*"]

  # Lake prefixes a writer may delete objects under. Delta writers delete: VACUUM (files removed by
  # compaction or MERGE) and the expired-log cleanup that follows a checkpoint (_delta_log/ of any
  # table). Bronze CDC data files are the only copy of the changelog (the stream keeps 24 h): only
  # the maintenance role deletes there, and only what VACUUM selects.
  deletable_lake_prefixes = [
    "silver/*",
    "bronze/dynamodb/*", "bronze/landing/*", "bronze/marketing/*", # re-loadable from their sources
    "marts/*",                                                     # dbt/Athena Iceberg marts (derived)
    "tmp/*",
    "*/_delta_log/*",
  ]
}

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = local.ecs_task_principal_condition.test
      variable = local.ecs_task_principal_condition.variable
      values   = local.ecs_task_principal_condition.values
    }
  }
}

resource "aws_iam_role" "task" {
  for_each           = toset(local.task_roles)
  name               = "${var.name_prefix}-${each.key}-task"
  description        = "Task role of the lakehouse ${each.key} (ECS)"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role" "execution" {
  for_each           = toset(local.execution_roles)
  name               = "${var.name_prefix}-${each.key}-exec"
  description        = "Task execution role of the lakehouse ${each.key}: image pull, logs, secrets"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

# ---------------------------------------------------------------- execution roles
data "aws_iam_policy_document" "execution" {
  for_each = toset(local.execution_roles)
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # account-level API without resource-level permissions
  }
  statement {
    sid       = "PullLakehouseImage"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = [aws_ecr_repository.this.arn]
  }
  statement {
    sid       = "Logs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.ecs.arn}:*"]
  }
  statement {
    sid       = "Secrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [local.db_secret_arn, var.oltp_secret_arn]
  }
  statement {
    sid       = "DecryptImageAndSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via["secretsmanager"], local.kms_via["ecr"]]
    }
  }
}

# ---------------------------------------------------------------- capabilities
# Every Dagster process loads the instance (docker/ecs/dagster.yaml), whose EcsRunLauncher
# describes the run task definition at start-up and whose compute log manager writes to S3.
data "aws_iam_policy_document" "dagster_instance" {
  statement {
    sid       = "EcsRunLauncherInit"
    actions   = ["ecs:DescribeTaskDefinition"]
    resources = ["*"] # DescribeTaskDefinition has no resource-level permissions
  }
  statement {
    sid       = "ComputeLogsList"
    actions   = ["s3:ListBucket"]
    resources = [local.bucket_arns["artifacts"]]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.compute_logs_prefix}/*"]
    }
  }
  statement {
    sid       = "ComputeLogsObjects"
    actions   = ["s3:GetObject", "s3:PutObject"]
    resources = ["${local.bucket_arns["artifacts"]}/${local.compute_logs_prefix}/*"]
  }
  statement {
    sid       = "KmsForS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via["s3"]]
    }
  }
}

# The daemon launches runs, the webserver terminates them and shows their logs.
data "aws_iam_policy_document" "operate_runs" {
  statement {
    sid       = "DescribeAndStopRunTasks"
    actions   = ["ecs:DescribeTasks", "ecs:StopTask"]
    resources = [local.ecs_task_arns]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [local.cluster_arn]
    }
  }
  statement {
    sid       = "ReadRunLogs"
    actions   = ["logs:GetLogEvents", "logs:FilterLogEvents"]
    resources = ["${aws_cloudwatch_log_group.ecs.arn}:*"]
  }
  statement {
    sid       = "LaunchRuns"
    actions   = ["ecs:RunTask"]
    resources = [local.run_task_definition_arn]
    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [local.cluster_arn]
    }
  }
  statement {
    sid       = "TagRunTasks"
    actions   = ["ecs:TagResource"]
    resources = [local.ecs_task_arns]
    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }
  statement {
    sid       = "PassRunRoles"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.task["run"].arn, aws_iam_role.task["maintenance"].arn, aws_iam_role.execution["run"].arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }
  statement {
    sid       = "CopyOwnNetworkConfiguration"
    actions   = ["ec2:DescribeNetworkInterfaces"]
    resources = ["*"] # Describe* EC2 APIs have no resource-level permissions
  }
}

# ECS Exec into the webserver container: the only way to the UI (port forwarding).
data "aws_iam_policy_document" "ecs_exec" {
  statement {
    sid = "EcsExecPortForwarding"
    actions = [
      "ssmmessages:CreateControlChannel", "ssmmessages:CreateDataChannel",
      "ssmmessages:OpenControlChannel", "ssmmessages:OpenDataChannel",
    ]
    resources = ["*"] # Session Manager message channels have no resource-level permissions
  }
  statement {
    sid       = "EcsExecLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.exec.arn}:*"]
  }
  statement {
    sid       = "EcsExecLogGroups"
    actions   = ["logs:DescribeLogGroups"]
    resources = ["*"] # DescribeLogGroups has no resource-level permissions
  }
}

# Sensors (code server): new landing files, lake progress, the catalog. Read only.
data "aws_iam_policy_document" "sensors" {
  statement {
    sid       = "ListSourcesAndLake"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.bucket_arns["landing"], local.lake_arn, local.bucket_arns["artifacts"]]
  }
  statement {
    sid       = "ReadLandingLakeArtifacts"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arns["landing"]}/*", "${local.bucket_arns["artifacts"]}/*", "${local.lake_arn}/*"]
  }
  statement {
    sid       = "ReadCatalog"
    actions   = local.glue_read_actions
    resources = local.glue_resources
  }
}

# Read the CDC stream: the follow-mode sink, sink runs (catch-up) and the sensor's probe.
data "aws_iam_policy_document" "cdc_read" {
  dynamic "statement" {
    for_each = local.kinesis_enabled ? [1] : []
    content {
      sid = "ReadCdcStream"
      actions = [
        "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:ListShards",
        "kinesis:GetShardIterator", "kinesis:GetRecords",
      ]
      resources = [var.cdc.kinesis_stream_arn]
    }
  }
  dynamic "statement" {
    for_each = local.kinesis_enabled ? [1] : []
    content {
      sid       = "DecryptCdcStream"
      actions   = ["kms:Decrypt"]
      resources = [var.kms_key_arn]
      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [local.kms_via["kinesis"]]
      }
    }
  }
  dynamic "statement" {
    for_each = local.kafka_enabled ? [1] : []
    content {
      sid       = "KafkaCluster"
      actions   = ["kafka-cluster:Connect", "kafka-cluster:DescribeCluster"]
      resources = [var.kafka.cluster_arn]
    }
  }
  dynamic "statement" {
    for_each = local.kafka_enabled ? [1] : []
    content {
      sid       = "ReadCdcTopics"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
      resources = local.kafka_topic_arns
    }
  }
  dynamic "statement" {
    for_each = local.kafka_enabled ? [1] : []
    content {
      sid       = "ConsumerGroups"
      actions   = ["kafka-cluster:AlterGroup", "kafka-cluster:DescribeGroup"]
      resources = local.kafka_group_arns
    }
  }
  # Without a CDC transport the document still needs one statement.
  dynamic "statement" {
    for_each = local.kinesis_enabled || local.kafka_enabled ? [] : [1]
    content {
      sid       = "NoCdcTransport"
      effect    = "Deny"
      actions   = ["kinesis:GetRecords"]
      resources = ["*"]
    }
  }
}

# The follow-mode sink: append bronze/cdc, MERGE silver and history (outside Dagster runs).
data "aws_iam_policy_document" "cdc_sink" {
  statement {
    sid       = "ListLake"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.lake_arn]
  }
  statement {
    sid       = "WriteCdcTables"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${local.lake_arn}/bronze/cdc/*", "${local.lake_arn}/silver/*"]
  }
  statement {
    sid       = "DeleteSilverAndExpiredLogs"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.lake_arn}/silver/*", "${local.lake_arn}/bronze/cdc/*/_delta_log/*"]
  }
  statement {
    sid       = "KmsForS3"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via["s3"]]
    }
  }
}

# The embedded Debezium publisher (profile small): write the CDC stream.
data "aws_iam_policy_document" "cdc_publish" {
  statement {
    sid       = "WriteCdcStream"
    actions   = ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary", "kinesis:ListShards"]
    resources = [var.cdc.kinesis_stream_arn == "" ? "arn:${local.partition}:kinesis:${local.arn_suffix}:stream/${var.name_prefix}-cdc" : var.cdc.kinesis_stream_arn]
  }
  statement {
    sid       = "EncryptCdcStream"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via["kinesis"]]
    }
  }
}

# Runs (the data plane): sources, lake, marts, Athena, DynamoDB.
data "aws_iam_policy_document" "run_data" {
  statement {
    sid       = "ListBuckets"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation", "s3:ListBucketMultipartUploads"]
    resources = values(local.bucket_arns)
  }
  statement {
    sid       = "ReadLanding"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arns["landing"]}/*"]
  }
  statement {
    sid       = "ReadWriteLake"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${local.lake_arn}/*"]
  }
  statement {
    sid       = "DeleteOnlyWhereRewritten"
    actions   = ["s3:DeleteObject"]
    resources = [for prefix in local.deletable_lake_prefixes : "${local.lake_arn}/${prefix}"]
  }
  statement {
    sid       = "AthenaResults"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"]
    resources = ["${local.bucket_arns["athena_results"]}/*"]
  }
  statement {
    sid       = "ReadArtifacts"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arns["artifacts"]}/*"]
  }
  statement {
    sid       = "WriteArtifacts"
    actions   = ["s3:PutObject"]
    resources = ["${local.bucket_arns["artifacts"]}/dbt/*", "${local.bucket_arns["artifacts"]}/emr/*", "${local.bucket_arns["artifacts"]}/tmp/*"]
  }
  statement {
    sid       = "KmsData"
    actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via["s3"], local.kms_via["dynamodb"], local.kms_via["glue"], local.kms_via["athena"]]
    }
  }
  statement {
    sid       = "GlueCatalogRead"
    actions   = local.glue_read_actions
    resources = local.glue_resources
  }
  statement {
    sid       = "GlueMartsWrite"
    actions   = local.glue_write_actions
    resources = local.glue_marts_write_resources
  }
  statement {
    sid = "AthenaWorkgroup"
    actions = [
      "athena:StartQueryExecution", "athena:StopQueryExecution", "athena:GetQueryExecution",
      "athena:GetQueryResults", "athena:GetQueryResultsStream", "athena:BatchGetQueryExecution",
      "athena:ListQueryExecutions", "athena:GetWorkGroup", "athena:GetQueryRuntimeStatistics",
    ]
    resources = ["arn:${local.partition}:athena:${local.arn_suffix}:workgroup/${var.athena_workgroup}"]
  }
  statement {
    sid = "AthenaCatalog"
    actions = [
      "athena:GetDataCatalog", "athena:GetDatabase", "athena:ListDatabases",
      "athena:GetTableMetadata", "athena:ListTableMetadata",
    ]
    resources = ["arn:${local.partition}:athena:${local.arn_suffix}:datacatalog/AwsDataCatalog"]
  }
  statement {
    sid     = "ReadDynamoDbSources"
    actions = ["dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive", "dynamodb:Scan", "dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem"]
    resources = flatten([
      for name in values(var.dynamodb_table_names) : [
        "arn:${local.partition}:dynamodb:${local.arn_suffix}:table/${name}",
        "arn:${local.partition}:dynamodb:${local.arn_suffix}:table/${name}/index/*",
      ]
    ])
  }
}

# Runs: EMR Serverless jobs through Dagster Pipes (PipesEMRServerlessClient: start/poll/cancel job
# runs of this application; it also reads the application and the job-run dashboard URL, and tags
# runs with Dagster's run id).
data "aws_iam_policy_document" "run_emr" {
  statement {
    sid = "EmrServerlessJobs"
    actions = [
      "emr-serverless:StartJobRun", "emr-serverless:GetJobRun", "emr-serverless:CancelJobRun",
      "emr-serverless:GetDashboardForJobRun", "emr-serverless:GetApplication", "emr-serverless:TagResource",
    ]
    resources = [local.emr_application_arn, "${local.emr_application_arn}/jobruns/*"]
  }
  statement {
    sid       = "ReadEmrJobLogs" # Pipes messages of the job run (driver stdout in CloudWatch Logs)
    actions   = ["logs:GetLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.emr.arn}:*"]
  }
  statement {
    sid       = "PassEmrJobRole"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.emr_job.arn]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["emr-serverless.amazonaws.com"]
    }
  }
}

# delta_maintenance runs: VACUUM of the bronze CDC changelogs (files compaction replaced).
data "aws_iam_policy_document" "maintain_bronze_cdc" {
  statement {
    sid       = "VacuumBronzeCdc"
    actions   = ["s3:DeleteObject"]
    resources = ["${local.lake_arn}/bronze/cdc/*"]
  }
}

# Publish notifications to the alerts topic (the alert sensor runs in the service task; the
# topic is KMS-encrypted, so publishing needs the key through SNS).
data "aws_iam_policy_document" "publish_alerts" {
  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [var.alerts_topic_arn]
  }
  statement {
    sid       = "EncryptAlerts"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = [local.kms_via["sns"]]
    }
  }
}

locals {
  alerts_enabled = var.alerts_enabled
  policy_documents = merge(
    {
      dagster-instance    = data.aws_iam_policy_document.dagster_instance.json
      operate-runs        = data.aws_iam_policy_document.operate_runs.json
      ecs-exec            = data.aws_iam_policy_document.ecs_exec.json
      sensors             = data.aws_iam_policy_document.sensors.json
      cdc-read            = data.aws_iam_policy_document.cdc_read.json
      cdc-sink            = data.aws_iam_policy_document.cdc_sink.json
      run-data            = data.aws_iam_policy_document.run_data.json
      run-emr             = data.aws_iam_policy_document.run_emr.json
      maintain-bronze-cdc = data.aws_iam_policy_document.maintain_bronze_cdc.json
    },
    var.cdc.publisher ? { cdc-publish = data.aws_iam_policy_document.cdc_publish.json } : {},
    local.alerts_enabled ? { publish-alerts = data.aws_iam_policy_document.publish_alerts.json } : {},
  )
  # Role => the capabilities it gets (tests/infra/test_iam.py runs the data path with exactly these).
  role_policies = {
    service     = concat(["dagster-instance", "operate-runs", "ecs-exec", "sensors", "cdc-read", "cdc-sink"], var.cdc.publisher ? ["cdc-publish"] : [], local.alerts_enabled ? ["publish-alerts"] : [])
    run         = concat(["dagster-instance", "cdc-read", "run-data", "run-emr"], local.alerts_enabled ? ["publish-alerts"] : [])
    maintenance = ["dagster-instance", "cdc-read", "run-data", "run-emr", "maintain-bronze-cdc"]
  }
  role_policy_attachments = merge([
    for role, names in local.role_policies : { for name in names : "${role}/${name}" => { role = role, policy = name } }
  ]...)
}

resource "aws_iam_policy" "this" {
  for_each    = local.policy_documents
  name        = "${var.name_prefix}-${each.key}"
  description = "Lakehouse capability ${each.key} (terraform/modules/compute/iam.tf)"
  policy      = each.value
  tags        = var.tags
}

resource "aws_iam_role_policy_attachment" "task" {
  for_each   = local.role_policy_attachments
  role       = aws_iam_role.task[each.value.role].name
  policy_arn = aws_iam_policy.this[each.value.policy].arn
}

resource "aws_iam_role_policy" "execution" {
  for_each = toset(local.execution_roles)
  name     = "ecs-execution"
  role     = aws_iam_role.execution[each.key].id
  policy   = data.aws_iam_policy_document.execution[each.key].json
}
