# The archive's Parquet compaction: an EventBridge Scheduler schedule invokes the
# compaction Lambda every hour; it writes each closed hour of raw/ as
# compacted/readings/<hour partition>/part-00000.parquet and moves the mark
# compacted/_state/state.json (src/iotpm/analytics/compaction.py). glue.tf makes the two
# tables the named queries' ${readings} subquery reads beside raw_records and
# quarantine_records: compacted_readings and compaction_state.

module "function" {
  source       = "../function"
  name         = "${var.name}-compaction"
  description  = "iotpm archive compaction to Parquet (src/iotpm/analytics/compaction.py)"
  zip_path     = var.zip_path
  handler      = "iotpm.handlers.compaction.handler"
  architecture = var.architecture
  memory_mb    = var.memory_mb
  timeout_s    = 900
  environment = {
    IOTPM_ENVIRONMENT          = var.environment
    IOTPM_ARCHIVE_BUCKET       = var.archive_bucket
    IOTPM_COMPACTION_GRACE_S   = tostring(var.grace_s)
    IOTPM_COMPACTION_WINDOW_H  = tostring(var.window_h)
    IOTPM_COMPACTION_MAX_HOURS = tostring(var.max_hours)
    HOME                       = "/tmp" # DuckDB's home directory: the only writable one in Lambda
  }
  policy_json        = local.policy_json
  subnet_ids         = var.subnet_ids
  security_group_ids = var.security_group_ids
  log_retention_days = var.log_retention_days
  kms_key_arn        = var.kms_key_arn
  tags               = var.tags
}

locals {
  policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ListArchive"
        Effect    = "Allow"
        Action    = ["s3:ListBucket"]
        Resource  = [var.archive_bucket_arn]
        Condition = { StringLike = { "s3:prefix" = ["raw/*", "quarantine/*", "compacted/*"] } }
      },
      {
        Sid      = "ReadArchive"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = ["${var.archive_bucket_arn}/raw/*", "${var.archive_bucket_arn}/quarantine/*", "${var.archive_bucket_arn}/compacted/*"]
      },
      {
        Sid      = "WriteCompacted"
        Effect   = "Allow"
        Action   = ["s3:PutObject"]
        Resource = ["${var.archive_bucket_arn}/compacted/*"]
      },
      { Sid = "DataKey", Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey"], Resource = [var.kms_key_arn] },
    ]
  })
}

module "schedule" {
  source              = "../schedule"
  role_name           = "${var.name}-compaction-scheduler"
  policy_name         = "invoke-compaction"
  function_arn        = module.function.arn
  schedule_expression = var.schedule_expression
  timezone            = "UTC"
  kms_key_arn         = var.kms_key_arn
  tags                = var.tags
  schedules = {
    archive = {
      name        = "${var.name}-compaction"
      description = "iotpm archive compaction: the closed hours of raw/ to Parquet"
      input       = jsonencode({}) # the job takes its settings from its environment
    }
  }
}
