"""Triage a month of traffic on a Spark cluster: one `spark-submit`, the answers of `fpi triage`.

Runs as is in local mode on the example week shipped with fpi:

    SPARK_LOCAL_IP=127.0.0.1 spark-submit --master 'local[2]' examples/spark_triage.py \\
        --out /tmp/fpi-triaged

and on a cluster with the lake's paths (every executor needs fpi installed: ship a packed
virtual environment with `--archives fpi-env.tar.gz#env` and
`--conf spark.pyspark.python=./env/bin/python`):

    spark-submit --master yarn --archives fpi-env.tar.gz#env \\
        --conf spark.pyspark.python=./env/bin/python examples/spark_triage.py \\
        --lake 's3a://assistant-logs/traces/2026-11/*.jsonl.gz' \\
        --out s3a://assistant-logs/fpi/triage/2026-11 --rejects-out s3a://assistant-logs/fpi/rejects

`--lake` reads JSON Lines as raw lines (the same parser and validator as `fpi triage`) and
Parquet as trace columns. The output is Parquet partitioned by ISO week, which
`fpi report OUT --week 2026-W48` reads.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from fpi import spark as fpi_spark

EXAMPLE_WEEK = Path(__file__).with_name("week.jsonl.gz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dumps", nargs="*", help="local dumps (default: the example week)")
    parser.add_argument("--lake", help="a path or glob Spark reads (.jsonl[.gz] or .parquet)")
    parser.add_argument("--out", required=True, help="output directory (Parquet, by ISO week)")
    parser.add_argument("--rejects-out", help="where invalid records go (JSON)")
    parser.add_argument("--model", help="model bundle directory (default: the bundled model)")
    args = parser.parse_args()

    spark = fpi_spark.session(app_name="fpi-triage")
    if args.lake is None:
        lines = fpi_spark.read_dumps(spark, args.dumps or [EXAMPLE_WEEK])
    elif args.lake.endswith(".parquet") or args.lake.endswith("/"):
        lines = spark.read.parquet(args.lake)
    else:
        lines = spark.read.option("lineSep", "\n").text(args.lake)
    run = fpi_spark.triage_with_rejects(lines, args.model)
    run.turns.drop("_kept").withColumn(fpi_spark.WEEK, fpi_spark.week_column()).write.mode(
        "overwrite"
    ).partitionBy(fpi_spark.WEEK).parquet(args.out)
    if args.rejects_out:
        run.rejects.write.mode("overwrite").json(args.rejects_out)
    counts = run.counts()
    rejected = sum(n for (is_reject, _, _), n in counts.items() if is_reject)
    triaged = sum(n for (is_reject, _, _), n in counts.items() if not is_reject)
    print(f"read {triaged + rejected:,} turns = {triaged:,} triaged + {rejected:,} rejected")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
