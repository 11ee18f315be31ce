# The whole pipeline of one environment, wired from the capability modules: what a platform
# team calls as one module (terraform/examples/minimal), and what every environment root
# calls (terraform/environments/<env>: they differ only in terraform.tfvars and backend.tf).

locals {
  name = "${var.project}-${var.environment}"
  tags = merge(var.tags, { Project = var.project, Environment = var.environment, ManagedBy = "terraform" })

  # The AWS services the in-VPC Lambdas' own code calls (src/iotpm/adapters; the integration test
  # test_terraform_contract.py records the calls per function and holds this list to them). The
  # stream, the on-failure queue and the logs are reached by the Lambda service, not from the VPC.
  # Only the report calls Athena: its endpoint exists only while the report runs in the VPC.
  code_services       = concat(["dynamodb", "s3", "sns"], var.report_in_vpc ? ["athena"] : [], var.enable_timestream ? ["timestream.ingest-cell1"] : [])
  gateway_services    = ["dynamodb", "s3"] # the network module's gateway endpoints (free)
  interface_endpoints = distinct(concat([for s in local.code_services : s if !contains(local.gateway_services, s)], var.extra_interface_endpoints))
}

module "kms" {
  source = "../kms"
  name   = local.name
  tags   = local.tags
}

module "network" {
  source                   = "../../modules/network"
  name                     = local.name
  cidr_block               = var.vpc_cidr
  availability_zones       = var.availability_zones
  interface_endpoints      = local.interface_endpoints
  endpoint_az_count        = var.endpoint_az_count
  flow_logs_retention_days = var.log_retention_days
  kms_key_arn              = module.kms.arn
  tags                     = local.tags
}

module "stream" {
  source          = "../../modules/stream"
  name            = local.name
  stream_mode     = var.stream_mode
  shard_count     = var.shard_count
  retention_hours = var.stream_retention_hours
  kms_key_arn     = module.kms.arn
  tags            = local.tags
}

module "storage" {
  source                  = "../../modules/storage"
  name                    = local.name
  kms_key_arn             = module.kms.arn
  deletion_protection     = var.deletion_protection
  enable_timestream       = var.enable_timestream
  object_lock_mode        = var.object_lock_mode
  object_lock_days        = var.object_lock_days
  archive_expiration_days = var.archive_expiration_days
  archive_noncurrent_days = var.archive_noncurrent_days
  force_destroy           = var.force_destroy_buckets
  tls_only                = var.buckets_tls_only
  registrations           = var.things # the registry's seed (storage/registry.tf)
  tags                    = local.tags
}

module "iot" {
  source        = "../../modules/iot"
  name          = local.name
  things        = var.things
  topic_prefix  = var.project
  stream_name   = module.stream.name
  stream_arn    = module.stream.arn
  kms_key_arn   = module.kms.arn
  force_destroy = var.force_destroy_buckets
  tls_only      = var.buckets_tls_only
  tags          = local.tags
}

module "processor" {
  source               = "../../modules/processor"
  name                 = local.name
  environment          = var.environment
  zip_path             = var.processor_zip
  architecture         = var.lambda_architecture
  memory_mb            = var.processor_memory_mb
  reserved_concurrency = var.processor_reserved_concurrency
  tracing_mode         = var.processor_tracing
  stream_arn           = module.stream.arn
  batch_size           = var.batch_size
  batching_window_s    = var.batching_window_s
  max_retries          = var.max_retries
  max_record_age_s     = var.max_record_age_s
  tables               = module.storage.table_names
  table_arns           = module.storage.table_arns
  archive_bucket       = module.storage.archive_bucket
  archive_bucket_arn   = module.storage.archive_bucket_arn
  state_bucket         = var.write_behind ? module.storage.state_bucket : ""
  state_bucket_arn     = var.write_behind ? module.storage.state_bucket_arn : ""
  compact_interval_s   = var.compact_interval_s
  max_channels         = var.max_channels
  max_channels_by_type = var.max_channels_by_type
  operator_tables      = module.storage.operator_table_names
  operator_table_arns  = module.storage.operator_table_arns
  alerts_topic_arn     = module.alerting.machine_topic_arn # machine alarms: their own routed topic
  timestream_database  = module.storage.timestream_database
  timestream_table     = module.storage.timestream_table
  timestream_table_arn = module.storage.timestream_table_arn
  readings_ttl_days    = var.readings_ttl_days
  subnet_ids           = module.network.private_subnet_ids
  security_group_ids   = [module.network.lambda_security_group_id]
  kms_key_arn          = module.kms.arn
  log_retention_days   = var.log_retention_days
  tags                 = local.tags
}

module "api" {
  source                      = "../../modules/api"
  name                        = local.name
  environment                 = var.environment
  zip_path                    = var.api_zip
  architecture                = var.lambda_architecture
  tables                      = module.storage.table_names
  table_arns                  = module.storage.table_arns
  operator_tables             = module.storage.operator_table_names
  operator_table_arns         = module.storage.operator_table_arns
  throttle_rate               = var.api_throttle_rate
  throttle_burst              = var.api_throttle_burst
  quota_per_day               = var.api_quota_per_day
  manage_account_logging_role = var.manage_api_gateway_account
  subnet_ids                  = module.network.private_subnet_ids
  security_group_ids          = [module.network.lambda_security_group_id]
  kms_key_arn                 = module.kms.arn
  log_retention_days          = var.log_retention_days
  xray_sampling_rate          = var.api_xray_sampling_rate
  tags                        = local.tags
}

module "observability" {
  source                   = "../../modules/observability"
  name                     = local.name
  environment              = var.environment
  kms_key_arn              = module.kms.arn
  alert_emails             = var.alert_emails
  processor_function_name  = module.processor.function_name
  api_function_name        = module.api.function_name
  compaction_function_name = module.compaction.function_name
  stream_name              = module.stream.name
  iot_rule_name            = module.iot.rule_name
  on_failure_queue_name    = module.processor.on_failure_queue_name
  rest_api_name            = "${local.name}-api"
  stage_name               = module.api.stage_name
  tags                     = local.tags
}

# ---------------------------------------------------------------------------------
# The analytics layer (SQL over the archive, the fleet report, alert routing).
# The named queries are the SQL files the local `iotpm query` runs with DuckDB: one
# copy, rendered here with the same ${readings}/${quarantine} subqueries.
locals {
  analytics_sql = "${path.module}/../../../src/iotpm/analytics/sql"
  analytics_subqueries = {
    # readings.sql includes its parts (parts/ is outside the *.sql set that become named queries)
    readings = trimspace(templatefile("${local.analytics_sql}/readings.sql", {
      raw_pending      = trimspace(file("${local.analytics_sql}/parts/raw_pending.sql"))
      compacted_recent = trimspace(file("${local.analytics_sql}/parts/compacted_recent.sql"))
    }))
    quarantine = trimspace(file("${local.analytics_sql}/quarantine.sql"))
  }
  analytics_queries = {
    for f in fileset(local.analytics_sql, "*.sql") : trimsuffix(f, ".sql") => {
      description = trimspace(one(regexall("(?m)^-- description: (.*)$", file("${local.analytics_sql}/${f}")))[0])
      query       = templatefile("${local.analytics_sql}/${f}", local.analytics_subqueries)
    } if !contains(keys(local.analytics_subqueries), trimsuffix(f, ".sql"))
  }
}

module "analytics" {
  source                = "../analytics"
  name                  = local.name
  archive_bucket        = module.storage.archive_bucket
  archive_bucket_arn    = module.storage.archive_bucket_arn
  kms_key_arn           = module.kms.arn
  named_queries         = local.analytics_queries
  force_destroy_results = var.force_destroy_buckets
  tls_only              = var.buckets_tls_only
  tags                  = local.tags
}

# The archive's Parquet compaction: an hourly Lambda writes each closed hour as Parquet under
# compacted/ and the Glue tables compacted_readings and compaction_state that ${readings} reads.
module "compaction" {
  source             = "../compaction"
  name               = local.name
  environment        = var.environment
  zip_path           = var.compaction_zip
  architecture       = var.lambda_architecture
  archive_bucket     = module.storage.archive_bucket
  archive_bucket_arn = module.storage.archive_bucket_arn
  glue_database      = module.analytics.database
  # write-behind: the same function compacts, hourly, the batch log of shards no batch compacted
  write_behind = var.write_behind ? {
    state_bucket        = module.storage.state_bucket
    state_bucket_arn    = module.storage.state_bucket_arn
    tables              = module.storage.table_names
    table_arns          = module.storage.table_arns
    readings_ttl_days   = var.readings_ttl_days
    compact_interval_s  = var.compact_interval_s
    processor_timeout_s = module.processor.timeout_s
  } : null
  # an hour is compacted once a retry can no longer land in it (the mapping's maximum record
  # age, plus an hour), and de-duplicated against copies up to that age apart
  grace_s            = max(var.max_record_age_s, 3600) + 3600
  window_h           = min(48, max(3, ceil(var.max_record_age_s / 3600) + 1))
  subnet_ids         = module.network.private_subnet_ids
  security_group_ids = [module.network.lambda_security_group_id]
  kms_key_arn        = module.kms.arn
  log_retention_days = var.log_retention_days
  tags               = local.tags
}

module "report" {
  source               = "../report"
  name                 = local.name
  environment          = var.environment
  zip_path             = var.api_zip # the report handler ships in the API's zip (same dependencies)
  architecture         = var.lambda_architecture
  tables               = module.storage.table_names
  table_arns           = module.storage.table_arns
  operator_tables      = module.storage.operator_table_names
  operator_table_arns  = module.storage.operator_table_arns
  archive_bucket_arn   = module.storage.archive_bucket_arn
  results_bucket       = module.analytics.results_bucket
  results_bucket_arn   = module.analytics.results_bucket_arn
  athena_workgroup     = module.analytics.workgroup
  athena_workgroup_arn = module.analytics.workgroup_arn
  glue_database        = module.analytics.database
  summary_topic_arn    = module.alerting.machine_topic_arn
  schedule_expression  = var.report_schedule_expression
  scopes               = var.report_scopes
  in_vpc               = var.report_in_vpc
  subnet_ids           = module.network.private_subnet_ids
  security_group_ids   = [module.network.lambda_security_group_id]
  kms_key_arn          = module.kms.arn
  log_retention_days   = var.log_retention_days
  tags                 = local.tags
}

# Machine alarms on their own topic, pipeline alarms on the observability topic; the
# routes (per environment, in terraform.tfvars) filter both by site, line, severity, event.
module "alerting" {
  source             = "../alerting"
  name               = local.name
  kms_key_arn        = module.kms.arn
  pipeline_topic_arn = module.observability.alerts_topic_arn
  routes             = var.alert_routes
  route_secrets      = var.alert_route_secrets
  allow_http         = var.environment == "local" # the twin's webhook receiver has no TLS; routes are https elsewhere
  local_webhook_url  = var.local_webhook_url
  tags               = local.tags
}
