# The local environment creates what `lakehouse stack init-resources` creates, with the same modules
# as production: buckets (incl. the embedded broker's bucket), Glue databases and Delta tables,
# DynamoDB source tables. No VPC, ECS, MSK or RDS: docker-compose / the embedded stack run those.
locals {
  oltp_tables     = ["customers", "addresses", "products", "inventory", "orders", "order_items", "payments"]
  dynamodb_tables = { carts = "cart_id", sessions = "session_id", reviews = "review_id" }
  bronze_tables = {
    cdc       = local.oltp_tables
    dynamodb  = keys(local.dynamodb_tables)
    landing   = ["clickstream", "partner_feeds", "_objects"] # _objects: the landing manifest (dbt reads it)
    marketing = ["campaigns", "ad_spend"]
  }
}

module "kms" {
  source                  = "../../modules/kms"
  name_prefix             = var.name_prefix
  aws_region              = var.aws_region
  deletion_window_in_days = 7
}

module "lake_storage" {
  source        = "../../modules/lake_storage"
  name_prefix   = var.name_prefix
  extra_buckets = ["broker"] # Settings.broker_bucket (local only)
  kms_key_arn   = module.kms.key_arn
  force_destroy = true
}

module "catalog" {
  source                    = "../../modules/catalog"
  name_prefix               = var.name_prefix
  lake_bucket               = module.lake_storage.lake_bucket
  athena_results_bucket     = module.lake_storage.athena_results_bucket
  kms_key_arn               = module.kms.key_arn
  bronze_tables             = local.bronze_tables
  silver_tables             = local.oltp_tables
  silver_history_tables     = local.oltp_tables
  create_athena_workgroup   = var.create_athena_workgroup
  manage_catalog_encryption = false
}

module "sources" {
  source                      = "../../modules/sources"
  name_prefix                 = var.name_prefix
  dynamodb_tables             = local.dynamodb_tables
  kms_key_arn                 = module.kms.key_arn
  deletion_protection         = false
  create_oltp_secret          = false # local password is the settings default ("lakehouse")
  secret_recovery_window_days = 0
  oltp                        = { host = "localhost" }
}
