# The buckets were resources of this module before every bucket became modules/bucket.
moved {
  from = aws_s3_bucket.archive
  to   = module.archive.aws_s3_bucket.this
}
moved {
  from = aws_s3_bucket_versioning.archive
  to   = module.archive.aws_s3_bucket_versioning.this
}
moved {
  from = aws_s3_bucket_server_side_encryption_configuration.archive
  to   = module.archive.aws_s3_bucket_server_side_encryption_configuration.this
}
moved {
  from = aws_s3_bucket_public_access_block.archive
  to   = module.archive.aws_s3_bucket_public_access_block.this
}
moved {
  from = aws_s3_bucket_ownership_controls.archive
  to   = module.archive.aws_s3_bucket_ownership_controls.this
}
moved {
  from = aws_s3_bucket_lifecycle_configuration.archive
  to   = module.archive.aws_s3_bucket_lifecycle_configuration.this
}
moved {
  from = aws_s3_bucket_object_lock_configuration.archive
  to   = module.archive.aws_s3_bucket_object_lock_configuration.this
}
moved {
  from = aws_s3_bucket_policy.archive
  to   = module.archive.aws_s3_bucket_policy.this
}
moved {
  from = aws_s3_bucket.state
  to   = module.state.aws_s3_bucket.this
}
moved {
  from = aws_s3_bucket_versioning.state
  to   = module.state.aws_s3_bucket_versioning.this
}
moved {
  from = aws_s3_bucket_server_side_encryption_configuration.state
  to   = module.state.aws_s3_bucket_server_side_encryption_configuration.this
}
moved {
  from = aws_s3_bucket_public_access_block.state
  to   = module.state.aws_s3_bucket_public_access_block.this
}
moved {
  from = aws_s3_bucket_ownership_controls.state
  to   = module.state.aws_s3_bucket_ownership_controls.this
}
moved {
  from = aws_s3_bucket_lifecycle_configuration.state
  to   = module.state.aws_s3_bucket_lifecycle_configuration.this
}
moved {
  from = aws_s3_bucket_policy.state
  to   = module.state.aws_s3_bucket_policy.this
}
