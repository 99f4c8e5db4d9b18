"""nginx for the Flask × 4 tier: render its config under .run/nginx and start it in the foreground.

The template is services/system/nginx/seckill.conf. nginx runs as a process of this
checkout like the servers (see processes.py), so `seckill down` stops it. On the
docker backend without a native nginx, that process is ``compose run --rm nginx``
(profile x4, host network: nginx must reach the gateways on the host's 127.0.0.1).
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from seckill.stack import installer
from seckill.config import HOST, NGINX_SOURCE, Settings

TEMPLATE = resources.files("seckill.system").joinpath("nginx/seckill.conf").read_text()


def render(s: Settings, upstream_ports: list[int], *, rate: float, burst: int, workers: int = 2) -> Path:
    """Write .run/nginx/nginx.conf for these gateways and limits; return its path."""
    prefix = s.run_dir / "nginx"
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    # As root nginx would hand its workers to "nobody", who may not reach .run/;
    # the workers only proxy to loopback, so they keep our user.
    user_line = "user root;" if os.geteuid() == 0 or _in_container() else ""
    conf = fill(TEMPLATE,
        workers=workers, user_line=user_line, prefix=prefix, rate=max(1, int(rate)), burst=burst,
        host=HOST, port=s.ports.nginx, source=NGINX_SOURCE,
        upstreams="\n".join(f"        server {HOST}:{p} max_fails=0;" for p in upstream_ports),
    )
    path = prefix / "nginx.conf"
    path.write_text(conf)
    return path


def fill(template: str, **values) -> str:
    """Replace {{name}} placeholders (nginx's own $variables stay untouched)."""
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", str(value))
    if "{{" in template:
        raise ValueError("unfilled placeholder in the nginx template: " + template.split("{{", 1)[1][:30])
    return template


def _in_container() -> bool:
    """No native nginx and the docker backend: nginx runs as the compose service `nginx`."""
    if installer.find("nginx") is not None:
        return False
    from seckill import stack

    return stack.backend() == "docker"


def command(conf: Path) -> list[str]:
    binary = installer.find("nginx")
    if binary is None:
        if _in_container():  # the same arguments, given by docker-compose.yml's nginx service
            from seckill.stack import docker_backend

            return docker_backend.foreground_command("nginx")
        raise installer.MissingServers(installer.how_to_install(["nginx"]))
    return [binary, "-p", str(conf.parent), "-c", str(conf), "-e", "stderr", "-g", "daemon off;"]
