locals {
  # One naming rule, shared with lakehouse/settings.py (glue_prefix, glue_databases, athena_workgroup_name).
  glue_prefix = replace(var.name_prefix, "-", "_")
  glue_databases = {
    bronze = "${local.glue_prefix}_bronze"
    silver = "${local.glue_prefix}_silver"
    marts  = "${local.glue_prefix}_marts"
  }
  athena_workgroup = var.name_prefix

  lake_uri = "s3://${var.lake_bucket}"
  layer_locations = {
    bronze = "${local.lake_uri}/bronze/"
    silver = "${local.lake_uri}/silver/"
    marts  = "${local.lake_uri}/marts/"
  }

  # Name and location rules of the Delta tables (format() templates; tests/infra checks them against
  # lakehouse.settings.Settings.lake_uri): bronze <source>_<table> at bronze/<source>/<table>,
  # silver <table> at silver/<table>, SCD2 history <table>_history at silver/<table>_history.
  bronze_name_template     = "%s_%s"
  bronze_location_template = "${local.lake_uri}/bronze/%s/%s"
  silver_location_template = "${local.lake_uri}/silver/%s"
  history_name_template    = "%s_history"

  bronze_tables = flatten([
    for source, tables in var.bronze_tables : [
      for table in tables : {
        layer    = "bronze"
        name     = format(local.bronze_name_template, source, table)
        location = format(local.bronze_location_template, source, table)
      }
    ]
  ])
  silver_tables = [
    for table in var.silver_tables : {
      layer    = "silver"
      name     = table
      location = format(local.silver_location_template, table)
    }
  ]
  history_tables = [
    for table in var.silver_history_tables : {
      layer    = "silver"
      name     = format(local.history_name_template, table)
      location = format(local.silver_location_template, format(local.history_name_template, table))
    }
  ]
  # Keyed "<layer>.<glue table name>".
  delta_tables = {
    for t in concat(local.bronze_tables, local.silver_tables, local.history_tables) : "${t.layer}.${t.name}" => t
  }
}

resource "aws_glue_catalog_database" "this" {
  for_each     = local.glue_databases
  name         = each.value
  description  = "${var.name_prefix} ${each.key} layer"
  location_uri = local.layer_locations[each.key]
  tags         = var.tags
}

# Delta tables are declared here rather than discovered by a Glue crawler:
#  * names and locations are known up front (they follow lakehouse.settings), so a crawler run
#    (billed per DPU-hour, plus its own IAM role) would only rediscover what we already know;
#  * Athena (engine v3) and Spark read the schema from the Delta transaction log, so the Glue table
#    needs no column list and never drifts when a Delta schema evolves;
#  * registration is deterministic and reviewable in plan, and works before the first write.
# The parameters match what a crawler with create_native_delta_table = true would produce.
resource "aws_glue_catalog_table" "delta" {
  for_each      = local.delta_tables
  database_name = aws_glue_catalog_database.this[each.value.layer].name
  name          = each.value.name
  description   = "Delta Lake table at ${each.value.location}"
  table_type    = "EXTERNAL_TABLE"
  parameters = {
    "table_type"                 = "DELTA"
    "spark.sql.sources.provider" = "delta"
    "EXTERNAL"                   = "TRUE"
    "classification"             = "delta"
  }
  storage_descriptor {
    location = each.value.location
    ser_de_info {
      # Spark data-source tables keep their location in the "path" SerDe parameter.
      parameters = { "path" = each.value.location }
    }
  }
}

# Account-wide: opt-in only (var.manage_catalog_encryption), and every plan that has it on warns.
resource "aws_glue_data_catalog_encryption_settings" "this" {
  count = var.manage_catalog_encryption ? 1 : 0
  data_catalog_encryption_settings {
    connection_password_encryption {
      return_connection_password_encrypted = true
      aws_kms_key_id                       = var.kms_key_arn
    }
    encryption_at_rest {
      catalog_encryption_mode = "SSE-KMS"
      sse_aws_kms_key_id      = var.kms_key_arn
    }
  }
}

resource "aws_athena_workgroup" "this" {
  count         = var.create_athena_workgroup ? 1 : 0
  name          = local.athena_workgroup
  description   = "${var.name_prefix}: dbt marts and ad-hoc queries"
  force_destroy = false
  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff_per_query
    engine_version {
      selected_engine_version = "Athena engine version 3"
    }
    result_configuration {
      output_location = "s3://${var.athena_results_bucket}/output/"
      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }
  tags = var.tags
}

# A failing `check` assertion is a warning in plan/apply, never an error: it reminds whoever applies
# that this stack now owns a setting of the whole account and region.
check "glue_catalog_encryption_is_account_wide" {
  assert {
    condition     = !var.manage_catalog_encryption
    error_message = "manage_catalog_encryption = true: this stack now manages the Glue Data Catalog encryption settings of the whole account and region (key ${var.kms_key_arn}). Every Glue/Athena user of the account needs kms:Decrypt on that key, and destroying this stack does not restore the previous setting."
  }
}
