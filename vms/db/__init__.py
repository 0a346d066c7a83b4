"""The database: peewee models (:mod:`vms.db.models`) behind one gateway (:mod:`vms.db.gateway`)."""
