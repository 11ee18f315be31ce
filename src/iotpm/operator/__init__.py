"""The operator's controls: device registry, configuration documents, alarm controls, audit trail.

:mod:`ports` holds the records and the stores' Protocols, :mod:`memory` the in-memory
fakes, :mod:`service` the rules (validation, versions, the audit entry of every write);
the DynamoDB adapters live in :mod:`iotpm.adapters.registry`.
"""
