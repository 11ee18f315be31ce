# The stream processor: Kinesis -> Lambda with partial batch responses -> DynamoDB, S3, SNS, Timestream.

locals {
  timestream = var.timestream_table_arn != ""
  env = merge({
    IOTPM_ENVIRONMENT        = var.environment
    IOTPM_READINGS_TABLE     = var.tables["readings"]
    IOTPM_DEVICES_TABLE      = var.tables["devices"]
    IOTPM_ANOMALIES_TABLE    = var.tables["anomalies"]
    IOTPM_ROLLUPS_TABLE      = var.tables["rollups"]
    IOTPM_ARCHIVE_BUCKET     = var.archive_bucket
    IOTPM_ALERTS_TOPIC_ARN   = var.alerts_topic_arn
    IOTPM_READINGS_TTL_DAYS  = tostring(var.readings_ttl_days)
    IOTPM_TIMESTREAM_ENABLED = tostring(local.timestream)
    IOTPM_MAX_CHANNELS       = tostring(var.max_channels)
    }, length(var.max_channels_by_type) > 0 ? {
    IOTPM_MAX_CHANNELS_BY_TYPE = join(",", [for k, v in var.max_channels_by_type : "${k}=${v}"])
    } : {}, var.state_bucket != "" ? {
    IOTPM_STATE_BUCKET       = var.state_bucket
    IOTPM_COMPACT_INTERVAL_S = tostring(var.compact_interval_s)
    } : {}, local.timestream ? {
    IOTPM_TIMESTREAM_DATABASE = var.timestream_database
    IOTPM_TIMESTREAM_TABLE    = var.timestream_table
  } : {}, local.operator_env)
}

module "function" {
  source               = "../function"
  name                 = "${var.name}-processor"
  description          = "iotpm stream processor: decode, validate, detect, store, alert"
  zip_path             = var.zip_path
  handler              = "iotpm.handlers.processor.handler"
  architecture         = var.architecture
  memory_mb            = var.memory_mb
  timeout_s            = var.timeout_s
  reserved_concurrency = var.reserved_concurrency
  tracing_mode         = var.tracing_mode
  environment          = local.env
  policy_json          = local.policy_json
  subnet_ids           = var.subnet_ids
  security_group_ids   = var.security_group_ids
  log_retention_days   = var.log_retention_days
  kms_key_arn          = var.kms_key_arn
  tags                 = var.tags
}

resource "aws_sqs_queue" "on_failure" {
  name                      = "${var.name}-processor-failures"
  message_retention_seconds = 1209600
  kms_master_key_id         = var.kms_key_arn
  tags                      = var.tags
}

resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn                   = var.stream_arn
  function_name                      = module.function.arn
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = var.batch_size
  maximum_batching_window_in_seconds = var.batching_window_s
  parallelization_factor             = var.parallelization_factor
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = var.max_retries
  maximum_record_age_in_seconds      = var.max_record_age_s
  function_response_types            = ["ReportBatchItemFailures"]

  lifecycle {
    precondition {
      condition     = var.state_bucket == "" || var.parallelization_factor == 1
      error_message = "write-behind (state_bucket set) needs parallelization_factor = 1: a shard's snapshot has one writer."
    }
  }

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.on_failure.arn
    }
  }
}

# Exactly the calls in src/iotpm/adapters and the event source mapping, on exactly these
# resources. Written with jsonencode (not a data source) so the offline tests can read it.
locals {
  statements = concat([
    {
      Sid      = "ReadStream"
      Effect   = "Allow"
      Action   = ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards", "kinesis:SubscribeToShard"]
      Resource = [var.stream_arn]
    },
    { Sid = "ListStreams", Effect = "Allow", Action = ["kinesis:ListStreams"], Resource = ["*"] },
    {
      Sid      = "Tables"
      Effect   = "Allow"
      Action   = ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
      Resource = values(var.table_arns)
    },
    { Sid = "Archive", Effect = "Allow", Action = ["s3:PutObject"], Resource = ["${var.archive_bucket_arn}/*"] },
    { Sid = "Alerts", Effect = "Allow", Action = ["sns:Publish"], Resource = [var.alerts_topic_arn] },
    { Sid = "OnFailureQueue", Effect = "Allow", Action = ["sqs:SendMessage"], Resource = [aws_sqs_queue.on_failure.arn] },
    { Sid = "DataKey", Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey"], Resource = [var.kms_key_arn] },
    ], var.state_bucket != "" ? [
    # the batch log is a partition of the readings table, read back by the compaction
    { Sid = "BatchLog", Effect = "Allow", Action = ["dynamodb:Query"], Resource = [var.table_arns["readings"]] },
    { Sid = "Snapshots", Effect = "Allow", Action = ["s3:GetObject", "s3:PutObject"], Resource = ["${var.state_bucket_arn}/*"] },
    ] : [], local.timestream ? [
    { Sid = "Timestream", Effect = "Allow", Action = ["timestream:WriteRecords"], Resource = [var.timestream_table_arn] },
    { Sid = "TimestreamEndpoints", Effect = "Allow", Action = ["timestream:DescribeEndpoints"], Resource = ["*"] },
  ] : [], local.operator_statements)
  policy_json = jsonencode({ Version = "2012-10-17", Statement = local.statements })
}
