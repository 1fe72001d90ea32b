"""The Hive Metastore service: the thrift catalogue of the tables, on PostgreSQL (local or another)
or on Derby in the state folder.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

from app.runtime import deps
from app.runtime.postgres import (
    METASTORE_DATABASE,
    PostgresServer,
    database_login_error,
    postgres_address,
    properties_url,
)
from app.runtime.process import ManagedProcess, ServiceStartError, port_accepts
from app.runtime.service import LOG4J2_CONSOLE, Health, Service, hadoop_xml, java_service_flags

log = logging.getLogger(__name__)


class HiveMetastore(Service):
    """The Hive 2.3 Metastore thrift service from pyspark's jars, on one address; its catalogue in
    PostgreSQL (the local one by default) or Derby."""

    name = "metastore"
    start_timeout = 120.0
    port_field = "hive_metastore_port"

    def hive_site(self) -> dict[str, str]:
        """The service's `hive-site.xml`, written into `conf_dir` before each start."""
        scratch = self.home / "scratch"
        return {
            **self.database_properties(),
            "datanucleus.schema.autoCreateAll": "true",
            "hive.metastore.schema.verification": "false",
            "hive.metastore.warehouse.dir": str(self.settings.hive_warehouse_dir),
            "hive.exec.scratchdir": str(scratch),
            "hive.exec.local.scratchdir": str(scratch),
            "hive.downloaded.resources.dir": str(self.home / "resources"),
            "hive.metastore.event.db.notification.api.auth": "false",
            "hive.metastore.server.min.threads": "4",
            "hive.metastore.server.max.threads": "64",
            **self.s3a_properties(),
        }

    def s3a_properties(self) -> dict[str, str]:
        """S3A's settings, so that the metastore can make and drop folders of `s3a://` tables: those
        of the S3 store the settings name (by default the local SeaweedFS). The metastore may serve
        applications whose tables are there though its own warehouse is not, so they are always set;
        the file is readable by its owner alone (it also holds the database's password)."""
        from app.settings import s3_credentials
        from app.spark_session import s3a_properties

        key, secret = s3_credentials(self.settings)
        return {
            **s3a_properties(self.settings),
            "fs.s3a.aws.credentials.provider": "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider",
            "fs.s3a.access.key": key,
            "fs.s3a.secret.key": secret,
        }

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    def database_properties(self) -> dict[str, str]:
        """The catalogue's database: `metastore` on the local PostgreSQL (HIVE_METASTORE_DB_URL
        empty), another PostgreSQL (its JDBC URL), or Derby in the state folder (`derby`)."""
        url = self.settings.hive_metastore_db_url
        if url == "derby" or url.startswith("jdbc:derby:"):
            return {
                "javax.jdo.option.ConnectionURL": url
                if url != "derby"
                else f"jdbc:derby:;databaseName={self.home / 'metastore_db'};create=true",
                "javax.jdo.option.ConnectionDriverName": "org.apache.derby.jdbc.EmbeddedDriver",
            }
        if not url:
            local = PostgresServer(self.settings)
            url, user, password = (
                local.jdbc_url(METASTORE_DATABASE),
                METASTORE_DATABASE,
                local.password(METASTORE_DATABASE),
            )
        else:
            user, password = self.settings.hive_metastore_db_user, self.settings.hive_metastore_db_password
        return {
            "javax.jdo.option.ConnectionURL": url,
            "javax.jdo.option.ConnectionDriverName": "org.postgresql.Driver",
            "javax.jdo.option.ConnectionUserName": user,
            "javax.jdo.option.ConnectionPassword": password,
        }

    def check_database_login(self) -> None:
        """Log in to the catalogue's PostgreSQL once before the JVM starts: a bad URL or a refused
        login is named with its setting, not buried in the metastore's log."""
        import psycopg2

        properties = self.database_properties()
        address = postgres_address(properties["javax.jdo.option.ConnectionURL"])
        if address is None:
            return  # Derby
        setting = "HIVE_METASTORE_DB_URL" if self.settings.hive_metastore_db_url else "POSTGRES_PORT"
        try:
            psycopg2.connect(
                host=address.host,
                port=address.port,
                dbname=address.database,
                user=properties["javax.jdo.option.ConnectionUserName"],
                password=properties["javax.jdo.option.ConnectionPassword"],
                connect_timeout=10,
            ).close()
        except psycopg2.Error as error:
            where = f"database {address.database} at {address.host}:{address.port}"
            raise database_login_error(setting, where, error) from None

    def processes(self) -> list[ManagedProcess]:
        # Spark's jars, the database driver, and S3A (hadoop-aws and the AWS SDK, among Spark's extra jars)
        jars = [f"{deps.spark_home() / 'jars'}/*", f"{deps.METASTORE_DB_JARS_DIR}/*", f"{deps.SPARK_KAFKA_JARS_DIR}/*"]
        classpath = ":".join([str(self.conf_dir), *jars, str(deps.METASTORE_CLASSES_DIR)])
        command = [
            *java_service_flags(self.settings, self.home, self.settings.hive_metastore_heap),
            "-Dlog4j2.contextSelector=org.apache.logging.log4j.core.selector.ClassLoaderContextSelector",
            f"-Dlog4j.configurationFile={self.conf_dir / 'log4j2.properties'}",
            f"-Dderby.system.home={self.home}",
            "-cp",
            classpath,
            "clickstream.LoopbackMetastore",
            self.settings.bind_host,
            str(self.settings.hive_metastore_port),
        ]
        return [self.managed("metastore", command)]

    def prepare(self) -> None:
        if not (deps.METASTORE_CLASSES_DIR / "clickstream" / "LoopbackMetastore.class").exists():
            raise deps.MissingDependencyError(f"the metastore launcher is not compiled; {deps.SETUP_HINT}")
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        if self.settings.hive_warehouse_dir.is_local:  # an HDFS one is made by the first table's writer
            self.settings.hive_warehouse_dir.mkdir()
        site = self.conf_dir / "hive-site.xml"
        site.write_text(hadoop_xml(self.hive_site()))
        site.chmod(0o600)  # it may hold the database password
        (self.conf_dir / "log4j2.properties").write_text(LOG4J2_CONSOLE.format(level="INFO"))
        if "org.postgresql.Driver" in self.database_properties().values():
            self.check_database_login()
            self._create_schema()

    def _create_schema(self) -> None:
        """Create the catalogue's tables in PostgreSQL before the metastore serves (missing ones only).

        Left to the metastore, DataNucleus creates a table the first time it is needed, on a second
        connection, while the request's transaction holds locks on the tables it references: the
        first CREATE TABLE of a partitioned table then waits forever on PostgreSQL. DataNucleus's
        SchemaTool creates them all at once, from the metastore's own mapping (`package.jdo`).
        """
        import zipfile

        jars = deps.spark_home() / "jars"
        metastore_jar = next(iter(sorted(jars.glob("hive-metastore-*.jar"))), None)
        if metastore_jar is None:
            raise deps.MissingDependencyError(f"no hive-metastore jar in {jars}; {deps.SETUP_HINT}")
        mapping = self.conf_dir / "package.jdo"
        with zipfile.ZipFile(metastore_jar) as jar:
            mapping.write_bytes(jar.read("package.jdo"))
        properties = self.conf_dir / "schema.properties"
        properties.write_text(
            "".join(
                f"{key}={value}\n"
                for key, value in {
                    **self.database_properties(),
                    "datanucleus.schema.autoCreateAll": "true",
                    "datanucleus.identifierFactory": "datanucleus1",  # the metastore's naming of columns
                    "datanucleus.rdbms.useLegacyNativeValueStrategy": "true",
                }.items()
            )
        )
        properties.chmod(0o600)  # it holds the database password
        classpath = ":".join([f"{jars}/*", f"{deps.METASTORE_DB_JARS_DIR}/*"])
        created = subprocess.run(
            [
                deps.java_executable(),
                "-cp",
                classpath,
                "org.datanucleus.store.schema.SchemaTool",
                *("-create", "-api", "JDO", "-props", str(properties), str(mapping)),
            ],
            cwd=self.conf_dir,
            capture_output=True,
            text=True,
            check=False,
        )
        if created.returncode != 0 or "completed successfully" not in created.stdout:
            raise ServiceStartError(
                f"metastore: creating its tables in {properties_url(self.database_properties())} failed:\n"
                f"{(created.stdout + created.stderr)[-3000:]}"
            )
        log.info("metastore: catalogue tables present in %s", properties_url(self.database_properties()))

    def health(self) -> Health:
        port = self.settings.hive_metastore_port
        if port_accepts(self.settings.bind_host, port):
            return Health(True, f"thrift on {self.settings.hive_metastore_uri}")
        return Health(False, f"port {port} not accepting connections")
