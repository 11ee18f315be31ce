# The scheduled fleet report: an EventBridge Scheduler schedule per scope invokes the
# report Lambda, which reads the fleet through the API's handler (in-process, DynamoDB
# behind it), runs the data-quality named queries on Athena, writes HTML and JSON to
# the results bucket's reports/ prefix and publishes a summary for the alert routes.

module "function" {
  source       = "../function"
  name         = "${var.name}-report"
  description  = "iotpm fleet report (src/iotpm/analytics/report.py)"
  zip_path     = var.zip_path
  handler      = "iotpm.handlers.report.handler"
  architecture = var.architecture
  memory_mb    = 1024
  timeout_s    = 600
  environment = merge({
    IOTPM_ENVIRONMENT      = var.environment
    IOTPM_READINGS_TABLE   = var.tables["readings"]
    IOTPM_DEVICES_TABLE    = var.tables["devices"]
    IOTPM_ANOMALIES_TABLE  = var.tables["anomalies"]
    IOTPM_ROLLUPS_TABLE    = var.tables["rollups"]
    IOTPM_REPORTS_BUCKET   = var.results_bucket
    IOTPM_ATHENA_WORKGROUP = var.athena_workgroup
    IOTPM_ATHENA_DATABASE  = var.glue_database
    IOTPM_REPORT_TOPIC_ARN = var.summary_topic_arn
  }, local.operator_env) # the alarms' states: operator.tf
  policy_json        = local.policy_json
  in_vpc             = var.in_vpc
  subnet_ids         = var.subnet_ids
  security_group_ids = var.security_group_ids
  log_retention_days = var.log_retention_days
  kms_key_arn        = var.kms_key_arn
  tags               = var.tags
}

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  glue_arn = "arn:${data.aws_partition.current.partition}:glue:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}"
  policy_json = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        Sid      = "ReadTables"
        Effect   = "Allow"
        Action   = ["dynamodb:GetItem", "dynamodb:Query"]
        Resource = concat(values(var.table_arns), [for arn in values(var.table_arns) : "${arn}/index/*"])
      },
      # the fleet is read as the API reads it: a page of keys from a keys-only index, then the records by key
      { Sid = "ReadDevicesByKey", Effect = "Allow", Action = ["dynamodb:BatchGetItem"], Resource = [var.table_arns["devices"]] },
      {
        Sid      = "RunNamedQueries"
        Effect   = "Allow"
        Action   = ["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults"]
        Resource = [var.athena_workgroup_arn]
      },
      {
        Sid      = "ReadCatalog"
        Effect   = "Allow"
        Action   = ["glue:GetDatabase", "glue:GetTable", "glue:GetPartitions"]
        Resource = ["${local.glue_arn}:catalog", "${local.glue_arn}:database/${var.glue_database}", "${local.glue_arn}:table/${var.glue_database}/*"]
      },
      {
        Sid      = "ReadArchive"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation"]
        Resource = [var.archive_bucket_arn, "${var.archive_bucket_arn}/*"]
      },
      {
        Sid      = "ResultsAndReports"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:AbortMultipartUpload"]
        Resource = [var.results_bucket_arn, "${var.results_bucket_arn}/*"]
      },
      { Sid = "DataKey", Effect = "Allow", Action = ["kms:Decrypt", "kms:GenerateDataKey"], Resource = [var.kms_key_arn] },
      ], var.summary_topic_arn == "" ? [] : [
      { Sid = "Summary", Effect = "Allow", Action = ["sns:Publish"], Resource = [var.summary_topic_arn] },
    ], local.operator_statements)
  })
}

module "schedule" {
  source              = "../schedule"
  role_name           = "${var.name}-report-scheduler"
  policy_name         = "invoke-report"
  function_arn        = module.function.arn
  schedule_expression = var.schedule_expression
  timezone            = var.schedule_timezone
  kms_key_arn         = var.kms_key_arn
  tags                = var.tags
  schedules = { for k, scope in var.scopes : k => {
    name        = "${var.name}-report-${k}"
    description = "iotpm fleet report: ${k}"
    input       = jsonencode({ site = scope.site, line = scope.line, hours = scope.hours })
  } }
}
