"""The real one-node SLURM cluster of the tests in this folder."""
import os
import os.path as osp
import sys

import pytest
from slurm_cluster import SlurmCluster, missing_reason

# The helpers of tools/run_protocol.py's tests (tests/test_tools).
HELPERS = osp.dirname(osp.dirname(osp.abspath(__file__)))
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)


@pytest.fixture(scope='session')
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster (``tests/slurm_cluster.py``) for the whole
    session, reached through ``SLURM_CONF``; skipped where SLURM is not
    installed or the tests do not run as root. The daemons are stopped, by
    their PIDs, at the end."""
    reason = missing_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = SlurmCluster(str(tmp_path_factory.mktemp('slurm'))).start()
    previous = os.environ.get('SLURM_CONF')
    os.environ.update(cluster.env)
    try:
        yield cluster
    finally:
        cluster.stop()
        if previous is None:
            os.environ.pop('SLURM_CONF', None)
        else:
            os.environ['SLURM_CONF'] = previous
