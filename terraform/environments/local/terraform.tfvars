environment         = "local"
region              = "eu-west-1"
availability_zones  = ["eu-west-1a", "eu-west-1b"]
lambda_architecture = "x86_64"
processor_zip       = "../../../lambda_build/out/processor-x86_64.zip"
api_zip             = "../../../lambda_build/out/api-x86_64.zip"

# The emulator: Timestream on (the emulator has it), archive disposable.
enable_timestream     = true
object_lock_mode      = "GOVERNANCE"
object_lock_days      = 1
force_destroy_archive = true
archive_tls_only      = false # the emulator speaks plain HTTP; every other environment keeps the TLS-only policy
log_retention_days    = 1
batch_size            = 10000 # the local poller reads the same

# The local twin's fleet is the simulator's (iotpm simulate); things here are the demo set.
things = {
  "pump-0000"       = { device_type = "pump", site = "plant-1", line = "line-1" }
  "motor-0001"      = { device_type = "motor", site = "plant-1", line = "line-1" }
  "compressor-0002" = { device_type = "compressor", site = "plant-1", line = "line-2" }
}
