locals {
  db_secret_arn = aws_secretsmanager_secret.dagster_db.arn

  # Secrets injected by ECS (valueFrom "<secret arn>:<json key>::").
  dagster_db_secrets = {
    DAGSTER_PG_USERNAME = "${local.db_secret_arn}:username::"
    DAGSTER_PG_PASSWORD = "${local.db_secret_arn}:password::"
  }
  app_secrets = {
    LAKEHOUSE_POSTGRES_PASSWORD = "${var.oltp_secret_arn}:password::"
  }
  component_secrets = {
    webserver     = local.dagster_db_secrets
    daemon        = local.dagster_db_secrets
    code_location = merge(local.dagster_db_secrets, local.app_secrets)
    run           = merge(local.dagster_db_secrets, local.app_secrets)
  }
  component_secret_arns = {
    webserver     = [local.db_secret_arn]
    daemon        = [local.db_secret_arn]
    code_location = [local.db_secret_arn, var.oltp_secret_arn]
    run           = [local.db_secret_arn, var.oltp_secret_arn]
  }

  # Dagster instance (docker/ecs/dagster.yaml reads these).
  dagster_env = {
    DAGSTER_HOME                = local.dagster_home
    DAGSTER_PG_HOST             = aws_db_instance.dagster.address
    DAGSTER_PG_PORT             = tostring(aws_db_instance.dagster.port)
    DAGSTER_PG_DB               = aws_db_instance.dagster.db_name
    DAGSTER_RUN_TASK_DEFINITION = local.run_family
    DAGSTER_COMPUTE_LOGS_BUCKET = var.buckets["artifacts"]
    DAGSTER_CODE_LOCATION_HOST  = local.code_host
    AWS_REGION                  = var.aws_region
    AWS_DEFAULT_REGION          = var.aws_region
  }

  # The application's settings (lakehouse/settings.py); no endpoint override in prod = real AWS,
  # credentials from the task role.
  lakehouse_env = {
    LAKEHOUSE_ENVIRONMENT             = "prod"
    LAKEHOUSE_NAME_PREFIX             = var.name_prefix
    LAKEHOUSE_AWS_REGION              = var.aws_region
    LAKEHOUSE_ATHENA_WORKGROUP        = var.athena_workgroup
    LAKEHOUSE_DBT_TARGET              = "athena"
    LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS = var.kafka.bootstrap_servers
    LAKEHOUSE_KAFKA_SECURITY_PROTOCOL = "SASL_SSL" # MSK Serverless accepts IAM auth only (lakehouse/kafka.py)
    LAKEHOUSE_POSTGRES_HOST           = var.oltp.host
    LAKEHOUSE_POSTGRES_PORT           = tostring(var.oltp.port)
    LAKEHOUSE_POSTGRES_USER           = var.oltp.user
    LAKEHOUSE_POSTGRES_DB             = var.oltp.database
    LAKEHOUSE_STATE_DIR               = local.lakehouse_home
    LAKEHOUSE_MARKETING_API_URL       = var.marketing_api_url # empty: marketing load off (settings.py)
    # EMR Serverless target of the silver rebuild (orchestration/defs/emr.py picks EMR when both are set).
    LAKEHOUSE_EMR_APPLICATION_ID = aws_emrserverless_application.spark.id
    LAKEHOUSE_EMR_JOB_ROLE_ARN   = aws_iam_role.emr_job.arn
  }

  component_env = {
    webserver     = local.dagster_env
    daemon        = local.dagster_env
    code_location = merge(local.dagster_env, local.lakehouse_env)
    run           = merge(local.dagster_env, local.lakehouse_env)
  }

  python_http_check = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/server_info', timeout=5)"
  containers        = {
    webserver = {
      name          = "webserver"
      command       = ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "${local.dagster_home}/workspace.yaml"]
      port          = 3000
      health        = ["CMD", "python", "-c", local.python_http_check]
      readonly_root = false # ECS Exec (UI port forwarding) needs a writable root for the SSM agent
    }
    daemon = {
      name          = "daemon"
      command       = ["dagster-daemon", "run", "-w", "${local.dagster_home}/workspace.yaml"]
      port          = null
      health        = ["CMD", "dagster-daemon", "liveness-check"]
      readonly_root = true
    }
    code_location = {
      name          = "code-location"
      command       = ["dagster", "code-server", "start", "-m", "orchestration.definitions", "-h", "0.0.0.0", "-p", "4000"]
      port          = 4000
      health        = ["CMD", "dagster", "api", "grpc-health-check", "-p", "4000"]
      readonly_root = false # dbt writes target/ and logs/ next to the manifest packaged in the image
    }
    run = {
      name          = "run" # EcsRunLauncher container_name; the launcher overrides the command per run
      command       = ["dagster", "--help"]
      port          = null
      health        = null
      readonly_root = false # same as the code location (dbt, dlt and DuckDB write under /app and $HOME)
    }
  }

  scratch_volumes = {
    tmp   = "/tmp"
    state = local.lakehouse_home
    home  = "/home/lakehouse"
  }
}

resource "aws_ecs_task_definition" "this" {
  #checkov:skip=CKV_AWS_336:The daemon runs read-only. The webserver needs a writable root for ECS Exec (SSM agent; the only access path to the UI), and the code location and runs for dbt (target/ and logs/ next to the manifest packaged in the image), dlt and DuckDB state; all of them run as a non-root user with scratch volumes (asserted in tests/infra).
  for_each                 = local.containers
  family                   = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.task_sizes[each.key].cpu)
  memory                   = tostring(var.task_sizes[each.key].memory)
  task_role_arn            = aws_iam_role.task[each.key].arn
  execution_role_arn       = aws_iam_role.execution[each.key].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  dynamic "volume" {
    for_each = local.scratch_volumes
    content {
      name = volume.key
    }
  }

  container_definitions = jsonencode([merge(
    {
      name                   = each.value.name
      image                  = local.image
      essential              = true
      command                = each.value.command
      readonlyRootFilesystem = each.value.readonly_root
      privileged             = false
      linuxParameters        = { initProcessEnabled = true }
      environment            = [for k in sort(keys(local.component_env[each.key])) : { name = k, value = local.component_env[each.key][k] }]
      secrets                = [for k in sort(keys(local.component_secrets[each.key])) : { name = k, valueFrom = local.component_secrets[each.key][k] }]
      mountPoints            = [for name, path in local.scratch_volumes : { sourceVolume = name, containerPath = path, readOnly = false }]
      stopTimeout            = 60
      logConfiguration       = {
        logDriver = "awslogs"
        options   = {
          awslogs-group         = aws_cloudwatch_log_group.ecs.name
          awslogs-region        = var.aws_region
          awslogs-stream-prefix = each.value.name
        }
      }
    },
    each.value.port == null ? {} : { portMappings = [{ containerPort = each.value.port, protocol = "tcp" }] },
    each.value.health == null ? {} : {
      healthCheck = { command = each.value.health, interval = 30, timeout = 10, retries = 3, startPeriod = 120 }
    },
  )])

  tags = var.tags
}

locals {
  services = {
    webserver     = { min_healthy = 100, max_percent = 200, exec = true }
    daemon        = { min_healthy = 0, max_percent = 100, exec = false } # exactly one daemon at a time
    code_location = { min_healthy = 100, max_percent = 200, exec = false }
  }
}

resource "aws_ecs_service" "this" {
  for_each                           = local.services
  name                               = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.this[each.key].arn
  desired_count                      = 1
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  enable_execute_command             = each.value.exec
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  deployment_minimum_healthy_percent = each.value.min_healthy
  deployment_maximum_percent         = each.value.max_percent

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [var.security_group_ids["dagster"]]
    assign_public_ip = false
  }

  dynamic "service_registries" {
    for_each = each.key == "code_location" ? [aws_service_discovery_service.code_location.arn] : []
    content {
      registry_arn = service_registries.value
    }
  }

  tags = var.tags
}
