"""The test cluster's own checks (tests/slurm_cluster.py), without SLURM."""
import slurm_cluster


def test_missing_slurm_is_a_clear_skip_reason(monkeypatch):
    monkeypatch.setenv('PATH', '')
    monkeypatch.setattr(slurm_cluster, 'SBIN', ())
    reason = slurm_cluster.missing_reason()
    assert reason.startswith('no SLURM here (munged, slurmctld, slurmd, '
                             'sbatch, srun, squeue, scancel, sinfo, '
                             'scontrol not found): install')
    assert '.ci/run' in reason


def test_the_config_describes_one_idle_node(tmp_path):
    cluster = slurm_cluster.SlurmCluster(str(tmp_path), cpus=3)
    cluster._write_config()
    with open(cluster.conf) as f:
        conf = f.read()
    assert f'NodeName={cluster.node} NodeAddr=127.0.0.1 CPUs=3 ' in conf
    assert f'AuthInfo=socket={tmp_path}/munge/munge.socket' in conf
    assert cluster.env == dict(SLURM_CONF=str(tmp_path / 'slurm.conf'))
    # Every file of the cluster stays in its folder.
    for line in conf.splitlines():
        key, value = line.split('=', 1)
        if value.startswith('/'):
            assert value.startswith(str(tmp_path)), key
