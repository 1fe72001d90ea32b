# The clickstream image: the official Apache Airflow image plus Java, the pinned requirements
# (pyspark brings Spark itself), Spark's Kafka connector and the metastore's JDBC driver (from
# Maven Central), and this repository. docker-compose.airflow.yml runs every clickstream
# service but Kafka and PostgreSQL from it. Not built on the project's machines (no Docker engine).
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11

FROM maven:3.9-eclipse-temurin-17 AS jars
WORKDIR /build
COPY jvm/ jvm/
RUN for pom in spark-kafka metastore-db; do \
      mvn -B -q -f "jvm/$pom/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
        -DoutputDirectory="/jars/$pom" || exit 1; \
    done

FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends openjdk-17-jdk-headless \
 && rm -rf /var/lib/apt/lists/*
ENV JAVA_HOME=/usr/lib/jvm/java-17-openjdk-amd64
RUN mkdir -p /opt/clickstream && chown airflow:root /opt/clickstream
USER airflow
WORKDIR /opt/clickstream
COPY --chown=airflow:root requirements/requirements.in requirements/requirements.in
# pin Airflow itself, as Airflow's image documentation asks, so pip never changes it
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r requirements/requirements.in
COPY --chown=airflow:root . .
COPY --from=jars --chown=airflow:root /jars/ .deps/jars/
RUN spark_home="$(python -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')" \
 && ln -s "$spark_home" .deps/spark \
 && mkdir -p .deps/classes/metastore \
 && javac -nowarn -d .deps/classes/metastore -cp "$spark_home/jars/*" \
      jvm/metastore/src/clickstream/LoopbackMetastore.java
ENV SPARK_HOME=/opt/clickstream/.deps/spark \
    PYTHONPATH=/opt/clickstream \
    CLICKSTREAM_STATE_DIR=/opt/clickstream/state \
    CLICKSTREAM_BIND_HOST=0.0.0.0
