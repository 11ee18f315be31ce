# The alert topic, the alarms that watch the pipeline, and its dashboard.

data "aws_region" "current" {}

resource "aws_sns_topic" "alerts" {
  name              = "${var.name}-alerts"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

resource "aws_sns_topic_subscription" "email" {
  for_each  = toset(var.alert_emails)
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  lambda_dims = { processor = var.processor_function_name, api = var.api_function_name, compaction = var.compaction_function_name }
  alarms = merge(
    { for k, fn in local.lambda_dims : "${k}-errors" => {
      namespace   = "AWS/Lambda", metric = "Errors", stat = "Sum", threshold = 0, dims = { FunctionName = fn }
      description = "The ${k} function failed (errors are retried or sent to the on-failure queue)"
    } },
    { for k, fn in local.lambda_dims : "${k}-throttles" => {
      namespace   = "AWS/Lambda", metric = "Throttles", stat = "Sum", threshold = 0, dims = { FunctionName = fn }
      description = "The ${k} function was throttled"
    } },
    {
      "processor-iterator-age" = {
        namespace = "AWS/Lambda", metric = "IteratorAge", stat = "Maximum", threshold = var.iterator_age_alarm_ms
        dims      = { FunctionName = var.processor_function_name }, description = "The processor is falling behind the stream"
      }
      "on-failure-queue-depth" = {
        namespace = "AWS/SQS", metric = "ApproximateNumberOfMessagesVisible", stat = "Maximum", threshold = 0
        dims      = { QueueName = var.on_failure_queue_name }, description = "Batches the processor gave up on wait in the on-failure queue"
      }
      "anomaly-rate" = {
        namespace = "iotpm", metric = "AnomaliesRaised", stat = "Sum", threshold = var.anomalies_per_5min_alarm
        dims      = { Environment = var.environment, Function = "processor" }, description = "Unusually many machine alarms raised"
      }
      # A device's records broke the pipeline's limits; the processor names it (DeviceReadingsRefused, its log).
      "device-refused" = {
        namespace = "iotpm", metric = "ReadingsRefused", stat = "Sum", threshold = 0
        dims      = { Environment = var.environment, Function = "processor" }, description = "A device sent more readings or metric names than its caps, or readings for other devices: the DeviceReadingsRefused metric (DeviceId) and the processor's 'device refused' log lines name it"
      }
      # The rule's Kinesis action failed (the message went to the rule-errors bucket instead).
      "iot-rule-errors" = {
        namespace = "AWS/IoT", metric = "Failure", stat = "Sum", threshold = 0
        dims      = { RuleName = var.iot_rule_name, ActionType = "Kinesis" }, description = "The IoT rule could not put readings into the stream"
      }
      # The error action could not keep the message either (it is lost): nothing may be lost at the rule.
      "iot-rule-error-action-failures" = {
        namespace = "AWS/IoT", metric = "ErrorActionFailure", stat = "Sum", threshold = 0
        dims      = { RuleName = var.iot_rule_name, ActionType = "S3" }, description = "The IoT rule could not write a failed message to the rule-errors bucket: it is lost"
      }
      # Messages went to the rule-errors bucket: replay them (iotpm replay) once the cause is fixed.
      "iot-rule-errors-kept" = {
        namespace = "AWS/IoT", metric = "ErrorActionSuccess", stat = "Sum", threshold = 0
        dims      = { RuleName = var.iot_rule_name, ActionType = "S3" }, description = "Messages the IoT rule could not deliver wait in the rule-errors bucket (iotpm replay)"
      }
      "iot-rule-throttled" = {
        namespace = "AWS/IoT", metric = "RuleMessageThrottled", stat = "Sum", threshold = 0
        dims      = { RuleName = var.iot_rule_name }, description = "IoT Core throttled messages for the telemetry rule (they never reached it)"
      }
      "iot-rule-parse-errors" = {
        namespace = "AWS/IoT", metric = "ParseError", stat = "Sum", threshold = 0
        dims      = { RuleName = var.iot_rule_name }, description = "Devices publish messages the IoT rule cannot parse as JSON"
      }
      "api-5xx" = {
        namespace = "AWS/ApiGateway", metric = "5XXError", stat = "Sum", threshold = 0
        dims      = { ApiName = var.rest_api_name, Stage = var.stage_name }, description = "The analytics API answered 5xx"
      }
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each            = local.alarms
  alarm_name          = "${var.name}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  statistic           = each.value.stat
  dimensions          = each.value.dims
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alerts.arn]
  ok_actions          = [aws_sns_topic.alerts.arn]
  tags                = var.tags
}

# Each metric's statistic by what it measures: latencies and durations are averaged (a sum
# of latencies grows with traffic and means nothing), ages are a maximum (the oldest record
# is what falls behind), counts are summed.
locals {
  average = ["BatchLatency", "Duration", "Latency", "IntegrationLatency"]
  maximum = ["RecordAge", "IteratorAge"]
  stat    = { for m in concat(local.average, local.maximum) : m => contains(local.average, m) ? "Average" : "Maximum" }
  own     = ["Environment", var.environment, "Function", "processor"]
  widgets = [
    { title = "Readings", metrics = [for m in ["ReadingsReceived", "ReadingsProcessed", "ReadingsQuarantined", "ReadingsDuplicate"] : concat(["iotpm", m], local.own)] },
    { title = "Alarms", metrics = [for m in ["AnomaliesRaised", "AnomaliesCleared", "AlertsSent"] : concat(["iotpm", m], local.own)] },
    { title = "Batch latency (average) and record age (maximum), ms", metrics = [for m in ["BatchLatency", "RecordAge"] : concat(["iotpm", m], local.own)] },
    { title = "Processor errors and throttles", metrics = [for m in ["Errors", "Throttles"] : ["AWS/Lambda", m, "FunctionName", var.processor_function_name]] },
    { title = "Processor duration (average) and iterator age (maximum), ms", metrics = [for m in ["Duration", "IteratorAge"] : ["AWS/Lambda", m, "FunctionName", var.processor_function_name]] },
    { title = "Stream in", metrics = [for m in ["IncomingRecords", "WriteProvisionedThroughputExceeded"] : ["AWS/Kinesis", m, "StreamName", var.stream_name]] },
    { title = "IoT rule", metrics = concat([["AWS/IoT", "Success", "RuleName", var.iot_rule_name, "ActionType", "Kinesis"], ["AWS/IoT", "Failure", "RuleName", var.iot_rule_name, "ActionType", "Kinesis"]], [for m in ["ErrorActionSuccess", "ErrorActionFailure"] : ["AWS/IoT", m, "RuleName", var.iot_rule_name, "ActionType", "S3"]], [for m in ["ParseError", "RuleMessageThrottled"] : ["AWS/IoT", m, "RuleName", var.iot_rule_name]]) },
    { title = "API requests and errors", metrics = [for m in ["Count", "4XXError", "5XXError"] : ["AWS/ApiGateway", m, "ApiName", var.rest_api_name, "Stage", var.stage_name]] },
    { title = "API latency (average), ms", metrics = [for m in ["Latency", "IntegrationLatency"] : ["AWS/ApiGateway", m, "ApiName", var.rest_api_name, "Stage", var.stage_name]] },
  ]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = "${var.name}-pipeline"
  dashboard_body = jsonencode({
    widgets = [
      for i, w in local.widgets : {
        type   = "metric"
        x      = (i % 2) * 12
        y      = floor(i / 2) * 6
        width  = 12
        height = 6
        properties = {
          title   = w.title
          metrics = [for m in w.metrics : concat(m, [{ stat = lookup(local.stat, m[1], "Sum") }])]
          region  = data.aws_region.current.name
          period  = 60
        }
      }
    ]
  })
}
