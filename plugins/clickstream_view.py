"""The Airflow plugin of clickstream: the pipeline view, linked from the Airflow UI's navigation.

It mounts the view's FastAPI app (`app/pipeline_view_app.py`) in the api-server at `/clickstream`
and adds a *Clickstream* entry to the UI's menu that shows it inside the UI. The page is behind
Airflow's login.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from app.pipeline_view_app import PREFIX, create_app


class ClickstreamViewPlugin(AirflowPlugin):
    name = "clickstream_view"
    fastapi_apps = [{"app": create_app(), "url_prefix": PREFIX, "name": "clickstream pipeline view"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012
        {
            "name": "Clickstream",
            "href": f"{PREFIX}/",
            "destination": "nav",
            "url_route": "clickstream",
        }
    ]
