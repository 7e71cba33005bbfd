# One task role and one execution role per component (least privilege):
#   webserver     : UI; terminates runs (EcsRunLauncher.terminate), reads compute logs
#   daemon        : dequeues and launches runs as ECS tasks of the "run" task definition
#   code_location : gRPC code server; evaluates sensors (read-only data access, CDC topic probe)
#   run           : one ECS task per Dagster run: ingestion, Delta writes, dbt on Athena, EMR jobs
#   emr_job       : EMR Serverless job runs (separate role passed by the runs; see emr.tf)
locals {
  components = ["webserver", "daemon", "code_location", "run"]

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
  emr_application_arn     = aws_emrserverless_application.spark.arn
  compute_logs_prefix     = "dagster/compute-logs"

  # MSK Serverless (IAM auth): statements only when the streaming module exists (ARNs are "" otherwise).
  kafka_enabled    = var.kafka.cluster_arn != ""
  kafka_topic_arns = ["${var.kafka.topic_arn_prefix}/${var.kafka.cdc_topic_pattern}"]
  kafka_group_arns = ["${var.kafka.group_arn_prefix}/${var.kafka_consumer_group_prefix}*"]
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
  for_each           = toset(local.components)
  name               = "${var.name_prefix}-${replace(each.key, "_", "-")}-task"
  description        = "Task role of the Dagster ${each.key} (ECS)"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role" "execution" {
  for_each           = toset(local.components)
  name               = "${var.name_prefix}-${replace(each.key, "_", "-")}-exec"
  description        = "Task execution role of the Dagster ${each.key}: image pull, logs, secrets"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

# ---------------------------------------------------------------- execution roles
data "aws_iam_policy_document" "execution" {
  for_each = toset(local.components)
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
    resources = local.component_secret_arns[each.key]
  }
  statement {
    sid       = "DecryptImageAndSecrets"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  for_each = toset(local.components)
  name     = "ecs-execution"
  role     = aws_iam_role.execution[each.key].id
  policy   = data.aws_iam_policy_document.execution[each.key].json
}

# ---------------------------------------------------------------- shared statements
# Every Dagster process loads the instance (docker/ecs/dagster.yaml), whose EcsRunLauncher
# describes the run task definition at start-up.
data "aws_iam_policy_document" "instance" {
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
  }
}

data "aws_iam_policy_document" "manage_run_tasks" {
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
}

# ---------------------------------------------------------------- webserver
data "aws_iam_policy_document" "webserver" {
  source_policy_documents = [
    data.aws_iam_policy_document.instance.json,
    data.aws_iam_policy_document.manage_run_tasks.json,
  ]
  statement {
    sid     = "EcsExecPortForwarding"
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

# ---------------------------------------------------------------- daemon
data "aws_iam_policy_document" "daemon" {
  source_policy_documents = [
    data.aws_iam_policy_document.instance.json,
    data.aws_iam_policy_document.manage_run_tasks.json,
  ]
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
    resources = [aws_iam_role.task["run"].arn, aws_iam_role.execution["run"].arn]
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

# ---------------------------------------------------------------- code location (sensors)
data "aws_iam_policy_document" "code_location" {
  source_policy_documents = [data.aws_iam_policy_document.instance.json]
  statement {
    sid       = "ListSourcesAndLake"
    actions   = ["s3:ListBucket", "s3:GetBucketLocation"]
    resources = [local.bucket_arns["landing"], local.bucket_arns["lake"], local.bucket_arns["artifacts"]]
  }
  statement {
    sid       = "ReadLandingAndArtifacts"
    actions   = ["s3:GetObject"]
    resources = ["${local.bucket_arns["landing"]}/*", "${local.bucket_arns["artifacts"]}/*", "${local.bucket_arns["lake"]}/*"]
  }
  statement {
    sid       = "ReadCatalog"
    actions   = local.glue_read_actions
    resources = local.glue_resources
  }
  # cdc_topics_sensor: metadata of the CDC topics and one record past the lake's progress (no commits)
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
      sid       = "ProbeCdcTopics"
      actions   = ["kafka-cluster:DescribeTopic", "kafka-cluster:ReadData"]
      resources = local.kafka_topic_arns
    }
  }
  dynamic "statement" {
    for_each = local.kafka_enabled ? [1] : []
    content {
      sid       = "ProbeConsumerGroups"
      actions   = ["kafka-cluster:DescribeGroup"]
      resources = local.kafka_group_arns
    }
  }
}

# ---------------------------------------------------------------- runs (the data plane)
data "aws_iam_policy_document" "run" {
  source_policy_documents = [data.aws_iam_policy_document.instance.json]
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
    sid     = "ReadWriteLake"
    actions = [
      "s3:GetObject", "s3:PutObject", "s3:DeleteObject",
      "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    ]
    resources = ["${local.bucket_arns["lake"]}/*"]
  }
  statement {
    sid     = "AthenaResults"
    actions = [
      "s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts",
    ]
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
    sid     = "AthenaWorkgroup"
    actions = [
      "athena:StartQueryExecution", "athena:StopQueryExecution", "athena:GetQueryExecution",
      "athena:GetQueryResults", "athena:GetQueryResultsStream", "athena:BatchGetQueryExecution",
      "athena:ListQueryExecutions", "athena:GetWorkGroup", "athena:GetQueryRuntimeStatistics",
    ]
    resources = ["arn:${local.partition}:athena:${local.arn_suffix}:workgroup/${var.athena_workgroup}"]
  }
  statement {
    sid     = "AthenaCatalog"
    actions = [
      "athena:GetDataCatalog", "athena:GetDatabase", "athena:ListDatabases",
      "athena:GetTableMetadata", "athena:ListTableMetadata",
    ]
    resources = ["arn:${local.partition}:athena:${local.arn_suffix}:datacatalog/AwsDataCatalog"]
  }
  statement {
    sid       = "ReadDynamoDbSources"
    actions   = ["dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:Query", "dynamodb:GetItem", "dynamodb:BatchGetItem"]
    resources = flatten([
      for name in values(var.dynamodb_table_names) : [
        "arn:${local.partition}:dynamodb:${local.arn_suffix}:table/${name}",
        "arn:${local.partition}:dynamodb:${local.arn_suffix}:table/${name}/index/*",
      ]
    ])
  }
  # CDC sink: consume the CDC topics, commit its group's offsets (lag monitoring)
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
  # PipesEMRServerlessClient: start/poll/cancel job runs of this application; it also reads the
  # application (type, logging) and the job-run dashboard URL, and tags runs with Dagster's run id.
  statement {
    sid     = "EmrServerlessJobs"
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

locals {
  task_policies = {
    webserver     = data.aws_iam_policy_document.webserver.json
    daemon        = data.aws_iam_policy_document.daemon.json
    code_location = data.aws_iam_policy_document.code_location.json
    run           = data.aws_iam_policy_document.run.json
  }
}

resource "aws_iam_role_policy" "task" {
  for_each = toset(local.components)
  name     = "dagster-${replace(each.key, "_", "-")}"
  role     = aws_iam_role.task[each.key].id
  policy   = local.task_policies[each.key]
}
