# One environment: the pipeline module with this environment's terraform.tfvars.
# Every environment root links this file (and variables.tf, outputs.tf, versions.tf):
# environments differ only in terraform.tfvars, backend.tf and providers.tf.

module "pipeline" {
  source = "../../modules/pipeline"

  project                        = var.project
  environment                    = var.environment
  availability_zones             = var.availability_zones
  vpc_cidr                       = var.vpc_cidr
  extra_interface_endpoints      = var.extra_interface_endpoints
  things                         = var.things
  lambda_architecture            = var.lambda_architecture
  processor_zip                  = var.processor_zip
  api_zip                        = var.api_zip
  compaction_zip                 = var.compaction_zip
  processor_tracing              = var.processor_tracing
  endpoint_az_count              = var.endpoint_az_count
  stream_mode                    = var.stream_mode
  shard_count                    = var.shard_count
  stream_retention_hours         = var.stream_retention_hours
  processor_memory_mb            = var.processor_memory_mb
  batch_size                     = var.batch_size
  batching_window_s              = var.batching_window_s
  write_behind                   = var.write_behind
  compact_interval_s             = var.compact_interval_s
  max_retries                    = var.max_retries
  max_record_age_s               = var.max_record_age_s
  readings_ttl_days              = var.readings_ttl_days
  deletion_protection            = var.deletion_protection
  enable_timestream              = var.enable_timestream
  object_lock_mode               = var.object_lock_mode
  object_lock_days               = var.object_lock_days
  archive_expiration_days        = var.archive_expiration_days
  force_destroy_buckets          = var.force_destroy_buckets
  buckets_tls_only               = var.buckets_tls_only
  log_retention_days             = var.log_retention_days
  api_throttle_rate              = var.api_throttle_rate
  api_throttle_burst             = var.api_throttle_burst
  api_quota_per_day              = var.api_quota_per_day
  alert_emails                   = var.alert_emails
  tags                           = var.tags
  processor_reserved_concurrency = var.processor_reserved_concurrency
  archive_noncurrent_days        = var.archive_noncurrent_days
  manage_api_gateway_account     = var.manage_api_gateway_account
  report_schedule_expression     = var.report_schedule_expression
  report_scopes                  = var.report_scopes
  alert_routes                   = var.alert_routes
  alert_route_secrets            = var.alert_route_secrets
  local_webhook_url              = var.local_webhook_url
}

# State written before the pipeline was a module keeps its resources.
moved {
  from = module.kms
  to   = module.pipeline.module.kms
}

moved {
  from = module.network
  to   = module.pipeline.module.network
}

moved {
  from = module.stream
  to   = module.pipeline.module.stream
}

moved {
  from = module.storage
  to   = module.pipeline.module.storage
}

moved {
  from = module.iot
  to   = module.pipeline.module.iot
}

moved {
  from = module.processor
  to   = module.pipeline.module.processor
}

moved {
  from = module.api
  to   = module.pipeline.module.api
}

moved {
  from = module.observability
  to   = module.pipeline.module.observability
}
