# The tables ${readings} (src/iotpm/analytics/sql/readings.sql) reads beside raw_records
# and quarantine_records, in the archive's Glue database: the compacted hours as Parquet
# (partitions projected from the same key layout as raw/) and the job's mark.

locals {
  compacted_columns = [
    { name = "device_id", type = "string", comment = "the publishing thing (the record's partition key)" },
    { name = "site", type = "string", comment = "site as the payload named it" },
    { name = "line", type = "string", comment = "line as the payload named it" },
    { name = "device_type", type = "string", comment = "device type as the payload named it" },
    { name = "ts_ms", type = "bigint", comment = "the reading's own time, epoch ms" },
    { name = "arrival_ms", type = "bigint", comment = "Kinesis approximate arrival, epoch ms" },
    { name = "metrics", type = "string", comment = "every metric, JSON text" },
    { name = "temperature_c", type = "double", comment = "default-limit metric" },
    { name = "pressure_psi", type = "double", comment = "default-limit metric" },
    { name = "vibration_mm_s", type = "double", comment = "default-limit metric" },
    { name = "shard_id", type = "string", comment = "Kinesis shard" },
    { name = "sequence_number", type = "string", comment = "Kinesis sequence number" },
  ]
  partition_order = ["year", "month", "day", "hour"]
  projection = {
    "projection.enabled"      = "true"
    "projection.year.type"    = "integer"
    "projection.year.range"   = "${var.projection_years[0]},${var.projection_years[1]}"
    "projection.month.type"   = "integer"
    "projection.month.range"  = "1,12"
    "projection.month.digits" = "2"
    "projection.day.type"     = "integer"
    "projection.day.range"    = "1,31"
    "projection.day.digits"   = "2"
    "projection.hour.type"    = "integer"
    "projection.hour.range"   = "0,23"
    "projection.hour.digits"  = "2"
  }
}

resource "aws_glue_catalog_table" "compacted" {
  name          = "compacted_readings"
  database_name = var.glue_database
  description   = "The archive's readings as Parquet, one object per compacted hour"
  table_type    = "EXTERNAL_TABLE"

  parameters = merge(local.projection, {
    "EXTERNAL"                  = "TRUE"
    "classification"            = "parquet"
    "storage.location.template" = "s3://${var.archive_bucket}/compacted/readings/year=$${year}/month=$${month}/day=$${day}/hour=$${hour}/"
  })

  dynamic "partition_keys" {
    for_each = local.partition_order
    content {
      name = partition_keys.value
      type = "string"
    }
  }

  storage_descriptor {
    location      = "s3://${var.archive_bucket}/compacted/readings/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = local.compacted_columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

resource "aws_glue_catalog_table" "state" {
  name          = "compaction_state"
  database_name = var.glue_database
  description   = "The compaction job's mark: hours before through_hour are in compacted_readings"
  table_type    = "EXTERNAL_TABLE"

  parameters = {
    "EXTERNAL"       = "TRUE"
    "classification" = "json"
  }

  storage_descriptor {
    location      = "s3://${var.archive_bucket}/compacted/_state/"
    input_format  = "org.apache.hadoop.mapred.TextInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat"

    ser_de_info {
      serialization_library = "org.openx.data.jsonserde.JsonSerDe"
    }

    columns {
      name    = "through_hour"
      type    = "string"
      comment = "YYYYMMDDHH: the first hour still read from raw/"
    }
    columns {
      name    = "window_from_hour"
      type    = "string"
      comment = "YYYYMMDDHH: the first compacted hour a pending record's copy can be in"
    }
  }
}
