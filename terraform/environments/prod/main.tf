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
    landing   = ["clickstream", "partner_feeds"]
    marketing = ["campaigns", "ad_spend"]
  }

  tags = merge(var.tags, {
    Project     = "ecommerce-lakehouse"
    Environment = "prod"
    ManagedBy   = "terraform"
  })
}

module "kms" {
  source      = "../../modules/kms"
  name_prefix = var.name_prefix
  aws_region  = var.aws_region
}

module "network" {
  source             = "../../modules/network"
  name_prefix        = var.name_prefix
  aws_region         = var.aws_region
  vpc_cidr           = var.vpc_cidr
  availability_zones = [for suffix in ["a", "b"] : "${var.aws_region}${suffix}"]
  oltp_source_cidrs  = var.oltp_source_cidrs
  kms_key_arn        = module.kms.key_arn
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
}

module "sources" {
  source                 = "../../modules/sources"
  name_prefix            = var.name_prefix
  dynamodb_tables        = local.dynamodb_tables
  create_dynamodb_tables = var.create_dynamodb_tables
  kms_key_arn            = module.kms.key_arn
  oltp                   = var.oltp
}

module "streaming" {
  source                    = "../../modules/streaming"
  count                     = var.enable_streaming ? 1 : 0
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

module "compute" {
  source               = "../../modules/compute"
  name_prefix          = var.name_prefix
  aws_region           = var.aws_region
  vpc_id               = module.network.vpc_id
  private_subnet_ids   = module.network.private_subnet_ids
  security_group_ids   = module.network.security_group_ids
  kms_key_arn          = module.kms.key_arn
  buckets              = module.lake_storage.bucket_names
  glue_databases       = module.catalog.glue_databases
  athena_workgroup     = module.catalog.athena_workgroup
  dynamodb_table_names = module.sources.dynamodb_table_names
  oltp                 = var.oltp
  oltp_secret_arn      = module.sources.oltp_secret_arn
  image_tag            = var.image_tag
  marketing_api_url    = var.marketing_api_url
  kafka                = {
    cluster_arn       = var.enable_streaming ? module.streaming[0].cluster_arn : ""
    bootstrap_servers = var.enable_streaming ? module.streaming[0].bootstrap_brokers : ""
    topic_arn_prefix  = var.enable_streaming ? module.streaming[0].topic_arn_prefix : ""
    group_arn_prefix  = var.enable_streaming ? module.streaming[0].group_arn_prefix : ""
    cdc_topic_pattern = "${local.cdc_topic_prefix}.${local.oltp_schema}.*" # Settings.cdc_topic(<any table>)
  }
}
