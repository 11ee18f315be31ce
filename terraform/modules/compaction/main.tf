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
  environment = merge({
    IOTPM_ENVIRONMENT          = var.environment
    IOTPM_ARCHIVE_BUCKET       = var.archive_bucket
    IOTPM_COMPACTION_GRACE_S   = tostring(var.grace_s)
    IOTPM_COMPACTION_WINDOW_H  = tostring(var.window_h)
    IOTPM_COMPACTION_MAX_HOURS = tostring(var.max_hours)
    HOME                       = "/tmp" # DuckDB's home directory: the only writable one in Lambda
  }, local.idle_env)
  policy_json        = local.policy_json
  subnet_ids         = var.subnet_ids
  security_group_ids = var.security_group_ids
  log_retention_days = var.log_retention_days
  kms_key_arn        = var.kms_key_arn
  tags               = var.tags
}

# The idle-shard job (src/iotpm/service/compaction.py IdleShards, on {"job": "idle_shards"}):
# the processor's write-behind log of a shard no batch compacted for idle_after_s into the
# readings chunks, rollups and device records, its snapshot claimed and committed over the
# version read. It waits longer than a processor batch may run between the two.
locals {
  idle = var.write_behind != null
  idle_env = local.idle ? {
    IOTPM_READINGS_TABLE     = var.write_behind.tables["readings"]
    IOTPM_DEVICES_TABLE      = var.write_behind.tables["devices"]
    IOTPM_ANOMALIES_TABLE    = var.write_behind.tables["anomalies"]
    IOTPM_ROLLUPS_TABLE      = var.write_behind.tables["rollups"]
    IOTPM_STATE_BUCKET       = var.write_behind.state_bucket
    IOTPM_READINGS_TTL_DAYS  = tostring(var.write_behind.readings_ttl_days)
    IOTPM_COMPACT_INTERVAL_S = tostring(var.write_behind.compact_interval_s)
    IOTPM_IDLE_AFTER_S       = tostring(var.idle_after_s)
    IOTPM_IDLE_WAIT_S        = tostring(var.write_behind.processor_timeout_s + 30)
  } : {}
  # each statement as JSON text: the two branches are then both lists of strings
  idle_statements = local.idle ? [
    jsonencode({
      Sid      = "CompactTables"
      Effect   = "Allow"
      Action   = ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
      Resource = [for t in ["readings", "devices", "rollups"] : var.write_behind.table_arns[t]]
    }),
    jsonencode({ Sid = "ReadBatchLog", Effect = "Allow", Action = ["dynamodb:Query"], Resource = [var.write_behind.table_arns["readings"]] }),
    jsonencode({
      Sid       = "ListSnapshots"
      Effect    = "Allow"
      Action    = ["s3:ListBucket"]
      Resource  = [var.write_behind.state_bucket_arn]
      Condition = { StringLike = { "s3:prefix" = ["snapshots/*"] } }
    }),
    jsonencode({ Sid = "Snapshots", Effect = "Allow", Action = ["s3:GetObject", "s3:PutObject"], Resource = ["${var.write_behind.state_bucket_arn}/snapshots/*"] }),
  ] : []
}

locals {
  policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
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
    ], [for st in local.idle_statements : jsondecode(st)])
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
  schedules = merge({
    archive = {
      name        = "${var.name}-compaction"
      description = "iotpm archive compaction: the closed hours of raw/ to Parquet"
      input       = jsonencode({}) # the job takes its settings from its environment
    }
    }, local.idle ? {
    idle_shards = {
      name        = "${var.name}-idle-shards"
      description = "iotpm write-behind: the batch log of shards no batch compacted, into the tables"
      input       = jsonencode({ job = "idle_shards" })
    }
  } : {})
}
