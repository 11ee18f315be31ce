# The archive as tables: a Glue database with the raw/ and quarantine/ prefixes as
# tables whose partitions are projected from the key layout (no crawler, no
# MSCK REPAIR): year=YYYY/month=MM/day=DD/hour=HH, as service/processor.py writes them.
# The archive's key is (shard_id, sequence_number): a Lambda retry can archive a batch
# twice, so the named queries read through the de-duplicating subquery in
# src/iotpm/analytics/sql/readings.sql.

locals {
  database = replace("${var.name}_archive", "-", "_")
  tables = {
    raw_records = {
      prefix      = "raw"
      description = "Every Kinesis record as received (gzip JSON Lines); key (shard_id, sequence_number)"
      columns = [
        { name = "arrival_ms", type = "bigint", comment = "Kinesis approximate arrival, epoch ms" },
        { name = "data", type = "string", comment = "the record's bytes as UTF-8 text (base64: prefix when not UTF-8)" },
        { name = "partition_key", type = "string", comment = "the publishing thing (IoT rule partition key)" },
        { name = "sequence_number", type = "string", comment = "Kinesis sequence number" },
        { name = "shard_id", type = "string", comment = "Kinesis shard" },
      ]
    }
    quarantine_records = {
      prefix      = "quarantine"
      description = "Messages the processor rejected, with the reason"
      columns = [
        { name = "reason", type = "string", comment = "why it was rejected (machine-readable)" },
        { name = "detail", type = "string", comment = "what was wrong" },
        { name = "device_id", type = "string", comment = "the device the message named, if any" },
        { name = "sequence_number", type = "string", comment = "Kinesis sequence number of its record" },
        { name = "partition_key", type = "string", comment = "the publishing thing" },
        { name = "arrival_ms", type = "bigint", comment = "Kinesis approximate arrival, epoch ms" },
        { name = "payload", type = "string", comment = "the message as received (JSON text)" },
        { name = "partial", type = "boolean", comment = "true: the rest of the record was stored (names past the channel cap)" },
      ]
    }
  }
  partition_order = ["year", "month", "day", "hour"] # key order (a map's keys would sort)
  partitions = {
    year  = { range = "${var.projection_years[0]},${var.projection_years[1]}", digits = null }
    month = { range = "1,12", digits = 2 }
    day   = { range = "1,31", digits = 2 }
    hour  = { range = "0,23", digits = 2 }
  }
  projection = merge(
    { "projection.enabled" = "true" },
    merge([for p, spec in local.partitions : merge(
      { "projection.${p}.type" = "integer", "projection.${p}.range" = spec.range },
      spec.digits == null ? {} : { "projection.${p}.digits" = tostring(spec.digits) },
    )]...),
  )
}

resource "aws_glue_catalog_database" "this" {
  name        = local.database
  description = "The ${var.name} archive (s3://${var.archive_bucket}) as Athena tables"
  tags        = var.tags
}

resource "aws_glue_catalog_table" "this" {
  for_each      = local.tables
  name          = each.key
  database_name = aws_glue_catalog_database.this.name
  description   = each.value.description
  table_type    = "EXTERNAL_TABLE"

  parameters = merge(local.projection, {
    "EXTERNAL"                  = "TRUE"
    "classification"            = "json"
    "compressionType"           = "gzip"
    "storage.location.template" = "s3://${var.archive_bucket}/${each.value.prefix}/year=$${year}/month=$${month}/day=$${day}/hour=$${hour}/"
  })

  dynamic "partition_keys" {
    for_each = local.partition_order
    content {
      name = partition_keys.value
      type = "string"
    }
  }

  storage_descriptor {
    location      = "s3://${var.archive_bucket}/${each.value.prefix}/"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
      parameters            = { "ignore.malformed.json" = "true" }
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}
