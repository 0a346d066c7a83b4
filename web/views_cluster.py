"""The nodes of a cluster (vms/cluster.py): ``GET /api/v1/nodes`` and the ``/admin/nodes`` page,
from the same data, for administrators (``manage_users``).

With PostgreSQL every ``vms serve`` is a node: its name, ``advertise_url``, whether it heart-beats
(``alive``), ``draining``, ``max_cameras``, its storage volumes, the age of its last heartbeat
(database clock) and the cameras whose leases it holds, with their epochs. With SQLite the server
is the one node and holds every camera in service.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from vms.cluster import node_list
from vms.config import Settings
from vms.db import models as m
from web.keys import GATEWAY, SETTINGS
from web.render import render
from web.routing import Routes
from web.schemas import BOOL, INT, NUM, STR, array, nullable, obj

routes = Routes()

NODE = obj(name=STR, advertise_url=STR, alive=BOOL, draining=BOOL, max_cameras=INT,
           volumes=array(STR), heartbeat_age_s=nullable(NUM), camera_ids=array(INT),
           epochs={"type": "object", "additionalProperties": INT})
NODES = obj(clustered=BOOL, lease_seconds=INT, nodes=array(NODE))


def nodes_report(settings: Settings) -> dict[str, Any]:
    """A read: the cluster's nodes (or this single server as the one node)."""
    if settings.clustered:
        nodes = node_list(settings.cluster.lease_seconds)
    else:
        ids = [c for (c,) in m.Camera.select(m.Camera.id).where(m.Camera.archived_us.is_null())
               .order_by(m.Camera.id).tuples()]
        nodes = [{"name": settings.node_name, "advertise_url": settings.advertise_url,
                  "alive": True, "draining": False, "max_cameras": 0,
                  "volumes": [v.name for v in settings.volumes], "heartbeat_age_s": None,
                  "camera_ids": ids, "epochs": {}}]
    return {"clustered": settings.clustered, "lease_seconds": settings.cluster.lease_seconds,
            "nodes": nodes}


@routes.route("GET", "/api/v1/nodes", access="manage_users", response=NODES,
              summary="The cluster's nodes: name, advertise_url, alive, draining, the cameras "
                      "each records (camera_ids) and their lease epochs")
async def api_nodes(request: web.Request) -> web.StreamResponse:
    return web.json_response(await request.app[GATEWAY].read(nodes_report, request.app[SETTINGS]))


@routes.route("GET", "/admin/nodes", access="manage_users",
              summary="Nodes page: health, cameras, load, lease epochs")
async def nodes_page(request: web.Request) -> web.StreamResponse:
    settings = request.app[SETTINGS]

    def load() -> tuple[dict[str, Any], dict[int, str]]:
        report = nodes_report(settings)
        names = dict(m.Camera.select(m.Camera.id, m.Camera.name).tuples())
        return report, names

    report, names = await request.app[GATEWAY].read(load)
    return render(request, "nodes.html", {"report": report, "camera_names": names,
                                          "this_node": settings.node_name})
