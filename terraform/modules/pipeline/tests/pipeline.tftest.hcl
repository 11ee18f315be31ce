# Offline tests of an environment root (run in each of dev, staging, prod, local with
# that environment's terraform.tfvars): `terraform test` with a mocked AWS provider.
# They assert what must hold in every environment, and what each environment promises.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:root" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  # Mocked computed values are random strings; arguments the provider checks as ARNs need ARNs.
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/mock" }
  }
  mock_resource "aws_kinesis_stream" {
    defaults = { arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/mock" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/mock" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::mock" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-west-1:123456789012:mock", url = "https://sqs.eu-west-1.amazonaws.com/123456789012/mock" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:123456789012:mock" }
  }
  mock_resource "aws_lambda_function" {
    defaults = {
      arn        = "arn:aws:lambda:eu-west-1:123456789012:function:mock"
      invoke_arn = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:mock/invocations"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:mock" }
  }
  mock_resource "aws_timestreamwrite_table" {
    defaults = { arn = "arn:aws:timestream:eu-west-1:123456789012:database/mock/table/mock" }
  }
  mock_resource "aws_api_gateway_rest_api" {
    defaults = { execution_arn = "arn:aws:execute-api:eu-west-1:123456789012:mock" }
  }
}

variables {
  # Any zip will do offline; the real ones come from lambda_build/build.py.
  processor_zip  = "tests/fixture.zip"
  api_zip        = "tests/fixture.zip"
  compaction_zip = "tests/fixture.zip"
}

run "names_carry_project_and_environment" {
  command = apply # mocked: nothing is created

  assert {
    condition     = output.name_prefix == "iotpm-${var.environment}"
    error_message = "Resource names must start with iotpm-<environment>."
  }
  assert {
    condition     = alltrue([for role, name in module.storage.table_names : name == "iotpm-${var.environment}-${role}"])
    error_message = "Tables must be named iotpm-<environment>-<role>."
  }
  assert {
    condition     = module.stream.name == "iotpm-${var.environment}-telemetry"
    error_message = "The stream must be named iotpm-<environment>-telemetry."
  }
}

run "processor_policy_is_least_privilege" {
  command = apply # mocked: nothing is created

  assert {
    condition = toset(flatten([for s in jsondecode(module.processor.policy_json).Statement : s.Action])) == toset(concat(
      ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords", "kinesis:GetShardIterator",
        "kinesis:ListShards", "kinesis:SubscribeToShard", "kinesis:ListStreams",
        "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
      "s3:PutObject", "sns:Publish", "sqs:SendMessage", "kms:Decrypt", "kms:GenerateDataKey"],
      var.enable_timestream ? ["timestream:WriteRecords", "timestream:DescribeEndpoints"] : [],
      var.write_behind ? ["dynamodb:Query", "s3:GetObject"] : []
    ))
    error_message = "The processor may call exactly what its adapters call, nothing more."
  }
  assert {
    condition = var.write_behind == (
      lookup(module.processor.environment, "IOTPM_STATE_BUCKET", "") == module.storage.state_bucket
    )
    error_message = "Write-behind gives the processor the state bucket (and only then)."
  }
  assert {
    condition = alltrue([
      for s in jsondecode(module.processor.policy_json).Statement :
      !contains(s.Resource, "*") || contains(["ListStreams", "TimestreamEndpoints"], s.Sid)
    ])
    error_message = "Only ListStreams and Timestream endpoint discovery may use Resource \"*\" (AWS defines no resource for them)."
  }
  assert {
    condition     = !anytrue([for s in jsondecode(module.processor.policy_json).Statement : anytrue([for a in s.Action : endswith(a, "*")])])
    error_message = "No wildcard actions."
  }
}

run "api_policy_reads_without_scan" {
  command = apply # mocked: nothing is created

  assert {
    condition     = toset(flatten([for s in jsondecode(module.api.policy_json).Statement : s.Action if !startswith(s.Sid, "Operator")])) == toset(["dynamodb:BatchGetItem", "dynamodb:GetItem", "dynamodb:Query", "kms:Decrypt"])
    error_message = "The API reads the pipeline's tables with GetItem, Query and BatchGetItem only (no Scan, no writes)."
  }
  assert {
    condition = alltrue(flatten([for s in jsondecode(module.api.policy_json).Statement : [
      for r in s.Resource : contains(values(module.storage.operator_table_arns), r)
    ] if contains(s.Action, "dynamodb:PutItem")]))
    error_message = "The API writes only the operator's tables (registry, config, audit: operator.tf)."
  }
}

run "iot_policy_binds_each_device_to_itself" {
  command = apply # mocked: nothing is created

  assert {
    condition     = endswith(jsondecode(module.iot.policy_json).Statement[0].Resource, ":client/$${iot:Connection.Thing.ThingName}")
    error_message = "A device may connect only with its own thing name as client id."
  }
  assert {
    condition     = jsondecode(module.iot.policy_json).Statement[0].Condition.Bool["iot:Connection.Thing.IsAttached"] == "true"
    error_message = "Connect must require the certificate to be attached to the thing."
  }
  assert {
    condition     = endswith(jsondecode(module.iot.policy_json).Statement[1].Resource, ":topic/$aws/rules/${module.iot.rule_name}/iotpm/$${iot:Connection.Thing.ThingName}/telemetry")
    error_message = "A device may publish only to its own telemetry topic, through Basic Ingest to the telemetry rule."
  }
  assert {
    condition     = length(jsondecode(module.iot.policy_json).Statement) == 2
    error_message = "Devices get Connect and Publish, nothing else."
  }
  assert {
    condition     = module.iot.topic_filter == "iotpm/+/telemetry"
    error_message = "The rule reads every device's telemetry topic."
  }
}

run "event_source_mapping_retries_safely" {
  command = apply # mocked: nothing is created

  assert {
    condition     = module.processor.event_source_mapping.function_response_types == toset(["ReportBatchItemFailures"])
    error_message = "Partial batch responses must be on."
  }
  assert {
    condition     = module.processor.event_source_mapping.bisect_batch_on_function_error
    error_message = "Bisect on error must be on."
  }
  assert {
    condition     = module.processor.event_source_mapping.maximum_retry_attempts == var.max_retries && module.processor.event_source_mapping.maximum_record_age_in_seconds == var.max_record_age_s
    error_message = "Retries and record age must be bounded by the variables."
  }
  assert {
    condition     = module.processor.event_source_mapping.batch_size == var.batch_size && module.processor.event_source_mapping.starting_position == "TRIM_HORIZON"
    error_message = "Batch size from the variable; start at the oldest record."
  }
  assert {
    condition     = length(module.processor.event_source_mapping.destination_config[0].on_failure) == 1
    error_message = "Failed batches must go to the on-failure queue."
  }
}

run "encrypted_everywhere" {
  command = apply # mocked: nothing is created

  assert {
    condition     = alltrue([for t in module.storage.tables_encryption : t.enabled && t.kms_key_arn == module.kms.arn])
    error_message = "Every table is encrypted with the environment's key."
  }
  assert {
    condition     = module.stream.encryption_type == "KMS"
    error_message = "The stream is KMS-encrypted."
  }
  assert {
    condition     = module.storage.archive_sse_algorithm == "aws:kms"
    error_message = "The archive is SSE-KMS."
  }
  assert {
    condition     = module.storage.point_in_time_recovery
    error_message = "PITR is on."
  }
  assert {
    condition     = module.storage.public_access_blocked
    error_message = "The archive blocks every kind of public access."
  }
  assert {
    condition     = var.environment == "local" ? module.storage.archive_policy == "" : (jsondecode(module.storage.archive_policy).Statement[0].Condition.Bool["aws:SecureTransport"] == "false" && jsondecode(module.storage.archive_policy).Statement[0].Effect == "Deny")
    error_message = "The archive refuses plain HTTP (everywhere but on the local emulator, which speaks only HTTP)."
  }
}

run "archive_lifecycle_and_object_lock" {
  command = apply # mocked: nothing is created

  assert {
    condition     = module.storage.lifecycle_transitions == { STANDARD_IA = 30, GLACIER = 90 }
    error_message = "Standard -> IA at 30 days -> Glacier at 90 days."
  }
  assert {
    condition     = var.environment != "prod" || module.storage.object_lock == { mode = "COMPLIANCE", days = 365 }
    error_message = "prod keeps its archive under COMPLIANCE Object Lock for a year."
  }
  assert {
    condition     = var.environment != "prod" || (module.storage.deletion_protection && !var.force_destroy_buckets)
    error_message = "prod protects its tables and archive from deletion."
  }
}

run "rejects_an_unknown_environment" {
  command = plan
  variables {
    environment = "qa"
  }
  expect_failures = [var.environment]
}

run "rejects_one_availability_zone" {
  command = plan
  variables {
    availability_zones = ["eu-west-1a"]
  }
  expect_failures = [var.availability_zones]
}

run "rejects_an_oversize_batch" {
  command = plan
  variables {
    batch_size = 20000
  }
  expect_failures = [var.batch_size]
}

run "a_fresh_account_works" {
  command = apply # mocked: nothing is created

  assert {
    condition     = module.api.account_logging_role_arn != null && jsondecode(module.api.account_logging_role_trust).Statement[0].Principal.Service == "apigateway.amazonaws.com"
    error_message = "API Gateway's account CloudWatch role must be set (a fresh account refuses a stage with access logs otherwise)."
  }
  assert {
    condition     = var.archive_expiration_days == 0 || module.storage.noncurrent_expiration_days == var.archive_noncurrent_days
    error_message = "An expiring, versioned archive must also expire noncurrent versions (else expiry deletes nothing)."
  }
  assert {
    condition     = module.processor.reserved_concurrency == var.processor_reserved_concurrency && var.processor_reserved_concurrency >= 1
    error_message = "The processor has reserved concurrency, so API load cannot starve it."
  }
}

run "dashboard_statistics_mean_what_they_say" {
  command = apply # mocked: nothing is created

  assert {
    condition = alltrue(flatten([
      for w in jsondecode(module.observability.dashboard_body).widgets : [
        for m in w.properties.metrics : m[length(m) - 1].stat == (
          contains(["BatchLatency", "Duration", "Latency", "IntegrationLatency"], m[1]) ? "Average" :
        contains(["RecordAge", "IteratorAge"], m[1]) ? "Maximum" : "Sum")
      ]
    ]))
    error_message = "Latencies and durations are averaged, ages are maxima, counts are sums."
  }
  assert {
    condition     = !anytrue([for w in jsondecode(module.observability.dashboard_body).widgets : can(w.properties.stat)])
    error_message = "No widget-wide statistic (it would sum latencies with counts)."
  }
}

run "iot_rule_errors_alarm" {
  command = apply # mocked: nothing is created

  assert {
    condition     = module.observability.alarms["iot-rule-errors"].metric == "Failure" && module.observability.alarms["iot-rule-errors"].dims.RuleName == module.iot.rule_name
    error_message = "A failing IoT rule action (readings not reaching the stream) must alarm."
  }
  assert {
    condition     = module.observability.alarms["iot-rule-parse-errors"].namespace == "AWS/IoT" && module.observability.alarms["iot-rule-parse-errors"].dims.RuleName == module.iot.rule_name
    error_message = "Messages the rule cannot parse must alarm."
  }
  assert {
    condition     = module.observability.alarms["compaction-errors"].metric == "Errors" && module.observability.alarms["compaction-errors"].dims.FunctionName == module.compaction.function_name
    error_message = "A failing compaction run (the Parquet job, or the idle-shard job whose failure leaves a stopped shard's readings to the log's 7-day expiry) must alarm."
  }
}

run "interface_endpoints_are_the_services_the_code_calls" {
  command = apply # mocked: nothing is created

  assert {
    condition     = toset(keys(module.network.interface_endpoints)) == toset(concat(["sns"], var.report_in_vpc ? ["athena"] : [], var.enable_timestream ? ["timestream.ingest-cell1"] : []))
    error_message = "Interface endpoints (about $7 a month each per AZ) only for services the in-VPC Lambdas call: SNS, Athena (the report, when in the VPC), and Timestream when on."
  }
  assert {
    condition     = toset(module.network.gateway_endpoints) == toset(["dynamodb", "s3"])
    error_message = "DynamoDB and S3 through the free gateway endpoints."
  }
}

run "service_principals_are_bound_to_this_account" {
  command = apply # mocked: nothing is created

  assert {
    condition = alltrue([
      for s in jsondecode(module.kms.policy).Statement :
      s.Sid == "AccountAdministers" || try(s.Condition.StringEquals["aws:SourceAccount"], "") == "123456789012"
    ])
    error_message = "Every service principal in the key policy is limited to this account (aws:SourceAccount)."
  }
  assert {
    condition     = jsondecode(module.kms.policy).Statement[2].Condition.ArnLike["aws:SourceArn"][0] == "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:*"
    error_message = "CloudWatch may use the key only for this account's alarms (aws:SourceArn)."
  }
  assert {
    condition = (
      jsondecode(module.iot.rule_role_trust).Statement[0].Condition.StringEquals["aws:SourceAccount"] == "123456789012" &&
      endswith(jsondecode(module.iot.rule_role_trust).Statement[0].Condition.ArnLike["aws:SourceArn"], ":rule/${module.iot.rule_name}")
    )
    error_message = "Only this account's telemetry rule may assume the IoT rule role."
  }
  assert {
    condition     = jsondecode(module.network.flow_logs_role_trust).Statement[0].Condition.StringEquals["aws:SourceAccount"] == "123456789012"
    error_message = "Only this account's flow logs may assume the flow logs role."
  }
  assert {
    condition     = jsondecode(module.api.account_logging_role_trust).Statement[0].Condition.StringEquals["aws:SourceAccount"] == "123456789012"
    error_message = "Only this account's API Gateway may assume its CloudWatch role."
  }
}

run "every_bucket_is_made_one_way" {
  command = apply # mocked: nothing is created

  assert {
    condition     = toset(keys(output.buckets)) == toset(["archive", "state", "results", "rule_errors"])
    error_message = "The environment's buckets are the archive, the snapshots, the Athena results and the rule errors (each from modules/bucket)."
  }
  assert {
    condition     = alltrue([for b in output.buckets : b.tls_only == (var.environment != "local")])
    error_message = "Every bucket refuses plain HTTP (aws:SecureTransport), everywhere but on the local emulator, which speaks only HTTP."
  }
  assert {
    condition     = alltrue([for b in output.buckets : b.force_destroy == (var.environment == "local")])
    error_message = "Only the local environment's buckets may be destroyed with their objects."
  }
  assert {
    condition     = alltrue([for b in output.buckets : b.sse_algorithm == "aws:kms" && b.public_access_blocked])
    error_message = "Every bucket is SSE-KMS and blocks every kind of public access."
  }
}

run "force_destroy_is_refused_outside_local" {
  command = plan
  variables {
    environment           = "prod"
    force_destroy_buckets = true
    buckets_tls_only      = true # the other local-only settings as prod has them
    alert_routes          = {}
  }
  expect_failures = [var.force_destroy_buckets]
}

run "plain_http_buckets_are_refused_outside_local" {
  command = plan
  variables {
    environment           = "staging"
    buckets_tls_only      = false
    force_destroy_buckets = false # the other local-only settings as staging has them
    alert_routes          = {}
  }
  expect_failures = [var.buckets_tls_only]
}

run "sns_may_use_the_key_for_this_environments_topics_only" {
  command = apply # mocked: nothing is created

  assert {
    condition = one([for s in jsondecode(module.kms.policy).Statement : s if s.Principal == { Service = "sns.amazonaws.com" }]) == {
      Sid       = "SnsDeliversToEncryptedQueues"
      Effect    = "Allow"
      Principal = { Service = "sns.amazonaws.com" }
      Action    = ["kms:Decrypt", "kms:GenerateDataKey*"]
      Resource  = "*"
      Condition = {
        StringEquals = { "aws:SourceAccount" = "123456789012" }
        ArnLike      = { "aws:SourceArn" = "arn:aws:sns:eu-west-1:123456789012:iotpm-${var.environment}-*" }
      }
    }
    error_message = "SNS must be able to deliver to the CMK-encrypted route queues, on behalf of this environment's topics only."
  }
  assert {
    condition     = alltrue([for arn in [module.alerting.machine_topic_arn, module.alerting.pipeline_topic_arn] : can(regex("^arn:aws:sns:", arn))])
    error_message = "The routed topics are SNS topics (named iotpm-<environment>-..., matching the key's grant)."
  }
}

run "endpoints_admit_only_this_account_and_environment" {
  command = apply # mocked: nothing is created

  assert {
    condition     = toset(keys(module.network.endpoint_policies)) == toset(concat(module.network.gateway_endpoints, keys(module.network.interface_endpoints)))
    error_message = "Every VPC endpoint has a policy."
  }
  assert {
    condition = alltrue([for svc, p in module.network.endpoint_policies : alltrue([
      for s in jsondecode(p).Statement : s.Effect == "Allow" && s.Condition.StringEquals["aws:PrincipalAccount"] == "123456789012"
    ])])
    error_message = "Only this account's principals pass the endpoints."
  }
  assert {
    condition = (
      jsondecode(module.network.endpoint_policies["s3"]).Statement[0].Resource == ["arn:aws:s3:::iotpm-${var.environment}-*", "arn:aws:s3:::iotpm-${var.environment}-*/*"] &&
      jsondecode(module.network.endpoint_policies["dynamodb"]).Statement[0].Resource == ["arn:aws:dynamodb:eu-west-1:123456789012:table/iotpm-${var.environment}-*"]
    )
    error_message = "Through the gateways, only this environment's buckets and tables."
  }
  assert {
    condition     = alltrue([for role, b in output.buckets : startswith(b.name, "iotpm-${var.environment}-")]) && alltrue([for t in values(module.storage.table_names) : startswith(t, "iotpm-${var.environment}-")])
    error_message = "Every bucket and table is named so the gateway endpoint policies admit it."
  }
}

run "nothing_is_lost_at_the_rule" {
  command = apply # mocked: nothing is created

  assert {
    condition     = length(module.iot.error_action.s3) == 1 && module.iot.error_action.s3[0].bucket_name == output.rule_errors_bucket && startswith(module.iot.error_action.s3[0].key, module.iot.error_prefix)
    error_message = "The rule's error action keeps each failed message in the rule-errors bucket, under the prefix iotpm replay reads."
  }
  assert {
    condition     = contains([for s in jsondecode(module.iot.rule_role_policy).Statement : s.Resource if s.Action == "s3:PutObject"], "arn:aws:s3:::mock/${module.iot.error_prefix}*")
    error_message = "The rule's role may write failed messages under the prefix (and nowhere else in S3)."
  }
  assert {
    condition = (
      module.observability.alarms["iot-rule-error-action-failures"].metric == "ErrorActionFailure" &&
      module.observability.alarms["iot-rule-error-action-failures"].dims == { RuleName = module.iot.rule_name, ActionType = "S3" } &&
      module.observability.alarms["iot-rule-errors-kept"].metric == "ErrorActionSuccess" &&
      module.observability.alarms["iot-rule-throttled"].metric == "RuleMessageThrottled"
    )
    error_message = "Alarms fire when the rule fails to deliver (messages kept for replay), when it cannot keep them, and when IoT Core throttles it."
  }
}

run "routes_are_https_outside_local" {
  command = apply # mocked: nothing is created

  assert {
    condition     = var.environment == "local" || alltrue([for r in values(var.alert_routes) : r.protocol != "http"])
    error_message = "Only the local environment has plain-http routes (its webhook receiver)."
  }
}

# Issue 30: the archive's compaction is wired, and Athena's named queries read what it writes.
run "named_queries_read_compacted_parquet_and_pending_raw" {
  command = apply # mocked: nothing is created

  assert {
    condition     = toset(module.compaction.table_names) == toset(["compacted_readings", "compaction_state"])
    error_message = "The pipeline must make the compaction's Glue tables (compacted_readings, compaction_state)."
  }
  assert {
    condition = alltrue([for k, q in module.analytics.named_queries :
    strcontains(q, "compacted_readings") && strcontains(q, "compaction_state") && !strcontains(q, "$${raw_pending}") && !strcontains(q, "$${compacted_recent}") if strcontains(q, "raw_records")])
    error_message = "Every named query over the archive must read compacted_readings and compaction_state, with readings.sql's parts rendered (no template left)."
  }
  assert {
    condition     = length([for k, q in module.analytics.named_queries : k if strcontains(q, "compacted_readings")]) >= 4
    error_message = "The four named queries over readings must read the compacted Parquet."
  }
  assert {
    condition     = !contains(keys(module.analytics.named_queries), "raw_pending") && !contains(keys(module.analytics.named_queries), "compacted_recent")
    error_message = "readings.sql's parts are not named queries."
  }
}

# Issue 30: the cost levers are choices, and each environment's tfvars decides them.
run "cost_levers_follow_the_tfvars" {
  command = apply # mocked: nothing is created

  assert {
    condition     = module.stream.mode == var.stream_mode && (var.stream_mode == "ON_DEMAND" || module.stream.shard_count == var.shard_count)
    error_message = "The stream's capacity mode and shard count must be the tfvars'."
  }
  assert {
    condition     = module.processor.tracing_mode == var.processor_tracing && module.api.function_name != ""
    error_message = "The processor's X-Ray mode must be processor_tracing."
  }
  assert {
    condition     = length(module.network.endpoint_subnet_ids) == coalesce(var.endpoint_az_count, length(var.availability_zones))
    error_message = "The interface endpoints must sit in endpoint_az_count AZs (all when null)."
  }
  assert {
    condition     = module.api.xray_sampling_rate == var.api_xray_sampling_rate
    error_message = "The API stage's X-Ray sampling rule must trace api_xray_sampling_rate of its requests (none when null)."
  }
  assert {
    # X-Ray applies a rule to API Gateway requests by "<rest api name>/<stage>" and the stage type
    condition = var.api_xray_sampling_rate == null ? module.api.xray_sampling_rule == null : (
      module.api.xray_sampling_rule.service_name == "${var.project}-${var.environment}-api/${module.api.stage_name}"
      && module.api.xray_sampling_rule.service_type == "AWS::ApiGateway::Stage"
    )
    error_message = "The sampling rule must match this stage's requests: service name <rest api>/<stage>, type AWS::ApiGateway::Stage."
  }
  assert {
    condition     = var.environment != "prod" || (module.stream.mode == "PROVISIONED" && module.processor.tracing_mode == "PassThrough" && length(module.network.endpoint_subnet_ids) == 2 && coalesce(module.api.xray_sampling_rate, 1) < 1)
    error_message = "Prod chooses the cheap levers: provisioned Kinesis, the processor's tracing PassThrough, endpoints in 2 AZs, the API sampled."
  }
}

run "api_sampling_outside_zero_to_one_is_refused" {
  command = plan
  variables {
    api_xray_sampling_rate = 1.5
  }
  expect_failures = [var.api_xray_sampling_rate]
}

run "shard_count_below_one_is_refused" {
  command = plan
  variables {
    stream_mode = "PROVISIONED"
    shard_count = 0
  }
  expect_failures = [var.shard_count]
}

run "unknown_stream_mode_and_tracing_are_refused" {
  command = plan
  variables {
    stream_mode       = "PROVISIONED_PLUS"
    processor_tracing = "Sampled"
  }
  expect_failures = [var.stream_mode, var.processor_tracing]
}

run "endpoints_in_one_az_are_refused" {
  command = plan
  variables {
    endpoint_az_count = 1
  }
  expect_failures = [var.endpoint_az_count]
}

run "a_device_may_name_its_gateway" {
  command = apply # mocked: nothing is created
  variables {
    things = {
      "gw-0001"   = { device_type = "gateway", site = "plant-1", line = "line-1" }
      "pump-0100" = { device_type = "pump", site = "plant-1", line = "line-1", gateway = "gw-0001" }
    }
  }
}

run "a_gateway_must_be_a_gateway_thing" {
  command = plan
  variables {
    things = {
      "pump-0000" = { device_type = "pump", site = "plant-1", line = "line-1" }
      "pump-0100" = { device_type = "pump", site = "plant-1", line = "line-1", gateway = "pump-0000" }
      "pump-0101" = { device_type = "pump", site = "plant-1", line = "line-1", gateway = "gw-missing" }
    }
  }
  expect_failures = [var.things]
}

run "a_gateway_is_not_its_own_gateway" {
  command = plan
  variables {
    things = {
      "gw-0001" = { device_type = "gateway", site = "plant-1", line = "line-1", gateway = "gw-0001" }
    }
  }
  expect_failures = [var.things]
}

run "a_gateway_is_not_under_a_gateway" {
  command = plan
  variables {
    things = {
      "gw-0001" = { device_type = "gateway", site = "plant-1", line = "line-1" }
      "gw-0002" = { device_type = "gateway", site = "plant-1", line = "line-1", gateway = "gw-0001" }
    }
  }
  expect_failures = [var.things]
}

run "report_outside_the_vpc_needs_no_athena_endpoint" {
  command = apply # mocked: nothing is created
  variables {
    report_in_vpc = false
  }

  assert {
    condition     = length(module.report.vpc_subnet_ids) == 0
    error_message = "With report_in_vpc false the report function must have no vpc_config."
  }
  assert {
    condition     = !contains(keys(module.network.interface_endpoints), "athena") && contains(keys(module.network.interface_endpoints), "sns")
    error_message = "With the report outside the VPC no in-VPC function calls Athena: no Athena endpoint (SNS stays, the processor publishes)."
  }
}

run "report_in_the_vpc_has_its_athena_endpoint" {
  command = apply # mocked: nothing is created
  variables {
    report_in_vpc = true
  }

  assert {
    condition     = length(module.report.vpc_subnet_ids) == length(var.availability_zones)
    error_message = "With report_in_vpc true the report function must run in the private subnets."
  }
  assert {
    condition     = contains(keys(module.network.interface_endpoints), "athena")
    error_message = "A report in the VPC reaches Athena through its interface endpoint."
  }
}

# Issue 30: write-behind's batch log expires a week after it is written; the shards no batch
# compacts (a plant stopped) are compacted by the compaction function's idle-shard schedule.
run "write_behind_has_the_idle_shard_compaction" {
  command = plan

  assert {
    condition     = module.compaction.idle_shards_schedule_name == "${var.project}-${var.environment}-idle-shards" && strcontains(module.compaction.policy_json, "\"s3:prefix\":[\"snapshots/*\"]") && strcontains(module.compaction.policy_json, "ReadBatchLog")
    error_message = "With write-behind the compaction function compacts the idle shards hourly, with the snapshots and the batch log in its policy."
  }
}

run "write_through_has_no_idle_shard_compaction" {
  command = plan

  variables {
    write_behind = false
  }

  assert {
    condition     = module.compaction.idle_shards_schedule_name == null && !strcontains(module.compaction.policy_json, "dynamodb:")
    error_message = "Without write-behind nothing needs compacting between batches: no schedule, no table grants."
  }
}
