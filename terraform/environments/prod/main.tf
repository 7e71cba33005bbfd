locals {
  # Mirrors of lakehouse/settings.py (tests/infra asserts they are equal).
  oltp_schema          = "shop"
  cdc_topic_prefix     = "ecom"
  cdc_slot_name        = "lakehouse_cdc"
  cdc_publication_name = "lakehouse_cdc"
  oltp_tables          = ["customers", "addresses", "products", "inventory", "orders", "order_items", "payments"]
  dynamodb_tables      = { carts = "cart_id", sessions = "session_id", reviews = "review_id" }

  bronze_tables = {
    cdc       = local.oltp_tables
    dynamodb  = keys(local.dynamodb_tables)
    landing   = ["clickstream", "partner_feeds", "_objects"] # _objects: the landing manifest (dbt reads it)
    marketing = ["campaigns", "ad_spend"]
  }

  # The two profiles (terraform/COSTS.md has the monthly cost of each, checked by tests/infra).
  profiles = {
    small = {
      cdc_transport             = "kinesis" # one stream, the embedded Debezium publisher in the service task
      nat_gateway               = false     # tasks in public subnets with a public IP, egress-only groups
      service_capacity_provider = "FARGATE_SPOT"
      service_size              = { cpu = 512, memory = 3072 }
      run_size                  = { cpu = 512, memory = 2048 }
      db_instance_class         = "db.t4g.micro"
      db_performance_insights   = false
      db_monitoring_interval    = 0
      container_insights        = false
      flow_log_traffic_type     = "REJECT"
      ecr_keep_images           = 10
      cdc_sink_pace_seconds     = 600 # S3 requests per batch decide the budget (docs/deploy.md)
    }
    scale = {
      cdc_transport             = "kafka" # MSK Serverless + Debezium on MSK Connect
      nat_gateway               = true
      service_capacity_provider = "FARGATE"
      service_size              = { cpu = 1024, memory = 4096 }
      run_size                  = { cpu = 1024, memory = 4096 }
      db_instance_class         = "db.t4g.small"
      db_performance_insights   = true
      db_monitoring_interval    = 60
      container_insights        = true
      flow_log_traffic_type     = "ALL"
      ecr_keep_images           = 30
      cdc_sink_pace_seconds     = 60
    }
  }
  profile = local.profiles[var.profile]
  msk     = local.profile.cdc_transport == "kafka"

  tags = merge(var.tags, {
    Project     = "ecommerce-lakehouse"
    Environment = "prod"
    Profile     = var.profile
    ManagedBy   = "terraform"
  })
}

module "kms" {
  source      = "../../modules/kms"
  name_prefix = var.name_prefix
  aws_region  = var.aws_region
}

module "network" {
  source                = "../../modules/network"
  name_prefix           = var.name_prefix
  aws_region            = var.aws_region
  vpc_cidr              = var.vpc_cidr
  availability_zones    = [for suffix in ["a", "b"] : "${var.aws_region}${suffix}"]
  oltp_source_cidrs     = var.oltp_source_cidrs
  kms_key_arn           = module.kms.key_arn
  nat_gateway           = local.profile.nat_gateway
  enable_msk            = local.msk
  flow_log_traffic_type = local.profile.flow_log_traffic_type
}

module "lake_storage" {
  source      = "../../modules/lake_storage"
  name_prefix = var.name_prefix
  kms_key_arn = module.kms.key_arn
}

module "catalog" {
  source                         = "../../modules/catalog"
  name_prefix                    = var.name_prefix
  lake_bucket                    = module.lake_storage.lake_bucket
  athena_results_bucket          = module.lake_storage.athena_results_bucket
  kms_key_arn                    = module.kms.key_arn
  bronze_tables                  = local.bronze_tables
  silver_tables                  = local.oltp_tables
  silver_history_tables          = local.oltp_tables # the sink writes a history for every captured table
  bytes_scanned_cutoff_per_query = var.athena_bytes_scanned_cutoff
  manage_catalog_encryption      = var.manage_glue_catalog_encryption
}

module "sources" {
  source                 = "../../modules/sources"
  name_prefix            = var.name_prefix
  dynamodb_tables        = local.dynamodb_tables
  create_dynamodb_tables = var.create_dynamodb_tables
  kms_key_arn            = module.kms.key_arn
  oltp                   = var.oltp
}

# Profile small: the CDC stream.
module "kinesis" {
  source      = "../../modules/kinesis"
  count       = local.msk ? 0 : 1
  name_prefix = var.name_prefix
  shard_count = var.cdc_kinesis_shards
  kms_key_arn = module.kms.key_arn
}

# Profile scale: MSK Serverless + Debezium on MSK Connect.
module "streaming" {
  source                    = "../../modules/streaming"
  count                     = local.msk ? 1 : 0
  name_prefix               = var.name_prefix
  aws_region                = var.aws_region
  subnet_ids                = module.network.private_subnet_ids
  kafka_security_group_id   = module.network.security_group_ids["kafka"]
  connect_security_group_id = module.network.security_group_ids["connect"]
  kms_key_arn               = module.kms.key_arn
  artifacts_bucket_arn      = module.lake_storage.bucket_arns["artifacts"]
  create_connector          = var.create_cdc_connector
  oltp                      = var.oltp
  oltp_secret_arn           = module.sources.oltp_secret_arn
  oltp_secret_name          = module.sources.oltp_secret_name
  oltp_schema               = local.oltp_schema
  oltp_tables               = local.oltp_tables
  cdc_topic_prefix          = local.cdc_topic_prefix
  cdc_slot_name             = local.cdc_slot_name
  cdc_publication_name      = local.cdc_publication_name
}

# Notifications (docs/operations.md): the SNS topic the alert sensor publishes to.
module "alerts" {
  source      = "../../modules/alerts"
  name_prefix = var.name_prefix
  kms_key_arn = module.kms.key_arn
  email       = var.alert_email
}

module "compute" {
  source                          = "../../modules/compute"
  name_prefix                     = var.name_prefix
  aws_region                      = var.aws_region
  vpc_id                          = module.network.vpc_id
  private_subnet_ids              = module.network.private_subnet_ids
  task_subnet_ids                 = module.network.task_subnet_ids
  assign_public_ip                = module.network.tasks_need_public_ip
  emr_subnet_ids                  = local.profile.nat_gateway ? module.network.private_subnet_ids : []
  security_group_ids              = module.network.security_group_ids
  kms_key_arn                     = module.kms.key_arn
  buckets                         = module.lake_storage.bucket_names
  glue_databases                  = module.catalog.glue_databases
  athena_workgroup                = module.catalog.athena_workgroup
  dynamodb_table_names            = module.sources.dynamodb_table_names
  oltp                            = var.oltp
  oltp_secret_arn                 = module.sources.oltp_secret_arn
  image_tag                       = var.image_tag
  marketing_api_url               = var.marketing_api_url
  alerts_topic_arn                = module.alerts.topic_arn
  alerts_enabled                  = true
  service_capacity_provider       = local.profile.service_capacity_provider
  container_insights              = local.profile.container_insights
  task_sizes                      = { service = local.profile.service_size, run = local.profile.run_size }
  ecr_keep_images                 = local.profile.ecr_keep_images
  db_instance_class               = local.profile.db_instance_class
  db_performance_insights_enabled = local.profile.db_performance_insights
  db_monitoring_interval          = local.profile.db_monitoring_interval
  db_password_version             = var.dagster_db_password_version
  cdc = {
    transport           = local.profile.cdc_transport
    publisher           = !local.msk
    kinesis_stream_name = local.msk ? "" : module.kinesis[0].stream_name
    kinesis_stream_arn  = local.msk ? "" : module.kinesis[0].stream_arn
    kinesis_shards      = var.cdc_kinesis_shards
    sink_pace_seconds   = coalesce(var.cdc_sink_pace_seconds, local.profile.cdc_sink_pace_seconds)
  }
  kafka = {
    cluster_arn       = local.msk ? module.streaming[0].cluster_arn : ""
    bootstrap_servers = local.msk ? module.streaming[0].bootstrap_brokers : ""
    topic_arn_prefix  = local.msk ? module.streaming[0].topic_arn_prefix : ""
    group_arn_prefix  = local.msk ? module.streaming[0].group_arn_prefix : ""
    cdc_topic_pattern = "${local.cdc_topic_prefix}.${local.oltp_schema}.*" # Settings.cdc_topic(<any table>)
  }
}
