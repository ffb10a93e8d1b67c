"""The collaborative model trained on Apache Spark, for deployments past one machine: `train.py` is
one self-contained file (pyspark and the standard library, nothing of this package) that reads the
netted engagements from Postgres over JDBC, trains MLlib's ALS factors and the co-engagement
neighbours, and writes them through the training tables' contract (docs/loop.md, "Training tables:
the contract"; `sql/019_training_import.sql` installs them in one transaction), so serving does not
change. How to run it on Azure Databricks or Synapse: docs/deployment.md."""
