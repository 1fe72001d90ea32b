"""The pipeline's Spark transformations: plain `DataFrame -> DataFrame` functions, no I/O.

The streaming job and the batch job both use these, so a micro-batch and a recomputation of the
same hours give the same rows. Names of the tables' columns are lower snake case (the Hive
Metastore folds column names to lower case). Partition columns are `dt` (UTC date, yyyy-MM-dd)
and `hour` (UTC hour, 0..23) and always come last.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StructField, StructType

from app.event_time import EVENT_TIME, SESSION_START, EventTimeRules
from app.schemas import ARTICLES, CLICKS, HEADER_FILE_VERSION, HEADER_SOURCE_FILE, HEADER_SOURCE_LINE, RecordSchema
from app.table_catalog import ARTICLE_BUCKETS, USER_BUCKETS

UNKNOWN_CATEGORY = -1
PARTITION_COLUMNS = ("dt", "hour")

TableTransform = Callable[[DataFrame], DataFrame]
TABLE_TRANSFORMS: dict[str, TableTransform] = {}  # every transform that builds a table of the catalogue


def table_transform(function: TableTransform) -> TableTransform:
    """Marks a transform as the builder of a table of `app/table_catalog.py` (named there by its name)."""
    TABLE_TRANSFORMS[function.__name__] = function
    return function


def table_column(field_name: str) -> str:
    """A schema field's name as a table column: `click_deviceGroup` -> `click_device_group`."""
    out = []
    for char in field_name:
        if char.isupper():
            out.append("_" + char.lower())
        else:
            out.append(char)
    return "".join(out)


def spark_struct(schemas: Iterable[RecordSchema]) -> StructType:
    """The Spark type of the JSON value of a message of any of these kinds, from the one schema
    definition: every field of each, once."""
    names = dict.fromkeys(field.name for schema in schemas for field in schema.fields)
    return StructType([StructField(name, LongType(), nullable=True) for name in names])


def _header(name: str) -> Column:
    """The value of the record's first header called `name`, as text (null without one). Found by
    its position among the header keys: a `filter` with a lambda per header runs interpreted, and
    the three of them took as long as parsing the JSON."""
    position = F.array_position(F.col("headers.key"), name).cast("int")
    return F.get(F.col("headers.value"), position - 1).cast("string")


def parse_records(
    kafka_rows: DataFrame, schema_of_topic: Mapping[str, RecordSchema], rules: EventTimeRules | None = None
) -> DataFrame:
    """Kafka rows (with headers) of the topics `schema_of_topic` names -> the record's fields, its
    Kafka coordinates, and `parse_error`.

    Every record is parsed once, whatever its topic: `record` holds the fields of every schema, and
    a record is checked against its own topic's. `parse_error` is null for a good record; otherwise
    it says what is wrong (not JSON, or which fields are missing or not integers), and `raw_value`
    holds the record's text (null for a good record, which keeps a cached batch small). Nothing is
    dropped here. With `rules`, a click of implausible time is an error too (`app.event_time`: the
    same bounds and words as the producer's rejects; "published" is the Kafka record's time).
    """
    text = F.col("value").cast("string")
    parsed = kafka_rows.select(
        F.from_json(text, spark_struct(schema_of_topic.values())).alias("record"),
        text.alias("_text"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        _header(HEADER_SOURCE_FILE).alias("source_file"),
        _header(HEADER_SOURCE_LINE).cast("int").alias("source_line"),
        _header(HEADER_FILE_VERSION).cast("int").alias("file_version"),
    )
    missing_fields = F.lit(None).cast("string")
    for topic, schema in schema_of_topic.items():
        missing = [F.when(F.col(f"record.{field.name}").isNull(), F.lit(field.name)) for field in schema.fields]
        missing_fields = F.when(F.col("kafka_topic") == topic, F.concat_ws(", ", *missing)).otherwise(missing_fields)
    # a record that is not a JSON object has every field missing; only then is it parsed again
    # to tell the two apart
    not_object = F.json_object_keys(F.col("_text")).isNull()
    error = F.when(missing_fields.isNull(), F.lit("a record of a topic the job does not read")).when(
        missing_fields != "",
        F.when(not_object, F.lit("not a JSON object")).otherwise(
            F.concat(F.lit("missing or not an integer: "), missing_fields)
        ),
    )
    if rules is not None:
        timed = [topic for topic, schema in schema_of_topic.items() if {EVENT_TIME, SESSION_START} <= {*schema.columns}]
        error = F.coalesce(error, F.when(F.col("kafka_topic").isin(timed), _event_time_error(rules)))
    return (
        parsed.withColumn("parse_error", error)
        .withColumn("raw_value", F.when(F.col("parse_error").isNotNull(), F.col("_text")))
        .drop("_text")
    )


def _event_time_error(rules: EventTimeRules) -> Column:
    """Why a parsed click's time is implausible (null when it is not): `EventTimeRules.problem`."""
    click, start = F.col(f"record.{EVENT_TIME}"), F.col(f"record.{SESSION_START}")
    published = F.unix_millis(F.col("kafka_timestamp"))
    return (
        F.when(click < F.lit(rules.earliest_ms), F.concat(F.lit(rules.too_early), click.cast("string")))
        .when(click > published + F.lit(rules.max_future_ms), F.concat(F.lit(rules.too_late), click.cast("string")))
        .when(
            click + F.lit(rules.session_start_tolerance_ms) < start,  # arithmetic on the click, checked sane above
            F.concat(F.lit(rules.before_session), click.cast("string"), F.lit(" < "), start.cast("string")),
        )
        .when(
            click - F.lit(rules.max_session_ms) > start,
            F.concat(F.lit(rules.after_session), click.cast("string"), F.lit(" > "), start.cast("string")),
        )
    )


@table_transform
def quarantined(parsed: DataFrame) -> DataFrame:
    """Records that did not parse, with topic, partition, offset, raw value and reason, and the UTC
    hour of the click (`2017-10-01T03`) when the record has a readable click time: the hour whose
    reconciliation counts it."""
    click_time = F.timestamp_millis(F.col(f"record.{EVENT_TIME}"))
    return parsed.where(F.col("parse_error").isNotNull()).select(
        "kafka_topic",
        "kafka_partition",
        "kafka_offset",
        "kafka_timestamp",
        "raw_value",
        F.col("parse_error").alias("reason"),
        F.date_format(click_time, "yyyy-MM-dd'T'HH").alias("click_hour"),
        F.date_format("kafka_timestamp", "yyyy-MM-dd").alias("dt"),
    )


def _fields(schema: RecordSchema) -> list[Column]:
    return [F.col(f"record.{field.name}").alias(table_column(field.name)) for field in schema.fields]


def _coordinates() -> list[str]:
    return ["kafka_partition", "kafka_offset", "kafka_timestamp", "source_file", "source_line", "file_version"]


@table_transform
def raw_clicks(parsed: DataFrame) -> DataFrame:
    """Good click records as rows of the raw clicks table, partitioned by the click's UTC hour."""
    click_time = F.timestamp_millis(F.col("record.click_timestamp"))
    return parsed.where(F.col("parse_error").isNull()).select(
        *_fields(CLICKS),
        *_coordinates(),
        F.date_format(click_time, "yyyy-MM-dd").alias("dt"),
        F.hour(click_time).alias("hour"),
    )


@table_transform
def raw_articles(parsed: DataFrame) -> DataFrame:
    """Good article records as rows of the raw articles table, partitioned by the day they arrived."""
    return parsed.where(F.col("parse_error").isNull()).select(
        *_fields(ARTICLES),
        *_coordinates(),
        F.date_format("kafka_timestamp", "yyyy-MM-dd").alias("dt"),
    )


@table_transform
def latest_articles(raw: DataFrame) -> DataFrame:
    """The latest record of every article (a key's records share a partition, so offset orders them),
    with the bucket of the `articles` table it belongs in."""
    newest_first = Window.partitionBy("article_id").orderBy(F.col("kafka_offset").desc())
    columns = [table_column(field.name) for field in ARTICLES.fields]
    return (
        raw.withColumn("_rank", F.row_number().over(newest_first))
        .where("_rank = 1")
        .select(
            *columns,
            F.col("kafka_timestamp").alias("updated_at"),
            key_bucket("article_id", ARTICLE_BUCKETS).alias("bucket"),
        )
    )


def key_bucket(key: str, buckets: int) -> Column:
    """The `bucket` partition a key's rows are kept in (`articles` by article, `user_hours` by user):
    a write or a look-up by key touches only the buckets of its keys."""
    return F.pmod(F.col(key), F.lit(buckets)).cast("int")


ARTICLE_ATTRIBUTES = ("category_id", "publisher_id", "words_count")  # what the aggregates read of an article


def changed_articles(incoming: DataFrame, current: DataFrame) -> DataFrame:
    """The ids of the incoming articles that are new, or whose attributes the aggregates read differ
    from the current ones: the articles whose clicked hours must be recomputed."""
    key = ["article_id", *ARTICLE_ATTRIBUTES]
    return incoming.select(*key).join(current.select(*key), key, "left_anti").select("article_id")


def upserted(current: DataFrame, incoming: DataFrame) -> DataFrame:
    """`current` rows with those of the same keys replaced by `incoming` (newer: later in the topic)."""
    return current.join(incoming.select("article_id"), "article_id", "left_anti").unionByName(incoming)


def user_hash(key: str, user_id: str = "user_id") -> Column:
    """The keyed hash that stands for a user in the `erasures` table: the same text as
    `app.erasure.user_hash` (hex sha256 of `<key>:<user_id>`)."""
    return F.sha2(F.concat(F.lit(f"{key}:"), F.col(user_id).cast("string")), 256)


def split_forgotten(clicks: DataFrame, key: str, hashes: Iterable[str]) -> tuple[DataFrame, DataFrame]:
    """(clicks of users not forgotten, clicks of forgotten users) of raw click rows, by the keyed
    hash of their user (`hashes`: the `erasures` table's). Each row goes to exactly one side."""
    forgotten = F.col("_user_hash").isin(sorted(set(hashes)))
    hashed = clicks.withColumn("_user_hash", user_hash(key))
    return hashed.where(~forgotten).drop("_user_hash"), hashed.where(forgotten).drop("_user_hash")


@table_transform
def erased_clicks(raw: DataFrame) -> DataFrame:
    """What is kept of a click removed for an erasure, or refused because its user was forgotten:
    where it came from (file, version, line, Kafka coordinates) and its hour, never whom it was
    about. `hour_reconciliation` counts these beside the raw clicks."""
    return raw.select(*_coordinates(), "dt", "hour")


@table_transform
def user_hours(raw: DataFrame) -> DataFrame:
    """The index from user to hours: one row per user, click hour and session start hour of raw
    click rows, in the bucket of its user (`key_bucket`). Finding a user's clicks reads one bucket
    (a sixteenth of the index) instead of every hour of `raw_clicks`."""
    start_dt, start_hour = session_start_partition()
    return raw.select(
        "user_id",
        "dt",
        "hour",
        start_dt.alias("start_dt"),
        start_hour.alias("start_hour"),
        key_bucket("user_id", USER_BUCKETS).alias("bucket"),
    ).dropDuplicates()


def click_facts(raw: DataFrame) -> DataFrame:
    """Raw clicks without their Kafka coordinates and source file, which no aggregate reads: what
    is cached for the aggregates is a third smaller."""
    return raw.drop(*_coordinates())


def distinct_count(column: str) -> Column:
    """How many distinct non-null values of `column` a group holds, exactly. Spark plans several
    `countDistinct`s in one aggregation by copying every row once per column (an `Expand`) and
    aggregating twice; a set per group does it in one pass, in half the time here."""
    return F.size(F.collect_set(column)).cast("long")  # a count, as `countDistinct` gives


def enrich_clicks(clicks: DataFrame, articles: DataFrame) -> DataFrame:
    """Clicks with their article's category, publisher and length; unknown articles get category -1."""
    known = articles.select(F.col("article_id").alias("_article_id"), "category_id", "publisher_id", "words_count")
    return (
        clicks.join(known, clicks.click_article_id == known._article_id, "left")
        .drop("_article_id")
        .withColumn("category_id", F.coalesce("category_id", F.lit(UNKNOWN_CATEGORY)))
    )


def per_article(enriched: DataFrame, period: tuple[str, ...]) -> DataFrame:
    """Per article and period (`dt`, `hour` or `dt` alone): clicks, users and sessions counted
    exactly over the period, category and publisher; the period's columns last."""
    return (
        enriched.groupBy(*period, F.col("click_article_id").alias("article_id"))
        .agg(
            F.max("category_id").alias("category_id"),
            F.max("publisher_id").alias("publisher_id"),
            F.count(F.lit(1)).alias("clicks"),
            distinct_count("user_id").alias("users"),
            distinct_count("session_id").alias("sessions"),
        )
        .select("article_id", "category_id", "publisher_id", "clicks", "users", "sessions", *period)
    )


def per_category(enriched: DataFrame, period: tuple[str, ...]) -> DataFrame:
    """Per category and period: clicks, and users, sessions and articles counted exactly over it."""
    return enriched.groupBy(*period, "category_id").agg(
        F.count(F.lit(1)).alias("clicks"),
        distinct_count("user_id").alias("users"),
        distinct_count("session_id").alias("sessions"),
        distinct_count("click_article_id").alias("articles"),
    )


@table_transform
def article_hourly(enriched: DataFrame) -> DataFrame:
    """Per article and hour: clicks, distinct users, distinct sessions, category and publisher."""
    return per_article(enriched, PARTITION_COLUMNS)


@table_transform
def category_hourly(enriched: DataFrame) -> DataFrame:
    """Per category and hour: clicks, distinct users, sessions and articles, and the mean word
    count of the distinct articles clicked (null where no clicked article of the category is known)."""
    counts = per_category(enriched, PARTITION_COLUMNS)
    words = (
        enriched.select("dt", "hour", "category_id", "click_article_id", "words_count")
        .distinct()
        .groupBy("dt", "hour", "category_id")
        .agg(F.avg("words_count").alias("mean_words_count"))
    )
    return counts.join(words, ["dt", "hour", "category_id"]).select(
        "category_id", "clicks", "users", "sessions", "articles", "mean_words_count", "dt", "hour"
    )


CONTEXT_COLUMNS = (
    "click_environment",
    "click_device_group",
    "click_os",
    "click_country",
    "click_region",
    "click_referrer_type",
)


@table_transform
def context_hourly(clicks: DataFrame) -> DataFrame:
    """Per context (environment, device group, OS, country, region, referrer type) and hour."""
    return (
        clicks.groupBy("dt", "hour", *CONTEXT_COLUMNS)
        .agg(
            F.count(F.lit(1)).alias("clicks"),
            distinct_count("user_id").alias("users"),
            distinct_count("session_id").alias("sessions"),
        )
        .select(*CONTEXT_COLUMNS, "clicks", "users", "sessions", "dt", "hour")
    )


def session_start_partition() -> tuple[Column, Column]:
    """The `dt` and `hour` of a session's start: the partition of the sessions table it belongs to."""
    start = F.timestamp_millis("session_start")
    return F.date_format(start, "yyyy-MM-dd"), F.hour(start)


def session_start_hours(clicks: DataFrame) -> DataFrame:
    """The (dt, hour) of the start of every session in `clicks`: the session table's partitions."""
    day, hour_of_day = session_start_partition()
    return clicks.select(day.alias("dt"), hour_of_day.alias("hour")).distinct()


@table_transform
def session_summary(enriched: DataFrame) -> DataFrame:
    """Per session: user, start, declared size, clicks seen, first and last click, duration,
    distinct articles and categories; partitioned by the UTC hour the session started."""
    day, hour_of_day = session_start_partition()
    return (
        enriched.groupBy("session_id", "user_id", "session_start", "session_size")
        .agg(
            F.count(F.lit(1)).alias("clicks_seen"),
            F.min("click_timestamp").alias("first_click"),
            F.max("click_timestamp").alias("last_click"),
            distinct_count("click_article_id").alias("articles"),
            distinct_count("category_id").alias("categories"),
        )
        .withColumn("duration_seconds", (F.col("last_click") - F.col("first_click")) / 1000.0)
        .select(
            "session_id",
            "user_id",
            "session_start",
            "session_size",
            "clicks_seen",
            "first_click",
            "last_click",
            "duration_seconds",
            "articles",
            "categories",
            day.alias("dt"),
            hour_of_day.alias("hour"),
        )
    )


@table_transform
def article_daily(enriched: DataFrame) -> DataFrame:
    """Per article and UTC day: clicks, and users and sessions counted exactly over the whole day (a
    user of two hours counts once: not a sum of the hours)."""
    return per_article(enriched, ("dt",))


@table_transform
def category_daily(enriched: DataFrame) -> DataFrame:
    """Per category and UTC day: clicks, and exact distinct users, sessions and articles of the day."""
    return per_category(enriched, ("dt",)).select("category_id", "clicks", "users", "sessions", "articles", "dt")


TOP_CATEGORIES = 10


@table_transform
def day_summary(enriched: DataFrame) -> DataFrame:
    """One row per UTC day: clicks, exact distinct users, sessions and articles, how many hours had
    clicks, and the day's top categories by clicks (ties: the smaller id first)."""
    totals = enriched.groupBy("dt").agg(
        F.count(F.lit(1)).alias("clicks"),
        distinct_count("user_id").alias("users"),
        distinct_count("session_id").alias("sessions"),
        distinct_count("click_article_id").alias("articles"),
        F.size(F.collect_set("hour")).alias("hours_with_clicks"),
    )
    by_category = enriched.groupBy("dt", "category_id").agg(F.count(F.lit(1)).alias("clicks"))
    ranked = by_category.withColumn(
        "_rank",
        F.row_number().over(Window.partitionBy("dt").orderBy(F.col("clicks").desc(), F.col("category_id"))),
    ).where(F.col("_rank") <= TOP_CATEGORIES)
    top = ranked.groupBy("dt").agg(
        F.transform(
            F.array_sort(F.collect_list(F.struct("_rank", "category_id", "clicks"))),
            lambda entry: F.struct(entry["category_id"].alias("category_id"), entry["clicks"].alias("clicks")),
        ).alias("top_categories")
    )
    return totals.join(top, "dt").select(
        "clicks", "users", "sessions", "articles", "hours_with_clicks", "top_categories", "dt"
    )
