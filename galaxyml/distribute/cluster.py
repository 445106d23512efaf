# Licensed under a 3-clause BSD style license - see LICENSE.rst
"""TF_CONFIG for MultiWorkerMirroredStrategy clusters."""

import json
import socket

from ..exceptions import DistributeError

__all__ = ["tf_config", "free_local_ports"]


def tf_config(workers, index):
    """The TF_CONFIG value (a JSON string) of worker ``index`` of a cluster.

    Parameters
    ----------
    workers : list of str
        ``host:port`` of every worker, in the same order on every worker.
    index : int
        This worker's position in ``workers`` (worker 0 is the chief).

    Examples
    --------
    >>> tf_config(["node1:2222", "node2:2222"], 1)
    '{"cluster": {"worker": ["node1:2222", "node2:2222"]}, "task": {"type": "worker", "index": 1}}'
    """
    if not 0 <= index < len(workers):
        raise DistributeError(f"worker index {index} is outside the {len(workers)} workers")
    return json.dumps({"cluster": {"worker": list(workers)},
                       "task": {"type": "worker", "index": int(index)}})


def free_local_ports(count):
    """``count`` TCP ports on 127.0.0.1 that are free now (for single-machine clusters)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()
