# The Athena workgroup: results encrypted with the environment's key in their own
# bucket, settings enforced (a client cannot send results elsewhere or unencrypted),
# a per-query scan cutoff, and the named queries.

data "aws_caller_identity" "current" {}

module "results" {
  source        = "../bucket"
  name          = "${var.name}-athena-results-${data.aws_caller_identity.current.account_id}"
  kms_key_arn   = var.kms_key_arn
  force_destroy = var.force_destroy_results
  tls_only      = var.tls_only
  lifecycle_rules = [
    # the fleet reports under reports/ are kept
    { id = "expire-results", prefix = "results/", expiration_days = var.results_expiration_days, noncurrent_expiration_days = 1 },
  ]
  tags = var.tags
}

resource "aws_athena_workgroup" "this" {
  name          = "${var.name}-analytics"
  description   = "Named queries over the ${var.name} archive"
  force_destroy = var.force_destroy_results

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.bytes_scanned_cutoff

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location       = "s3://${module.results.name}/results/"
      expected_bucket_owner = data.aws_caller_identity.current.account_id

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }

  tags = merge(var.tags, { Name = "${var.name}-analytics" })
}

resource "aws_athena_named_query" "this" {
  for_each    = var.named_queries
  name        = each.key
  description = substr(each.value.description, 0, 1024)
  workgroup   = aws_athena_workgroup.this.id
  database    = aws_glue_catalog_database.this.name
  query       = each.value.query
}
